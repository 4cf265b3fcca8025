"""Layer 2: names -> architecture config + pretrained configs. Importable without torch."""

from __future__ import annotations

from ..errors import UserError
from .card import ModelCard
from .entries import BUNDLED, MODELS
from .types import Bundled, ModelEntry, Preprocess, WeightSource

_BY_NAME = {m.name: m for m in MODELS} | {a: m for m in MODELS for a in m.aliases}


def list_models() -> list[str]:
    """Names of every registered model (aliases excluded)."""
    return [m.name for m in MODELS]


def get_entry(name: str) -> ModelEntry:
    """The registry entry for a model name or alias; :class:`UserError` listing the choices otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_BY_NAME))}") from None


def default_model() -> ModelEntry:
    """The model whose default weights have the best published top-1 (what ``predict`` uses)."""
    return max(MODELS, key=_published_top1)


def _published_top1(model: ModelEntry) -> float:
    weights = model.default_weights
    return weights.top1 if weights is not None and weights.top1 is not None else -1.0


def default_weights(model_name: str | None = None) -> str:
    """What an omitted ``--weights`` means: the model shipped inside the package when no model is
    named either (the first run works offline, nothing is downloaded), else the named model's
    default published weights (``imagenet``), as before the package carried a model."""
    return "imagenet" if model_name else BUNDLED


def get_weight_source(entry: ModelEntry, tag: str) -> WeightSource:
    """Resolve ``imagenet`` (the default) or an explicit tag such as ``torchvision:IMAGENET1K_V1``.

    A tag may omit its kind when unambiguous (``IMAGENET1K_V1``), and timm tags may omit the
    pretrained suffix when the model has one weight of that architecture.
    """
    if tag == "imagenet":
        if entry.default_weights is None:
            raise UserError(f"model {entry.name!r} has no pretrained weights")
        return entry.default_weights
    matches = [
        w for w in entry.weights if w.tag == tag or w.tag.partition(":")[2] == tag or w.tag.split(".", 1)[0] == tag
    ]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(w.tag for w in entry.weights) or "none"
    raise UserError(f"model {entry.name!r} has no weights {tag!r}; known: imagenet, {known}")


def resolve_weights(tag: str, model_name: str | None = None) -> tuple[ModelEntry, WeightSource]:
    """The (model, weights) pair a ``--weights`` tag names, with or without ``--model``.

    With ``model_name``: that model's weights. Without: the default model's, else the one model
    whose weights carry exactly this tag. The loader (which downloads) and the ONNX cache (which
    must find the same file without downloading) both resolve through here, so they cannot disagree.
    """
    if model_name:
        entry = get_entry(model_name)
        return entry, get_weight_source(entry, tag)
    entry = default_model()
    try:
        return entry, get_weight_source(entry, tag)
    except UserError:
        found = find_weight_source(tag)
        if found is None:
            raise
        return found


def find_weight_source(tag: str) -> tuple[ModelEntry, WeightSource] | None:
    """The (model, weights) pair a fully qualified tag names, searching every model."""
    for entry in MODELS:
        for w in entry.weights:
            if w.tag == tag:
                return entry, w
    return None


__all__ = [
    "BUNDLED",
    "MODELS",
    "Bundled",
    "ModelCard",
    "ModelEntry",
    "Preprocess",
    "WeightSource",
    "default_model",
    "default_weights",
    "find_weight_source",
    "get_entry",
    "get_weight_source",
    "list_models",
    "resolve_weights",
]
