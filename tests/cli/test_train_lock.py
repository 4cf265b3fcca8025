"""``mnv3 train``'s run-folder lock against another live process, and after that process is
killed with kill -9 (a subprocess holds it), and against another process after this one was
refused a second hold.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from helpers import cli_env, default_signals
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
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
        preexec_fn=default_signals,
    )
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
        proc.wait(timeout=30)


TRY = """
import sys
from mnv3cli.errors import UserError
from mnv3cli.training.lock import hold_run_folder
try:
    with hold_run_folder(sys.argv[1]):
        print("taken")
except UserError:
    print("refused")
"""


def test_a_second_hold_refused_in_this_process_keeps_the_lock_against_others(tmp_path):
    """POSIX drops a process's lock when it closes any descriptor of the file: the refused second
    attempt must not have opened (and closed) one."""
    folder = tmp_path / "run"
    with hold_run_folder(folder):
        with pytest.raises(UserError, match=rf"in use by another training run \(pid {os.getpid()} "):
            with hold_run_folder(folder):
                pass
        other = subprocess.run(
            [sys.executable, "-c", TRY, str(folder)], capture_output=True, text=True, env=cli_env(), timeout=120
        )
        assert other.stdout.strip() == "refused", other.stderr
