"""``ModelCard``: the one record of what a model is, apart from its tensors.

The loader returns it (beside the ``nn.Module``), the ONNX cache stores it beside the graph, a
runtime carries it to ``predict``/``evaluate``, and checkpoints embed its fields. One shape for
these facts means a field added here reaches every place at once (torchvision's ``Weights.meta``
plays the same part). Plain data: no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .types import Preprocess

MAX_CLASSES = 100_000  # outputs a card may name (ImageNet-21k has 21,841)
MAX_LABEL = 1_000  # characters in one class name (a folder name has at most 255 bytes)
TEMPERATURES = (0.01, 100.0)  # calibration fits within [0.05, 20]
HEADS = ("softmax", "sigmoid")  # single-label (one class per image) | multi-label (any set of classes)


def class_label(class_names: Sequence[str], index: int) -> str:
    """The text shown for output ``index``: its class name, or its number when the model has no such
    class (a head wider than its names), the same in predict, evaluate and every report."""
    return class_names[index] if 0 <= index < len(class_names) else str(index)


@dataclass(frozen=True)
class ModelCard:
    model_name: str  # registry name (e.g. "mobilenetv3_small_100") or "custom"
    class_names: tuple[str, ...]  # one per output
    preprocess: Preprocess  # what the weights expect
    wordnet_ids: tuple[str, ...] | None = None  # ImageNet wnids when the classes are ImageNet-1k
    source: str = ""  # what was loaded: a registry tag or a path
    sha256: str | None = None  # content hash of the weights file read (keys the ONNX cache)
    arch: Mapping[str, Any] = field(default_factory=dict)  # MobileNetV3(**arch) rebuilds the model
    temperature: float = 1.0  # logits are divided by it before the softmax (calibration; 1 = none)
    head: str = "softmax"  # "sigmoid": multi-label, each class scored on its own
    thresholds: tuple[float, ...] | None = None  # sigmoid head: per-class decision thresholds (None: 0.5)
    class_temperatures: tuple[float, ...] | None = None  # sigmoid head: each class's logit divided by its own

    def __post_init__(self) -> None:
        """Accept lists, store tuples (hashable, immutable); check every field against the bounds
        above (``ValueError``), since a card may come from an untrusted file."""
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.wordnet_ids is not None:
            object.__setattr__(self, "wordnet_ids", tuple(str(w) for w in self.wordnet_ids))
        object.__setattr__(self, "arch", dict(self.arch))
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, int | float):
            raise ValueError(f"temperature {self.temperature!r} is not a number")
        object.__setattr__(self, "temperature", float(self.temperature))
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", _numbers("threshold", self.thresholds, 0.0, 1.0))
        if self.class_temperatures is not None:
            object.__setattr__(
                self, "class_temperatures", _numbers("temperature", self.class_temperatures, *TEMPERATURES)
            )
        self._check()

    def _check(self) -> None:
        if not isinstance(self.preprocess, Preprocess):
            raise ValueError(f"preprocess {self.preprocess!r} is not a Preprocess")
        if not 1 <= len(self.class_names) <= MAX_CLASSES:
            raise ValueError(f"{len(self.class_names)} class names; a model has 1 to {MAX_CLASSES:,}")
        long = next((c for c in self.class_names if len(c) > MAX_LABEL), None)
        if long is not None:
            raise ValueError(f"a class name of {len(long):,} characters (at most {MAX_LABEL:,})")
        if self.wordnet_ids is not None and len(self.wordnet_ids) != len(self.class_names):
            raise ValueError(f"{len(self.wordnet_ids)} WordNet ids for {len(self.class_names)} classes")
        low, high = TEMPERATURES
        if not low <= self.temperature <= high:  # NaN fails too
            raise ValueError(f"temperature {self.temperature} must be in [{low:g}, {high:g}]")
        if self.head not in HEADS:
            raise ValueError(f"head {self.head!r} must be one of {', '.join(HEADS)}")
        for name in ("thresholds", "class_temperatures"):
            values = getattr(self, name)
            if values is None:
                continue
            if self.head != "sigmoid":
                raise ValueError(f"{name.replace('_', ' ')} belong to a sigmoid (multi-label) head")
            if len(values) != len(self.class_names):
                raise ValueError(f"{len(values)} {name.replace('_', ' ')} for {len(self.class_names)} classes")

    @property
    def multi_label(self) -> bool:
        return self.head == "sigmoid"

    def decision_thresholds(self) -> tuple[float, ...]:
        """The per-class thresholds a sigmoid head's scores are compared with (0.5 where none were tuned)."""
        return self.thresholds if self.thresholds is not None else (0.5,) * len(self.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label(self, index: int) -> str:
        """The name of output ``index`` (its number when there is no such class)."""
        return class_label(self.class_names, index)

    def with_classes(self, class_names: Sequence[str], wordnet_ids: Sequence[str] | None = None) -> ModelCard:
        """The card of a new head: the old temperature and thresholds described the old logits, so they go."""
        ids = tuple(wordnet_ids) if wordnet_ids is not None else None
        return replace(
            self,
            class_names=tuple(class_names),
            wordnet_ids=ids,
            temperature=1.0,
            thresholds=None,
            class_temperatures=None,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the ONNX cache's meta.json, ``mnv3 serve``'s ``/v1/model``)."""
        return {
            "model_name": self.model_name,
            "class_names": list(self.class_names),
            "wordnet_ids": list(self.wordnet_ids) if self.wordnet_ids is not None else None,
            "preprocess": self.preprocess.to_dict(),
            "source": self.source,
            "sha256": self.sha256,
            "arch": dict(self.arch),
            "temperature": self.temperature,
            "head": self.head,
            "thresholds": list(self.thresholds) if self.thresholds is not None else None,
            "class_temperatures": list(self.class_temperatures) if self.class_temperatures is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        """The card :meth:`to_dict` wrote; ``ValueError``/``KeyError``/``TypeError`` for one that
        is damaged or out of bounds."""
        if not isinstance(d.get("class_names"), list) or not all(isinstance(c, str) for c in d["class_names"]):
            raise ValueError("class_names must be a list of strings")
        return cls(
            model_name=str(d["model_name"]),
            class_names=tuple(d["class_names"]),
            preprocess=Preprocess.from_dict(d["preprocess"]),
            wordnet_ids=d.get("wordnet_ids"),
            source=str(d.get("source", "")),
            sha256=d.get("sha256"),
            arch=d.get("arch") or {},
            temperature=d.get("temperature", 1.0),
            head=str(d.get("head", "softmax")),
            thresholds=d.get("thresholds"),
            class_temperatures=d.get("class_temperatures"),
        )


def _numbers(what: str, values: Any, low: float, high: float) -> tuple[float, ...]:
    """Per-class numbers from an untrusted file: a list of finite numbers in [low, high] (``ValueError``)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise ValueError(f"{what}s must be a list of numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not low <= float(v) <= high:  # NaN fails
            raise ValueError(f"{what} {v!r} must be a number in [{low:g}, {high:g}]")
        out.append(float(v))
    return tuple(out)
