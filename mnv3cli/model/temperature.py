"""Temperature scaling: the logits divided by one fitted number, so probabilities mean what they say.

Dividing every logit by the same positive temperature keeps their order (top-1 and every top-k stay
the same) and only sharpens (T < 1) or softens (T > 1) the softmax. Wrapping the network in a module
puts the division inside whatever is run or exported from it: the eager model, an ONNX graph, a
TorchScript file.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn


class TemperatureScaled(nn.Module):
    """``model(x) / temperature``."""

    __jit_unused_properties__ = ["num_classes"]  # TorchScript compiles forward only

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.model = model
        self.temperature = float(temperature)

    @property
    def num_classes(self) -> int:
        return cast(int, self.model.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


def with_temperature(model: nn.Module, temperature: float) -> nn.Module:
    """``model`` itself at temperature 1 (graphs and files stay exactly as before), else wrapped."""
    return model if temperature == 1.0 else TemperatureScaled(model, temperature)
