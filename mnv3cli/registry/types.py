"""The record types of the registry (importable without torch)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from typing import Any, SupportsInt, cast

# The bounds every Preprocess is checked against when it is made, so that a card read from a file
# (an exported graph's, a checkpoint's, a cache entry's) cannot ask for a 60000-pixel resize, an
# unknown resampling filter or a division by a zero std. Wide enough for every real set of weights.
INPUT_SIZES = (16, 4096)  # pixels, as --resolution accepts
MAX_RESIZE_RATIO = 4  # input_size <= resize <= 4 x input_size: the centre crop keeps >= 1/16 of the area
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")
MEAN_RANGE = (-1.0, 2.0)  # pixels are scaled to [0, 1] first
STD_RANGE = (1e-3, 100.0)


def _channels(name: str, values, low: float, high: float) -> tuple[float, float, float]:
    values = tuple(float(v) for v in values)
    if len(values) != 3 or not all(low <= v <= high for v in values):  # NaN fails every comparison
        raise ValueError(f"{name} {list(values)} must be 3 numbers in [{low:g}, {high:g}]")
    return values


@dataclass(frozen=True)
class Preprocess:
    """How images must be prepared for a set of weights (evaluation transform).

    Resize the shorter side to ``resize`` with ``interpolation``, centre-crop ``input_size``,
    scale pixels to [0, 1], then normalise with ``mean``/``std``. Every field is checked against the
    bounds above when it is made (``ValueError``): a card is untrusted input.
    """

    input_size: int = 224
    resize: int = 256
    interpolation: str = "bilinear"  # "bilinear" | "bicubic" | "nearest"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        for name in ("input_size", "resize"):
            value = getattr(self, name)
            # cast: every real number type has __int__, but typeshed's numbers.Real declares none
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(cast(SupportsInt, value)):
                raise ValueError(f"{name} {value!r} must be a whole number")
            object.__setattr__(self, name, int(cast(SupportsInt, value)))
        low, high = INPUT_SIZES
        if not low <= self.input_size <= high:
            raise ValueError(f"input_size {self.input_size} must be in [{low}, {high}]")
        if not self.input_size <= self.resize <= MAX_RESIZE_RATIO * self.input_size:
            raise ValueError(
                f"resize {self.resize} must be in [{self.input_size}, {MAX_RESIZE_RATIO * self.input_size}] "
                f"(input_size {self.input_size} to {MAX_RESIZE_RATIO} times it)"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} must be one of {', '.join(INTERPOLATIONS)}")
        object.__setattr__(self, "mean", _channels("mean", self.mean, *MEAN_RANGE))
        object.__setattr__(self, "std", _channels("std", self.std, *STD_RANGE))

    @property
    def crop_pct(self) -> float:
        return self.input_size / self.resize

    def at_resolution(self, input_size: int | None) -> Preprocess:
        """The same preprocessing for another input size, keeping the crop ratio (224/256 -> 288/329):
        the one rule for every command's ``--resolution``."""
        if not input_size or input_size == self.input_size:
            return self
        return replace(self, input_size=input_size, resize=round(input_size / self.crop_pct))

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(
            input_size=int(d["input_size"]),
            resize=int(d["resize"]),
            interpolation=str(d["interpolation"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
        )


@dataclass(frozen=True)
class Bundled:
    """Weights shipped inside the package (``mnv3cli/bundled/``): nothing to download. How the file
    was made is recorded so that a test can make it again and compare the bytes."""

    file: str  # name under mnv3cli/bundled/
    sha256: str  # of that file; checked on every use
    made_from: str  # the file given to `mnv3 convert` (name only)
    made_from_sha256: str
    convert_args: tuple[str, ...]  # `mnv3 convert MADE_FROM -o FILE *convert_args`

    @property
    def recipe(self) -> str:
        """The command that made the file, as a person would type it."""
        import shlex

        return shlex.join(["mnv3", "convert", self.made_from, "-o", self.file, *self.convert_args])


@dataclass(frozen=True)
class WeightSource:
    """One published set of weights: where it lives, what it expects, how good it is."""

    tag: str  # "torchvision:IMAGENET1K_V1", "timm:<hub id>", "tflite:<Google checkpoint name>"
    url: str
    preprocess: Preprocess
    top1: float | None = None  # published ImageNet-1k val accuracy, percent
    top5: float | None = None
    arch: dict[str, Any] = field(default_factory=dict)  # model overrides these weights need
    num_classes: int = 1000  # outputs of the file; 1001: TF's "background" at index 0 (dropped)
    hf_hub_id: str | None = None  # timm weights also live on the Hugging Face hub
    member: str | None = None  # file to extract when ``url`` is an archive
    bundled: Bundled | None = None  # shipped inside the package (``url`` is then empty)

    @property
    def kind(self) -> str:
        return self.tag.partition(":")[0]

    @property
    def hash_prefix(self) -> str | None:
        """torchvision/timm release files carry a sha256 prefix in their name (``-047dcff4.pth``)."""
        stem = self.url.rsplit("/", 1)[-1].split(".", 1)[0]
        tail = stem.rsplit("-", 1)[-1] if "-" in stem else ""
        return tail if len(tail) >= 6 and all(c in "0123456789abcdef" for c in tail) else None


@dataclass(frozen=True)
class ModelEntry:
    """A named architecture and the weights published for it (the first is the default)."""

    name: str
    size: str  # "small" | "large"
    width: float
    params: int  # at 1000 classes
    macs: int  # multiply-accumulates at 224x224 (conv + linear), the paper's convention
    weights: tuple[WeightSource, ...]
    minimal: bool = False
    aliases: tuple[str, ...] = ()

    @property
    def arch(self) -> dict[str, Any]:
        """Keyword arguments of :class:`mnv3cli.model.MobileNetV3` for this entry."""
        return {"size": self.size, "width": self.width, "minimal": self.minimal}

    @property
    def default_weights(self) -> WeightSource | None:
        return self.weights[0] if self.weights else None
