"""Environment and signal corners of issue 24 (items 12, 13 and the ones found beside them)."""

from __future__ import annotations

import signal

import pytest


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_a_signal_ignored_at_start_stays_ignored_so_nohup_works():
    """``nohup mnv3 predict ... &``: SIGHUP is ignored on purpose; mnv3 used to install its
    interrupt handler over it, so closing the terminal stopped the run nohup was meant to keep."""
    from mnv3cli.cli.app import _stop_signals_interrupt

    saved = {number: signal.getsignal(number) for number in (signal.SIGHUP, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _stop_signals_interrupt()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert callable(signal.getsignal(signal.SIGTERM))  # not ignored: stops like Ctrl-C
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
