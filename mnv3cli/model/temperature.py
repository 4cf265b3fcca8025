"""Temperature scaling: the logits divided by one fitted number, so probabilities mean what they say.

Dividing every logit by the same positive temperature keeps their order (top-1 and every top-k stay
the same) and only sharpens (T < 1) or softens (T > 1) the softmax. Wrapping the network in a module
puts the division inside whatever is run or exported from it: the eager model, an ONNX graph, a
TorchScript file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn


class TemperatureScaled(nn.Module):
    """``model(x) / temperature``."""

    __jit_unused_properties__ = ["num_classes"]  # TorchScript compiles forward only

    def __init__(self, model: nn.Module, temperature: float, per_class: Sequence[float] | None = None) -> None:
        super().__init__()
        if not temperature > 0 or (per_class is not None and not all(t > 0 for t in per_class)):
            raise ValueError(f"temperatures must be positive, got {temperature!r}, {per_class!r}")
        self.model = model
        self.temperature = float(temperature)
        # a multi-label model's per-class temperatures (one sigmoid each): a constant of the graph
        self.register_buffer("per_class", None if per_class is None else torch.tensor(list(per_class)))

    @property
    def num_classes(self) -> int:
        return cast(int, self.model.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x) / self.temperature
        return out if self.per_class is None else out / self.per_class


def with_temperature(model: nn.Module, temperature: float, per_class: Sequence[float] | None = None) -> nn.Module:
    """``model`` itself at temperature 1 (graphs and files stay exactly as before), else wrapped;
    ``per_class``: a multi-label model's temperature of each class (``mnv3 calibrate``)."""
    if temperature == 1.0 and per_class is None:
        return model
    return TemperatureScaled(model, temperature, per_class)
