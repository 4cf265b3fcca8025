"""ImageNet-1k class names and WordNet ids, read from the installed torchvision and timm.

Loaded lazily (these imports are heavy) and cached; never a copied list.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1000 human-readable ImageNet-1k labels, in class-index order."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


@functools.lru_cache(maxsize=1)
def wordnet_ids() -> tuple[str, ...]:
    """The 1000 WordNet ids (``n01440764`` ...), sorted, which is the class-index order."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo().label_names())
