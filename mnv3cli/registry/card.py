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

    def __post_init__(self) -> None:  # accept lists; store tuples (hashable, immutable)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.wordnet_ids is not None:
            object.__setattr__(self, "wordnet_ids", tuple(self.wordnet_ids))
        object.__setattr__(self, "arch", dict(self.arch))
        object.__setattr__(self, "temperature", float(self.temperature))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label(self, index: int) -> str:
        """The name of output ``index`` (its number when there is no such class)."""
        return class_label(self.class_names, index)

    def with_classes(self, class_names: Sequence[str], wordnet_ids: Sequence[str] | None = None) -> ModelCard:
        """The card of a new head: the old temperature described the old logits, so it goes back to 1."""
        return replace(self, class_names=tuple(class_names), wordnet_ids=wordnet_ids, temperature=1.0)

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
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        return cls(
            model_name=str(d["model_name"]),
            class_names=tuple(d["class_names"]),
            preprocess=Preprocess.from_dict(d["preprocess"]),
            wordnet_ids=d.get("wordnet_ids"),
            source=str(d.get("source", "")),
            sha256=d.get("sha256"),
            arch=d.get("arch") or {},
            temperature=d.get("temperature", 1.0),
        )
