"""Infer which MobileNetV3 a set of weights belongs to from the shapes of its tensors alone.

Files rarely say what they are: a torchvision ``.pth`` is a bare state dict, a TFLite graph has no
architecture name. But the sequence of convolution/linear kernel shapes identifies the variant
(Large/Small, minimalistic or not, width multiplier) and the last one gives the number of classes.
Candidates are built from :class:`~mnv3cli.model.MobileNetV3` itself, so the rules cannot drift from
the model.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

import torch

from ..errors import UserError
from ..model import ARCHS, MobileNetV3
from ..registry import MODELS

# Width multipliers tried, most common first: the published ones (TF, timm, torchvision) and the
# usual custom ones. Only widths whose layer count matches are ever built.
WIDTHS = (1.0, 0.75, 0.5, 1.25, 0.35, 1.5)

Shape = tuple[int, ...]


def kernel_shape(shape: Iterable[int]) -> Shape:
    """A conv/linear weight shape with trailing 1x1 dims dropped: a Linear equals a 1x1 conv."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 2 and shape[-1] == 1 and shape[-2] == 1:
        shape = shape[:-2]
    return shape


def kernel_shapes(state_dict: Mapping[str, torch.Tensor]) -> list[tuple[str, Shape]]:
    """(key, kernel shape) of every conv/linear weight (tensors of 2 or more dims), in file order."""
    return [(k, kernel_shape(v.shape)) for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.dim() >= 2]


@functools.cache
def _candidate(size: str, minimal: bool, width: float) -> tuple[tuple[str, Shape], ...]:
    model = MobileNetV3(size, width=width, minimal=minimal)
    return tuple(kernel_shapes(model.state_dict()))


def model_name_for(arch: Mapping) -> str:
    """The registry name of an architecture, or ``custom`` for one the registry does not list."""
    for entry in MODELS:
        if all(arch.get(k) == v for k, v in entry.arch.items()):
            return entry.name
    return "custom"


def infer_arch(shapes: Sequence[tuple[str, Shape]], source: str) -> tuple[dict, int]:
    """``({size, width, minimal}, num_classes)`` of the MobileNetV3 whose kernels have ``shapes``.

    ``shapes`` lists (name, kernel shape) in execution order, the classifier last. Raises
    :class:`UserError` naming the first tensor that fits no variant.
    """
    if not shapes:
        raise UserError(f"{source}: holds no weight tensors")
    body, (_, last) = list(shapes[:-1]), shapes[-1]
    closest: tuple[int, str, Shape, Shape, str] | None = None
    for size in ARCHS:
        for minimal in (False, True):
            if len(_candidate(size, minimal, 1.0)) != len(shapes):
                continue
            for width in WIDTHS:
                cand = _candidate(size, minimal, width)
                *cand_body, (_, cand_last) = cand
                mismatch = next(
                    (i for i, ((_, got), (_, want)) in enumerate(zip(body, cand_body, strict=True)) if got != want),
                    None,
                )
                if mismatch is None and len(last) == 2 and last[1:] == cand_last[1:]:
                    return {"size": size, "width": width, "minimal": minimal}, last[0]
                where = len(body) if mismatch is None else mismatch
                if closest is None or where > closest[0]:
                    got_key, got = shapes[where]
                    closest = (
                        where,
                        got_key,
                        got,
                        cand[where][1],
                        f"{size}{'-minimal' if minimal else ''} width {width}",
                    )
    if closest is None:
        counts = sorted({len(_candidate(s, m, 1.0)) for s in ARCHS for m in (False, True)})
        raise UserError(
            f"{source}: holds {len(shapes)} convolution/linear weights; a MobileNetV3 has "
            f"{', '.join(map(str, counts))}, so these are weights for another architecture"
        )
    _, key, got, want, name = closest
    raise UserError(
        f"{source}: not a known MobileNetV3: tensor {key!r} has shape {got}, the closest variant ({name}) needs {want}"
    )
