"""Hostile weight files: every refused pickle says what it would have run, and corrupt values
(NaN, infinity) are refused by name instead of answering "nan %".
"""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.weights.readers import check_finite, read_torch


class RunsCommand:
    """Unpickling this calls ``os.system``: the classic attack on ``torch.load``."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("container", ["zip", "plain"])
def test_os_system_pickles_are_refused_by_name(tmp_path, container, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"weight": torch.zeros(2), "hook": RunsCommand(marker)}
    if container == "zip":
        torch.save(payload, path, pickle_protocol=protocol)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(UserError) as err:
        read_torch(path)
    assert str(err.value).startswith(f"{path}: refused: loading it would import and run ")
    assert "system" in str(err.value)
    assert not marker.exists()


def test_a_corrupt_file_is_not_called_hostile(tmp_path):
    path = tmp_path / "broken.pt"
    torch.save({"weight": torch.zeros(4)}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(UserError, match="not a readable PyTorch file"):
        read_torch(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(bad):
    state = {"stem.conv.weight": torch.zeros(3), "classifier.bias": torch.tensor([0.0, bad, 1.0])}
    with pytest.raises(UserError) as err:
        check_finite(state, "model.pt")
    assert str(err.value) == (
        "model.pt: tensor 'classifier.bias' holds 1 NaN or infinite value(s); the weights are corrupt"
    )


def test_finite_weights_and_integer_buffers_pass():
    check_finite({"w": torch.randn(3, 3), "num_batches_tracked": torch.tensor(5)}, "ok.pt")
