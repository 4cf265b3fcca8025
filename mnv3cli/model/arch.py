"""Architecture tables of the paper and the width/minimalistic rules applied to them.

The tables are copied from Howard et al., "Searching for MobileNetV3" (2019): Table 1 (Large) and
Table 2 (Small). Channel numbers are stored as printed for width 1.0; :func:`resolve_blocks` turns
them into concrete channel counts for any width multiplier, following the rounding that TensorFlow's
model garden and timm use (so weights published for the 0.75 models fit).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without dropping more than 10 %.

    This is the rounding of the reference implementations (TF-slim ``_make_divisible``, torchvision,
    timm); using anything else changes channel counts and breaks weight compatibility.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


@dataclass(frozen=True)
class BlockSpec:
    """One row of the paper's table: a bottleneck (bneck) block."""

    kernel: int
    expansion: int  # "exp size" column, at width 1.0
    out: int  # "#out" column, at width 1.0
    se: bool
    activation: str  # "relu" or "hardswish"
    stride: int


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem width, bneck rows grouped into stages, and the head widths."""

    name: str
    stem: int
    stages: tuple[tuple[BlockSpec, ...], ...]
    head_conv: int  # the last 1x1 conv before pooling (960 / 576)
    head_features: int  # the 1x1 "FC" after pooling (1280 / 1024); not width-scaled, as in TF/timm


def _rows(*rows: tuple) -> tuple[BlockSpec, ...]:
    return tuple(BlockSpec(k, e, o, se, "hardswish" if nl == "HS" else "relu", s) for k, e, o, se, nl, s in rows)


# Table 1 of the paper. Stages group blocks by output resolution / width, as timm does.
LARGE = ArchSpec(
    name="large",
    stem=16,
    stages=(
        _rows((3, 16, 16, False, "RE", 1)),
        _rows((3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1)),
        _rows((5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1)),
        _rows(
            (3, 240, 80, False, "HS", 2),
            (3, 200, 80, False, "HS", 1),
            (3, 184, 80, False, "HS", 1),
            (3, 184, 80, False, "HS", 1),
        ),
        _rows((3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1)),
        _rows((5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1)),
    ),
    head_conv=960,
    head_features=1280,
)

# Table 2 of the paper. (The table marks SE on the last 1x1 conv; no implementation has it there.)
SMALL = ArchSpec(
    name="small",
    stem=16,
    stages=(
        _rows((3, 16, 16, True, "RE", 2)),
        _rows((3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1)),
        _rows((5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1)),
        _rows((5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1)),
        _rows((5, 288, 96, True, "HS", 2), (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1)),
    ),
    head_conv=576,
    head_features=1024,
)

ARCHS = {"large": LARGE, "small": SMALL}


@dataclass(frozen=True)
class ResolvedBlock:
    """A bneck block with concrete channel counts for one width multiplier."""

    in_channels: int
    expanded: int
    out_channels: int
    kernel: int
    stride: int
    se_channels: int  # 0 when the block has no squeeze-and-excite
    activation: str


def minimalistic(spec: ArchSpec) -> ArchSpec:
    """The TF model garden's "minimalistic" variant: no SE, ReLU only, 3x3 kernels only."""
    stages = tuple(tuple(replace(b, kernel=3, se=False, activation="relu") for b in stage) for stage in spec.stages)
    return replace(spec, name=spec.name + "_minimal", stages=stages)


def resolve_blocks(spec: ArchSpec, width: float) -> tuple[int, list[list[ResolvedBlock]], int]:
    """Concrete (stem, stages, head_conv) channel counts for a width multiplier.

    Expansion widths scale with the (rounded) input width by the table's ratio exp/in, which is how
    TF and timm derive them; at width 1.0 this reproduces the table exactly.
    """
    stem = make_divisible(spec.stem * width) if width >= 0.75 else spec.stem
    in_ch, in_table = stem, spec.stem
    stages: list[list[ResolvedBlock]] = []
    for stage in spec.stages:
        blocks = []
        for b in stage:
            ratio = b.expansion / in_table
            expanded = make_divisible(in_ch * ratio)
            out_ch = make_divisible(b.out * width)
            se_ch = make_divisible(expanded * 0.25) if b.se else 0
            blocks.append(ResolvedBlock(in_ch, expanded, out_ch, b.kernel, b.stride, se_ch, b.activation))
            in_ch, in_table = out_ch, b.out
        stages.append(blocks)
    return stem, stages, make_divisible(spec.head_conv * width)
