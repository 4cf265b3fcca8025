"""OpenVINO and signals: after compiled models are released in the order they were made, a signal
with a Python handler (Ctrl-C, SIGTERM, a DataLoader's SIGCHLD) still reaches its handler.

OpenVINO's CPU plugin left the thread with an unmapped alternate signal stack in that case, so the
kernel killed the process with SIGSEGV instead (see ``mnv3cli.inference.signal_stack``). Run in a
child process: the failure takes the whole interpreter down."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("openvino")

SCRIPT = r"""
import gc, os, signal, sys
import numpy as np
from mnv3cli.model import MobileNetV3
from mnv3cli.inference.export import export_onnx
from mnv3cli.inference.openvino_backend import OpenVinoBackend
from mnv3cli.inference import signal_stack

graph = export_onnx(MobileNetV3("small", num_classes=10).eval(), sys.argv[1])
before = signal_stack.current()
first = OpenVinoBackend(graph, threads=1)
second = OpenVinoBackend(graph, threads=1)
first(np.zeros((1, 3, 224, 224), np.float32))
del first; gc.collect()
del second; gc.collect()
assert signal_stack.current() == before, (signal_stack.current(), before)
got = []
signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
os.kill(os.getpid(), signal.SIGUSR1)
print("handled" if got else "not handled")
"""


@pytest.mark.parametrize("faulthandler", [False, True], ids=["plain", "faulthandler"])
def test_a_signal_handler_runs_after_compiled_models_are_released_in_creation_order(tmp_path, faulthandler):
    """With ``-X faulthandler`` the thread starts with an alternate stack of its own (as under
    pytest); without, with none: both must be the stack it ends with."""
    flags = ["-X", "faulthandler"] if faulthandler else []
    proc = subprocess.run(
        [sys.executable, *flags, "-c", SCRIPT, str(tmp_path / "small.onnx")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.strip().splitlines()[-1] == "handled"
