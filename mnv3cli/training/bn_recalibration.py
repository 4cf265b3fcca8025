"""Give BatchNorm layers whose statistics were folded away real statistics, without changing the model.

TFLite models arrive with BatchNorm folded into the convolutions: the importer leaves each BN as a
plain affine map (running mean 0, variance 1). Inference is exact, but training such a network is
training one *without* normalisation: in train mode BN would suddenly normalise with batch
statistics and wreck the pretrained function; with frozen BN the network is badly conditioned
(plain SGD at lr 1e-3 already diverges on ants vs bees). :func:`unfold_batchnorm` measures each BN's
input statistics on a few training images and moves them into ``running_mean``/``running_var``,
rescaling ``weight``/``bias`` so that the eval-mode output stays exactly the same function. After
that, batch statistics in train mode match the running ones and fine-tuning behaves as for a
network trained with BatchNorm.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def has_folded_batchnorm(model: nn.Module) -> bool:
    """Whether every BatchNorm holds the identity statistics (mean 0, variance 1 - eps or 1): in
    pretrained weights, the sign of folding (an untrained model looks the same)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return bool(norms) and all(
        m.running_mean is not None
        and not m.running_mean.any()
        and m.running_var is not None
        and torch.allclose(m.running_var, torch.ones_like(m.running_var), atol=2 * m.eps)
        for m in norms
    )


@torch.no_grad()
def unfold_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every BatchNorm's statistics to those of its inputs over ``batches`` (eval mode),
    compensating its affine parameters so that the model's eval-mode function is unchanged.
    Returns the number of images measured."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    sums: dict[nn.modules.batchnorm._BatchNorm, list[Any]] = {}  # count, sum, sum of squares

    def measure(module, inputs):
        x = inputs[0].double()
        dims = [d for d in range(x.ndim) if d != 1]
        total = sums.setdefault(module, [torch.zeros((), dtype=torch.float64), 0, 0])
        total[0] = total[0] + x.numel() // x.shape[1]
        total[1] = total[1] + x.sum(dims)
        total[2] = total[2] + (x * x).sum(dims)

    hooks = [m.register_forward_pre_hook(measure) for m in norms]
    training = model.training
    model.eval()
    images = 0
    try:
        for batch in batches:
            model(batch)
            images += len(batch)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)
    for m, (count, s1, s2) in sums.items():
        if m.running_mean is None or m.running_var is None:
            raise ValueError(f"{type(m).__name__} keeps no running statistics: nothing to unfold")
        mean = s1 / count
        var = (s2 / count - mean * mean).clamp_min(0)
        scale = m.weight.double() / torch.sqrt(m.running_var.double() + m.eps)  # the folded affine map
        m.bias.copy_(m.bias.double() + (mean - m.running_mean.double()) * scale)
        m.weight.copy_(scale * torch.sqrt(var + m.eps))
        m.running_mean.copy_(mean)
        m.running_var.copy_(var)
    return images
