"""Stop requests by signal, and DataLoader workers that leave signals to the main process.

The loop only asks "was a stop requested?" (a :class:`threading.Event`); these turn Ctrl-C and
SIGTERM into that request, so the current step finishes and ``last.pt`` is saved before exiting.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_signals(event: threading.Event | None = None) -> Iterator[threading.Event]:
    """Turn the first SIGINT/SIGTERM into a stop request (``event``); a second SIGINT interrupts at once.

    The training loop checks the event after every step, saves ``last.pt`` and raises
    :class:`~mnv3cli.errors.Interrupted`. Outside the main thread signals cannot be caught; the
    event is then only set by the caller.
    """
    event = event or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum, frame):
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def quiet_worker(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process (which finishes its step and saves);
    killed by the terminal's SIGINT they would make the main process fail instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
