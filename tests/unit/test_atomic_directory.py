"""``fileio.atomic_directory``: a folder published whole, or not at all (Ctrl-C included), and the
leftovers of killed builds cleaned once stale."""

from __future__ import annotations

import os
import time

import pytest

from mnv3cli.errors import WriteError
from mnv3cli.fileio import STALE_SECONDS, atomic_directory
from mnv3cli.printable import printable_path


def test_an_interrupt_part_way_leaves_the_old_folder_and_no_litter(tmp_path):
    target = tmp_path / "r"
    target.mkdir()
    (target / "a.txt").write_text("old a")
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target) as private:
            (private / "a.txt").write_text("new a")
            raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["a.txt"] and (target / "a.txt").read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_publishing_replaces_the_whole_folder(tmp_path):
    target = tmp_path / "r"
    target.mkdir()
    (target / "old-only.txt").write_text("old")
    with atomic_directory(target) as private:
        (private / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700


def test_stale_private_folders_are_removed_fresh_ones_kept(tmp_path):
    stale, fresh = tmp_path / ".r.tmp-dead", tmp_path / ".r.tmp-alive"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "x").write_text("x")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    with atomic_directory(tmp_path / "r") as private:
        (private / "y").write_text("y")
    assert not stale.exists() and fresh.exists()


def test_a_place_that_cannot_hold_a_folder_is_a_write_error(blocked_dir):
    with pytest.raises(WriteError, match=f"cannot write {blocked_dir}"):
        with atomic_directory(blocked_dir):
            pass


def test_printable_path_escapes_only_what_is_not_utf8():
    assert printable_path(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert printable_path("café.jpg") == "café.jpg" and printable_path(b"x\xff") == "x\\xff"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_symlinked_report_folder_is_replaced_behind_the_link_leaving_no_litter(tmp_path):
    """Issue 24 item 13: renaming the link aside left a hidden ``.tmp-old-*`` link behind."""
    from mnv3cli.fileio import atomic_directory

    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_text("old")
    (tmp_path / "report").symlink_to("real")
    with atomic_directory(tmp_path / "report") as private:
        (private / "new.txt").write_text("new")
    assert (tmp_path / "report").is_symlink()
    assert sorted(os.listdir(tmp_path)) == ["real", "report"]
    assert os.listdir(real) == ["new.txt"]


def test_a_file_where_a_report_folder_goes_is_refused(tmp_path):
    from mnv3cli.errors import WriteError
    from mnv3cli.fileio import atomic_directory

    (tmp_path / "report").write_text("a file")
    with pytest.raises(WriteError, match="not a folder"):
        with atomic_directory(tmp_path / "report"):
            pass
    assert (tmp_path / "report").read_text() == "a file" and os.listdir(tmp_path) == ["report"]
