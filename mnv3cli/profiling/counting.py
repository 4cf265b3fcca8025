"""What a model costs to store and to run once: parameters and compute (MACs / FLOPs / elementwise work).

Counting uses forward hooks on one batch-1 forward pass, so it works for any resolution and width and
for any ``nn.Module`` (elementwise work is recognised on this package's blocks and torch's
activations). MACs follow the paper's and torchvision's convention (:data:`CONVENTION`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from ..model.layers import InvertedResidual, SqueezeExcite

CONVENTION = (
    "MACs: multiply-accumulates of Conv2d and Linear layers for one image, bias excluded "
    "(the paper's and torchvision's convention); FLOPs = 2 x MACs; elementwise ops "
    "(activations, batch norm, SE pooling and scaling, residual adds, global pooling; one "
    "op per element) are counted separately"
)

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.GELU)
_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d)


# --------------------------------------------------------------------------------------------- params


def module_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's top-level parts, with ``stages`` split into its stages (``stages.0`` ...).

    These are the rows of the per-stage tables; every parameter belongs to exactly one group.
    """
    groups: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if name == "stages" and isinstance(child, nn.Sequential):
            groups.extend((f"stages.{i}", stage) for i, stage in enumerate(child))
        else:
            groups.append((name, child))
    return groups


def _group_of(name: str, groups: Sequence[str]) -> str:
    return next((g for g in groups if name == g or name.startswith(g + ".")), "other")


@dataclass
class ParamCount:
    total: int
    trainable: int
    per_stage: dict[str, int]
    bytes_fp32: int  # size of the state dict saved as .safetensors with float tensors in fp32
    bytes_fp16: int  # ... and in fp16


def _safetensors_size(state: dict[str, torch.Tensor], dtype: torch.dtype) -> int:
    from safetensors.torch import save

    cast = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous() for k, v in state.items()}
    return len(save(cast))


def count_parameters(model: nn.Module) -> ParamCount:
    """Total, trainable and per-stage parameter counts, and the file size in fp32 and fp16."""
    params = dict(model.named_parameters())
    groups = [g for g, _ in module_groups(model)]
    per_stage = dict.fromkeys(groups, 0)
    for name, p in params.items():
        group = _group_of(name, groups)
        per_stage[group] = per_stage.get(group, 0) + p.numel()
    state = model.state_dict()
    return ParamCount(
        total=sum(p.numel() for p in params.values()),
        trainable=sum(p.numel() for p in params.values() if p.requires_grad),
        per_stage=per_stage,
        bytes_fp32=_safetensors_size(state, torch.float32),
        bytes_fp16=_safetensors_size(state, torch.float16),
    )


# -------------------------------------------------------------------------------------------- compute


@dataclass
class LayerCount:
    """One Conv2d or Linear layer of the counted forward pass."""

    name: str
    kind: str  # "conv 3x3/2", "dwconv 5x5", "conv 1x1", "linear"
    stage: str
    output_shape: list[int]
    params: int
    macs: int


@dataclass
class ComputeCount:
    resolution: int
    macs: int
    flops: int
    elementwise: dict[str, int]
    per_stage: dict[str, int]  # MACs
    layers: list[LayerCount]
    convention: str = CONVENTION

    @property
    def elementwise_total(self) -> int:
        return sum(self.elementwise.values())


def _layer_kind(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    conv = cast(nn.Conv2d, m)
    kh, kw = conv.kernel_size
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels
    stride = f"/{conv.stride[0]}" if conv.stride[0] > 1 else ""
    return f"{'dwconv' if depthwise else 'conv'} {kh}x{kw}{stride}"


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    """Multiplies per image: every output element costs one MAC per weight that touches it."""
    if isinstance(m, nn.Linear):
        return out[0].numel() * m.in_features
    conv = cast(nn.Conv2d, m)
    kh, kw = conv.kernel_size
    return out[0].numel() * (conv.in_channels // conv.groups) * kh * kw


def _elementwise(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> dict[str, int]:
    if isinstance(m, _ACTIVATIONS):
        return {"activation": out[0].numel()}
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return {"batchnorm": out[0].numel()}
    if isinstance(m, SqueezeExcite):  # the mean over H x W and the x * gate product
        return {"se_pool": inp[0].numel(), "se_scale": out[0].numel()}
    if isinstance(m, InvertedResidual) and m.use_residual:
        return {"residual_add": out[0].numel()}
    if isinstance(m, _POOLS):
        return {"global_pool" if out[0].numel() == out.shape[1] else "pool": inp[0].numel()}
    return {}


def count_compute(model: nn.Module, resolution: int = 224, in_channels: int = 3) -> ComputeCount:
    """Count MACs per Conv2d/Linear layer and elementwise ops in one batch-1 forward pass."""
    groups = [g for g, _ in module_groups(model)]
    layers: list[LayerCount] = []
    elementwise: dict[str, int] = {}

    def hook(name: str):
        def record(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                layers.append(
                    LayerCount(
                        name,
                        _layer_kind(m),
                        _group_of(name, groups),
                        list(out.shape[1:]),
                        sum(p.numel() for p in m.parameters()),
                        _macs(m, out),
                    )
                )
            for key, n in _elementwise(m, args[0], out).items():
                elementwise[key] = elementwise.get(key, 0) + n

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    param = next(model.parameters(), None)
    x = torch.zeros(1, in_channels, resolution, resolution, device=param.device if param is not None else None)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    per_stage = dict.fromkeys(groups, 0)
    for layer in layers:
        per_stage[layer.stage] = per_stage.get(layer.stage, 0) + layer.macs
    macs = sum(layer.macs for layer in layers)
    return ComputeCount(
        resolution=resolution, macs=macs, flops=2 * macs, elementwise=elementwise, per_stage=per_stage, layers=layers
    )
