"""``create_model``: the one entry point from a registry name to a ready model (timm's pattern)."""

from __future__ import annotations

from typing import Any

from .model import MobileNetV3
from .registry import get_entry


def create_model(
    name: str, *, num_classes: int | None = None, weights: str | None = None, **overrides: Any
) -> MobileNetV3:
    """Build the registered model ``name`` (or alias), optionally loading ``weights``.

    ``weights`` is anything the checkpoint loader accepts: ``imagenet``, a tag such as
    ``torchvision:IMAGENET1K_V1``, or a local file. ``num_classes`` replaces the classifier
    (after loading, so pretrained features are kept); ``overrides`` go to :class:`MobileNetV3`
    (``width``, ``dropout``, ``bn_eps``, ``tf_padding``, ``in_channels`` ...).
    """
    entry = get_entry(name)
    if weights is None:
        return MobileNetV3(**(entry.arch | overrides), num_classes=num_classes or 1000)
    from .weights.loader import load_model

    model = load_model(weights, model_name=entry.name, **overrides).model
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model
