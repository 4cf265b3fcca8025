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


@pytest.mark.parametrize("crash", [RuntimeError("crash mid-write"), KeyboardInterrupt()], ids=["exception", "ctrl-c"])
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, crash):
    """KeyboardInterrupt is not an Exception: the clean-up must catch BaseException."""
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(type(crash)):
        with atomic_write(target) as fh:
            fh.write("half")
            raise crash
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_an_unrelated_os_error_in_the_block_is_not_called_a_write_failure(tmp_path):
    """An input that cannot be read while the output is open is the input's problem: the error
    passes through as it is, not as "cannot write OUTPUT"."""
    from mnv3cli.errors import WriteError

    target = tmp_path / "out.txt"
    with pytest.raises(PermissionError) as err:
        with atomic_write(target) as fh:
            fh.write("half")
            raise PermissionError(13, "Permission denied", "input.jpg")
    assert not isinstance(err.value, WriteError) and err.value.filename == "input.jpg"
    assert os.listdir(tmp_path) == []


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


@pytest.mark.parametrize("code", [28, 27, 122], ids=["ENOSPC", "EFBIG", "EDQUOT"])
def test_no_room_in_the_block_is_a_write_error_naming_the_output(tmp_path, code):
    from mnv3cli.errors import WriteError

    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(WriteError) as err:
        with atomic_write(target) as fh:
            fh.write("half")
            raise OSError(code, os.strerror(code))
    assert err.value.errno == code and err.value.filename == str(target)
    assert str(err.value) == f"cannot write {target}: {os.strerror(code)}"
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]


def test_a_place_that_cannot_hold_the_file_is_a_write_error(tmp_path):
    from mnv3cli.errors import WriteError

    (tmp_path / "file").write_text("not a folder")
    target = tmp_path / "file" / "out.txt"
    with pytest.raises(WriteError) as err:
        with atomic_write(target) as fh:
            fh.write("never")
    assert err.value.filename == str(target) and err.value.errno is not None


def test_exclusive_write_never_replaces_an_existing_file(tmp_path):
    path = tmp_path / "sorted.csv"
    path.write_text("another process's list\n")
    with pytest.raises(FileExistsError):
        with atomic_write(path, "w", exclusive=True) as fh:
            fh.write("ours\n")
    assert path.read_text() == "another process's list\n"
    assert os.listdir(tmp_path) == ["sorted.csv"]  # no temporary left behind


def test_exclusive_write_publishes_whole_or_not_at_all(tmp_path):
    path = tmp_path / "cat.jpg"
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path, "wb", exclusive=True) as fh:
            fh.write(b"half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []  # a copy cut short never shows under the real name
    with atomic_write(path, "wb", exclusive=True) as fh:
        fh.write(b"whole")
    assert path.read_bytes() == b"whole" and os.listdir(tmp_path) == ["cat.jpg"]
