"""Map foreign state dicts (torchvision, timm, wrapped or compiled models) onto our model's keys.

torchvision's ``mobilenet_v3_*``, timm's ``mobilenetv3_*`` / ``tf_mobilenetv3_*`` and this project's
:class:`~mnv3cli.model.MobileNetV3` hold the same tensors in the same execution order; only the names
differ (and the 1280/1024 "FC" is a ``Linear`` in torchvision but a 1x1 ``Conv2d`` in timm). So the
mapping pairs tensors by position and checks every shape, instead of keeping three hand-written key
tables in step with upstream renames.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import UserError

WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel/DDP (``module.``) and torch.compile (``_orig_mod.``) key prefixes."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def _tensors(state_dict: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and not k.endswith("num_batches_tracked")]


def remap_state_dict(state_dict: Mapping[str, torch.Tensor],
                     target: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Return ``state_dict`` renamed (and reshaped) to the keys of ``target``.

    ``target`` is the destination model's own ``state_dict()``. Raises :class:`UserError` naming the
    first tensor whose shape does not fit, or the counts when the layouts differ in size.
    """
    state_dict = strip_prefixes(state_dict)
    wanted = _tensors(target)
    if all(k in state_dict for k, _ in wanted):
        pairs = [(k, state_dict[k], k, t) for k, t in wanted]
    else:
        given = _tensors(state_dict)
        if len(given) != len(wanted):
            raise UserError(f"{source}: holds {len(given)} tensors but the model needs {len(wanted)}; "
                            "it is weights for another architecture")
        pairs = [(gk, gv, wk, wv) for (gk, gv), (wk, wv) in zip(given, wanted)]
    out = {}
    for src_key, value, dst_key, ref in pairs:
        if value.shape != ref.shape:
            if value.numel() != ref.numel() or value.dim() == ref.dim():
                raise UserError(f"{source}: tensor {src_key!r} has shape {tuple(value.shape)} but "
                                f"the model's {dst_key!r} needs {tuple(ref.shape)}")
            value = value.reshape(ref.shape)
        out[dst_key] = value
    return out
