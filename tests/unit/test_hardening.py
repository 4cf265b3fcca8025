"""Environment and signal corners of issue 24 (items 12, 13 and the ones found beside them)."""

from __future__ import annotations

import os
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


def test_a_quoted_labels_path_holding_a_line_break_is_one_path(tmp_path):
    """The labels CSV was split into lines before csv read it: ``"a<newline>b.png"`` became a row
    ``a`` (an error) and a row ``b.png",cat``."""
    from mnv3cli.data.folders import scan_folder

    (tmp_path / "a\nb.png").write_bytes(b"")
    (tmp_path / "c.png").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text('path,label\n"a\nb.png",cat\nc.png,dog\n', encoding="utf-8")
    scanned = scan_folder(tmp_path, labels)
    assert scanned.items == [(str(tmp_path / "a\nb.png"), "cat"), (str(tmp_path / "c.png"), "dog")]


def test_a_labels_error_names_the_line_a_row_ends_on(tmp_path):
    from mnv3cli.data.folders import scan_folder
    from mnv3cli.errors import UserError

    (tmp_path / "a\nb.png").write_bytes(b"")
    labels = tmp_path / "labels.csv"
    labels.write_text('"a\nb.png",cat\nlonely\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"labels.csv:3: expected 'path,label', got 'lonely'"):
        scan_folder(tmp_path, labels)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"HOME": ""}, "passwd"),
        ({"HOME": "relative"}, "passwd"),
        ({"HOME": "/h", "XDG_CACHE_HOME": ""}, "/h/.cache/mnv3"),
        ({"HOME": "/h", "XDG_CACHE_HOME": "rel"}, "/h/.cache/mnv3"),
        ({"HOME": "/h", "XDG_CACHE_HOME": "/x", "MNV3_CACHE": ""}, "/x/mnv3"),
    ],
)
def test_empty_or_relative_home_and_xdg_are_not_used_for_the_cache(monkeypatch, env, expected):
    """``HOME=""`` put the cache in ``/.cache/mnv3``; an empty or relative XDG_CACHE_HOME is unset
    (the XDG spec); an empty HOME falls back to the password database's home."""
    pwd = pytest.importorskip("pwd")
    from mnv3cli.inference.onnx_cache import cache_root

    for name in ("MNV3_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if expected == "passwd":
        expected = f"{pwd.getpwuid(os.getuid()).pw_dir}/.cache/mnv3"
    assert str(cache_root()) == expected


def test_commands_that_need_the_pytorch_model_do_not_offer_exported_files():
    """``calibrate --help`` listed .onnx/.xml weights that it then refused (explain and export too)."""
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    for command in ("calibrate", "explain", "export"):
        shown = " ".join(CliRunner().invoke(cli, [command, "--help"], terminal_width=200).output.split())
        assert "not an exported .onnx/.xml" in shown and "a file written by mnv3 export" not in shown, command
    shown = " ".join(CliRunner().invoke(cli, ["predict", "--help"], terminal_width=200).output.split())
    assert "a file written by mnv3 export (.onnx, OpenVINO .xml)" in shown


def test_class_names_in_a_script_the_font_lacks_draw_without_warnings():
    """CJK class names printed matplotlib's "Glyph ... missing from font(s)" once per character."""
    import warnings

    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from mnv3cli.evaluation.plots import _png

    fig = Figure()
    fig.subplots().set_title("猫と犬")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _png(fig).startswith(b"\x89PNG")
    assert [str(w.message) for w in caught] == []
