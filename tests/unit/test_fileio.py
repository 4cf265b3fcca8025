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


# What an output may replace (issue 24 item 1): one rule in fileio.output_target for every writer.


def _writers():
    from mnv3cli.fileio import PartFile

    def part_file(path):
        with PartFile(path) as out:
            out.start()
            out.write(b"new")
            out.publish()

    def atomic(path):
        with atomic_write(path, "wb") as fh:
            fh.write(b"new")

    return {"atomic_write": atomic, "PartFile": part_file}


@pytest.fixture(params=["atomic_write", "PartFile"])
def write_new(request):
    return _writers()[request.param]


def test_a_fifo_target_is_refused_and_kept(tmp_path, write_new):
    """A rename over a FIFO would leave its reader with 0 bytes and the FIFO gone."""
    from mnv3cli.errors import WriteError

    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    with pytest.raises(WriteError, match="not a regular file"):
        write_new(fifo)
    assert fifo.is_fifo() and os.listdir(tmp_path) == ["out.csv"]


@pytest.mark.parametrize("name", ["/dev/null", "/dev/stdout", "/dev/fd/1"])
def test_device_names_are_refused_before_anything_is_written(name):
    """Only the check is called here, never a write: run as root, the old code turned /dev/null
    into a regular file and /dev/stdout (the link itself) into one."""
    from mnv3cli.errors import WriteError
    from mnv3cli.fileio import output_target

    with pytest.raises(WriteError, match=f"cannot write {name}: a device or process file"):
        output_target(name)


def test_stdout_redirected_to_a_file_is_refused_and_the_file_kept(tmp_path):
    """``-o /proc/self/fd/1`` (what /dev/stdout points to) with stdout redirected to a file
    resolves to that file: a rename would replace it, the shell's earlier output included (run in
    a child whose stdout is a file in tmp_path, so that nothing real is at stake on failure)."""
    import subprocess
    import sys

    shell_file = tmp_path / "shell-output.txt"
    code = (
        "import sys\nfrom mnv3cli.fileio import atomic_write\nfrom mnv3cli.errors import WriteError\n"
        "print('earlier output', flush=True)\n"
        "try:\n    with atomic_write('/proc/self/fd/1') as fh:\n        fh.write('new')\n"
        "except WriteError as exc:\n    sys.exit(str(exc))\n"
    )
    with open(shell_file, "w") as out:
        proc = subprocess.run([sys.executable, "-c", code], stdout=out, stderr=subprocess.PIPE, text=True, timeout=60)
    assert (
        proc.stderr.strip()
        == "cannot write /proc/self/fd/1: a device or process file, never replaced by mnv3; give a file name"
    )
    assert shell_file.read_text() == "earlier output\n"


def test_a_folder_target_is_refused(tmp_path, write_new):
    from mnv3cli.errors import WriteError

    (tmp_path / "out.csv").mkdir()
    with pytest.raises(WriteError, match="not a regular file"):
        write_new(tmp_path / "out.csv")
    assert (tmp_path / "out.csv").is_dir()


def test_a_read_only_file_is_refused_not_replaced(tmp_path, write_new):
    from mnv3cli.errors import WriteError

    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    target.chmod(0o444)
    with pytest.raises(WriteError, match=r"cannot write .*out.csv: the file is read-only"):
        write_new(target)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.csv"]


def test_a_symlink_target_is_followed_and_kept(tmp_path, write_new):
    """The file the link points to is replaced (atomically); the link stays a link."""
    real = tmp_path / "real.csv"
    real.write_bytes(b"old")
    link = tmp_path / "link.csv"
    link.symlink_to(real.name)
    write_new(link)
    assert link.is_symlink() and real.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["link.csv", "real.csv"]


@pytest.mark.skipif(not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK), reason="no /dev/shm")
def test_dev_shm_holds_ordinary_files_and_is_allowed():
    """The /dev rule is for devices and /dev/stdout-like links, not the memory file system."""
    import uuid

    target = f"/dev/shm/mnv3-test-{uuid.uuid4().hex}.txt"
    try:
        with atomic_write(target) as fh:
            fh.write("data")
        assert open(target).read() == "data"
    finally:
        if os.path.exists(target):
            os.unlink(target)
