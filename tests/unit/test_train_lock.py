"""``mnv3 train``'s run-folder lock: one live run per folder, a dead run's folder free at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from helpers import cli_env

from mnv3cli.errors import UserError
from mnv3cli.training.lock import LOCK_NAME, hold_run_folder

HOLDER = """
import os, sys, time
from mnv3cli.training.lock import hold_run_folder
with hold_run_folder(sys.argv[1]):
    child = os.fork()  # like a DataLoader worker: it must not keep the lock once the run dies
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    time.sleep(60)
"""


def test_a_live_holder_is_named_and_a_killed_one_leaves_the_folder_free(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True,
                            env=cli_env())
    child = int(proc.stdout.readline())
    try:
        holder = f"pid {proc.pid} on host {socket.gethostname()}"
        with pytest.raises(UserError, match=rf"^{folder}: in use by another training run \({holder}\)"):
            with hold_run_folder(folder):
                pass
        proc.kill()  # kill -9: no chance to clean up; its forked child lives on
        proc.wait(timeout=30)
        with hold_run_folder(folder):
            assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        proc.kill()
        os.kill(child, 9)


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
