"""``mnv3 train``'s run-folder lock: one live run per folder, a dead run's folder free at once."""

from __future__ import annotations

import pytest

from mnv3cli.errors import UserError
from mnv3cli.training.lock import hold_run_folder


def test_one_process_cannot_hold_a_folder_twice(tmp_path):
    """POSIX locks do not exclude their own process: the lock keeps its own record."""
    with hold_run_folder(tmp_path / "run"):
        with pytest.raises(UserError, match="in use by another training run"):
            with hold_run_folder(tmp_path / "run"):
                pass
        with hold_run_folder(tmp_path / "other"):  # another folder is another lock
            pass
    with hold_run_folder(tmp_path / "run"):  # released on leaving
        pass


def test_an_unwritable_place_is_a_user_error(blocked_dir):
    with pytest.raises(UserError, match="cannot write the run folder"):
        with hold_run_folder(blocked_dir / "run"):
            pass
