"""Atomic writes: all or nothing, with the usual file mode."""

from __future__ import annotations

import os

import pytest

from mnv3cli.fileio import atomic_write


def test_atomic_write_replaces_the_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target) as fh:
        fh.write("hello")
    assert target.read_text() == "hello"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_ctrl_c_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    """KeyboardInterrupt is not an Exception: the clean-up must catch BaseException."""
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as fh:
            fh.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_fsync_runs_before_the_rename(tmp_path, monkeypatch):
    """The data reach the disk before the new name does: a crash after the rename never shows a
    file whose blocks were not written yet."""
    target = tmp_path / "out.txt"
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    with atomic_write(target) as fh:
        fh.write("data")
    assert events[:2] == ["fsync", "replace"]


def _limited_file_size(limit: int):
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_file_size_limit_is_a_one_line_user_error_and_keeps_the_old_file(tmp_path):
    """EFBIG (like ENOSPC on a full disk) is the user's environment, not a bug: exit 2, one line
    naming the file, the previous file intact, no temporary left (run in a child process whose
    file-size limit is 1 kB; Python ignores SIGXFSZ, so the write raises)."""
    import subprocess
    import sys

    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    code = ("import sys\nfrom mnv3cli.fileio import atomic_write\nfrom mnv3cli.errors import UserError\n"
            "try:\n    with atomic_write(sys.argv[1], 'wb') as fh:\n        fh.write(b'x' * 100_000)\n"
            "except UserError as exc:\n    print(exc); sys.exit(exc.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True,
                          preexec_fn=_limited_file_size(1024))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.strip() == f"cannot write {target}: File too large"
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]
