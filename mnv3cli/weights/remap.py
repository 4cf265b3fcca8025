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

# Execution order of submodule names, one total order consistent with all three layouts (ours:
# stem/stages/head, timm: conv_stem/blocks/conv_head, torchvision: features/classifier), except
# timm's depthwise-separable block (no ``conv_pwl``), whose members run in :data:`_TIMM_DS` order.
_MODULE_ORDER = (
    "stem",
    "conv_stem",
    "features",
    "stages",
    "conv",
    "conv_pw",
    "bn1",
    "blocks",
    "reduce",
    "conv_reduce",
    "fc1",
    "expand",
    "conv_expand",
    "fc2",
    "depthwise",
    "conv_dw",
    "bn2",
    "se",
    "project",
    "conv_pwl",
    "bn",
    "bn3",
    "head",
    "conv_head",
    "norm_head",
    "pre_logits",
    "classifier",
)
_TIMM_DS = ("conv_dw", "bn1", "se", "conv_pw", "bn2")
_LEAF_ORDER = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def strip_prefixes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel/DDP (``module.``) and torch.compile (``_orig_mod.``) key prefixes."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def execution_order(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` in execution order, rebuilt from module names when its keys are sorted.

    A torch file keeps the order the model registered its tensors, which the positional mapping
    relies on; ``.safetensors`` stores keys sorted by name, which loses it.
    """
    keys = list(state_dict)
    if keys != sorted(keys):
        return dict(state_dict)
    separable = {k.split(".conv_dw.")[0] for k in keys if ".conv_dw." in k}
    separable -= {k.split(".conv_pwl.")[0] for k in keys if ".conv_pwl." in k}

    def rank(key: str) -> list[tuple[int, str]]:
        *path, leaf = key.split(".")
        ranks = []
        for i, part in enumerate(path):
            order = _TIMM_DS if ".".join(path[:i]) in separable else _MODULE_ORDER
            ranks.append(
                (int(part), "") if part.isdigit() else (order.index(part) if part in order else len(order), part)
            )
        return ranks + [(_LEAF_ORDER.index(leaf) if leaf in _LEAF_ORDER else len(_LEAF_ORDER), leaf)]

    return {k: state_dict[k] for k in sorted(keys, key=rank)}


def _tensors(state_dict: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [
        (k, v) for k, v in state_dict.items() if isinstance(v, torch.Tensor) and not k.endswith("num_batches_tracked")
    ]


def remap_state_dict(
    state_dict: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Return ``state_dict`` renamed (and reshaped) to the keys of ``target``.

    ``target`` is the destination model's own ``state_dict()``. Raises :class:`UserError` naming the
    first tensor whose shape does not fit, or the counts when the layouts differ in size.
    """
    state_dict = execution_order(strip_prefixes(state_dict))
    wanted = _tensors(target)
    if all(k in state_dict for k, _ in wanted):
        pairs = [(k, state_dict[k], k, t) for k, t in wanted]
    else:
        given = _tensors(state_dict)
        if len(given) != len(wanted):
            raise UserError(
                f"{source}: holds {len(given)} tensors but the model needs {len(wanted)}; "
                "it is weights for another architecture"
            )
        pairs = [(gk, gv, wk, wv) for (gk, gv), (wk, wv) in zip(given, wanted, strict=False)]
    out = {}
    for src_key, value, dst_key, ref in pairs:
        if value.shape != ref.shape:
            if value.numel() != ref.numel() or value.dim() == ref.dim():
                raise UserError(
                    f"{source}: tensor {src_key!r} has shape {tuple(value.shape)} but "
                    f"the model's {dst_key!r} needs {tuple(ref.shape)}"
                )
            value = value.reshape(ref.shape)
        out[dst_key] = value
    return out
