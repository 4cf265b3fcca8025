"""Building blocks of MobileNetV3: conv+BN+activation, squeeze-and-excite, the bneck block."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "hardswish": nn.Hardswish}


class SamePad2d(nn.Module):
    """TensorFlow "SAME" padding: as much as needed, the odd pixel going bottom/right.

    Weights trained in TensorFlow expect it on stride-2 convolutions; PyTorch's symmetric padding
    shifts the sampling grid by one pixel and costs those weights ~25 points of top-1.
    """

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def _pad(self, size: int) -> tuple[int, int]:
        out = math.ceil(size / self.stride)
        total = max((out - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pad(x.shape[-2])
        left, right = self._pad(x.shape[-1])
        return F.pad(x, (left, right, top, bottom))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}"


def static_padding(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose :class:`SamePad2d` layers are fixed pads for ``example``'s size.

    ``SamePad2d`` reads its input's height and width on every call, so an exported graph recomputes
    each padding at run time (Shape, Gather, Cast, Sub, Concat around each Pad: half the nodes of a
    TF-padded MobileNetV3's ONNX graph, and a third of its latency). For a fixed input resolution the
    paddings are constants: one dry run at ``example``'s size records each layer's input size and
    the copy uses ``nn.ZeroPad2d`` with the same amounts, so it computes the same function at that
    size (any batch) and exports without shape arithmetic. ``model`` is left untouched; a model
    without ``SamePad2d`` comes back as an unchanged copy.
    """
    model = copy.deepcopy(model)
    training = model.training
    sizes: dict[str, tuple[int, int]] = {}
    named = {name: module for name, module in model.named_modules() if isinstance(module, SamePad2d)}
    hooks = [
        module.register_forward_pre_hook(lambda m, args, name=name: sizes.__setitem__(name, tuple(args[0].shape[-2:])))
        for name, module in named.items()
    ]
    try:
        with torch.no_grad():
            model.eval()(example[:1])  # eval: a dry run must not move BatchNorm statistics
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    for name, module in named.items():
        if name not in sizes:  # never reached by forward (unused branch): keep it dynamic
            continue
        top, bottom = module._pad(sizes[name][0])
        left, right = module._pad(sizes[name][1])
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, nn.ZeroPad2d((left, right, top, bottom)))
    return model


class ConvBNAct(nn.Sequential):
    """Convolution (no bias), BatchNorm, optional activation; optionally TF "same" padded.

    Children are named ``pad`` (only when TF padding applies), ``conv``, ``bn`` and ``act`` so that
    state-dict keys stay stable whatever the padding mode.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        activation: str | None = None,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.01,
        tf_padding: bool = False,
    ) -> None:
        super().__init__()
        tf_pad = tf_padding and stride > 1
        if tf_pad:
            self.pad = SamePad2d(kernel, stride)
        self.conv = nn.Conv2d(
            in_ch, out_ch, kernel, stride, 0 if tf_pad else (kernel - 1) // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum)
        self.act = ACTIVATIONS[activation]() if activation else nn.Identity()


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite: pool, 1x1 reduce + ReLU, 1x1 expand + hard-sigmoid gate, rescale."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.gate(self.expand(self.act(self.reduce(scale))))
        return x * scale


class InvertedResidual(nn.Module):
    """The paper's bneck: [1x1 expand] -> kxk depthwise -> [SE] -> 1x1 linear projection [+ skip]."""

    def __init__(
        self,
        in_ch: int,
        expanded: int,
        out_ch: int,
        kernel: int,
        stride: int,
        se_channels: int,
        activation: str,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.01,
        tf_padding: bool = False,
    ) -> None:
        super().__init__()
        norm: dict[str, Any] = dict(bn_eps=bn_eps, bn_momentum=bn_momentum, tf_padding=tf_padding)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.expand = (
            ConvBNAct(in_ch, expanded, 1, activation=activation, **norm) if expanded != in_ch else nn.Identity()
        )
        self.depthwise = ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, activation=activation, **norm)
        self.se = SqueezeExcite(expanded, se_channels) if se_channels else nn.Identity()
        self.project = ConvBNAct(expanded, out_ch, 1, activation=None, **norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return out + x if self.use_residual else out
