"""``train --resume`` refuses a ``last.pt`` whose training state changed on disk, with one line and
exit 2, instead of training on garbage (issue 24, item 6)."""

from __future__ import annotations

import numpy as np
import torch

from helpers import assert_one_user_error, make_shapes


def test_resume_refuses_a_nan_written_over_an_adam_moment(run_cli, tmp_path):
    data = make_shapes(tmp_path / "shapes", per_class=(6, 3), size=32)
    args = ("train", data, "--resolution", "32", "-j", "1", "-b", "6", "--optimizer", "adamw")
    first = run_cli(*args, "--epochs", "1", "-o", tmp_path / "run", env={"OMP_NUM_THREADS": "1"})
    assert first.returncode == 0, first.stderr
    last = tmp_path / "run" / "last.pt"
    state = torch.load(last, weights_only=True)["extra"]["optimizer"]["state"]
    moment = max((s["exp_avg_sq"] for s in state.values()), key=torch.Tensor.numel).contiguous()
    data_bytes = bytearray(last.read_bytes())
    start = data_bytes.find(moment.numpy().tobytes())
    assert start > 0
    data_bytes[start : start + 4] = np.float32("nan").tobytes()
    last.write_bytes(bytes(data_bytes))

    again = run_cli("train", "--resume", "-o", tmp_path / "run", "--epochs", "2", env={"OMP_NUM_THREADS": "1"})
    assert_one_user_error(again, "last.pt", "training-state checksum mismatch")
