"""``last.pt``'s training state is covered like its weights (issue 24, item 6): a checksum over the
optimizer, scheduler, EMA and position refuses a file changed on disk, and a NaN or infinity in the
state is refused even under a valid checksum (a run that saved it diverged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.model import MobileNetV3
from mnv3cli.registry.entries import TF
from mnv3cli.training.state import read_resume
from mnv3cli.weights.checkpoint import EXTRA_CHECKSUM, extra_sha256, save_checkpoint


def _run(tmp_path):
    """RUN/last.pt after one Adam step of a small model, with the state a training run saves."""
    torch.manual_seed(0)
    model = MobileNetV3("small", num_classes=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    extra = {
        "optimizer": optimizer.state_dict(),
        "scheduler": {"base_values": [1e-3], "t_initial": 10},
        "scaler": None,
        "ema": True,
        "train_state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "epoch": 1,
        "step": 0,
        "num_updates": 1,
    }
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(
        run / "last.pt",
        model,
        model_name="custom",
        arch={"size": "small"},
        class_names="abc",
        preprocess=TF,
        extra=extra,
    )
    return run, optimizer


def _overwrite_on_disk(path, tensor: torch.Tensor, value: float, last: bool = False) -> None:
    """Write ``value`` over the first element of ``tensor``'s bytes inside ``path`` (found by content;
    ``last``: its last copy)."""
    data = bytearray(path.read_bytes())
    content = tensor.contiguous().numpy().tobytes()
    start = data.rfind(content) if last else data.find(content)
    assert start > 0
    data[start : start + 4] = np.float32(value).tobytes()
    path.write_bytes(bytes(data))


def _largest_moment(optimizer) -> torch.Tensor:
    return max((s["exp_avg_sq"] for s in optimizer.state.values()), key=torch.Tensor.numel)


def test_an_intact_run_resumes(tmp_path):
    run, _ = _run(tmp_path)
    path, ckpt = read_resume(run)
    assert ckpt[EXTRA_CHECKSUM] == extra_sha256(ckpt["extra"])


def test_an_adam_moment_overwritten_with_nan_on_disk_is_refused(tmp_path):
    run, optimizer = _run(tmp_path)
    _overwrite_on_disk(run / "last.pt", _largest_moment(optimizer), float("nan"))
    with pytest.raises(UserError, match=r"last\.pt: corrupt mnv3 checkpoint \(training-state checksum mismatch\)"):
        read_resume(run)


def test_the_trained_weights_beside_the_ema_are_covered(tmp_path):
    run, _ = _run(tmp_path)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    weight = max(ckpt["extra"]["train_state_dict"].values(), key=torch.Tensor.numel)
    _overwrite_on_disk(run / "last.pt", weight, 1e3, last=True)  # the copy beside the EMA (saved later)
    with pytest.raises(UserError, match="training-state checksum mismatch"):
        read_resume(run)


@pytest.mark.parametrize(
    "change",
    [
        lambda extra: extra["scheduler"].update(base_values=[10.0]),
        lambda extra: extra.update(num_updates=5),
        lambda extra: extra["optimizer"]["param_groups"][0].update(lr=1.0),
    ],
)
def test_scheduler_position_and_optimizer_settings_are_covered(tmp_path, change):
    run, _ = _run(tmp_path)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    change(ckpt["extra"])
    torch.save(ckpt, run / "last.pt")
    with pytest.raises(UserError, match="training-state checksum mismatch"):
        read_resume(run)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_state_is_refused_even_with_a_valid_checksum(tmp_path, bad):
    run, _ = _run(tmp_path)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    moment = next(iter(ckpt["extra"]["optimizer"]["state"].values()))["exp_avg"]
    moment.view(-1)[0] = bad
    ckpt[EXTRA_CHECKSUM] = extra_sha256(ckpt["extra"])  # as a diverged run would have saved it
    torch.save(ckpt, run / "last.pt")
    with pytest.raises(UserError, match=r"NaN or infinity \(optimizer/state/0/exp_avg\)"):
        read_resume(run)
