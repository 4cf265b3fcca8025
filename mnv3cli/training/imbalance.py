"""Imbalanced classes: ``--class-weights balanced`` (the loss) and ``--sampler balanced`` (the batches).

Two standard remedies, as scikit-learn and PyTorch define them, so that their numbers mean what
users expect: a class's loss weight is ``n_images / (n_classes * n_images_of_class)`` (scikit-learn's
``compute_class_weight("balanced")``: 1 for every class of a balanced set), and the balanced sampler
draws each epoch's indices with replacement, each image with probability proportional to
``1 / n_images_of_its_class`` (torch's ``WeightedRandomSampler``), so every class is drawn equally
often. The draw is seeded by (seed, epoch) alone and each process takes every world-th index, so a
resumed or distributed run replays the same epochs, as :class:`~.data.EpochSampler` does for shuffles.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from .data import EpochSampler
from .state import epoch_seed

BALANCE_STREAM = 0xBA1  # keeps the balanced draw apart from the other seeded streams


def class_counts(samples: Sequence[tuple[str, int]], num_classes: int) -> list[int]:
    """Training images per class index."""
    counts = Counter(target for _, target in samples)
    return [counts.get(i, 0) for i in range(num_classes)]


def balanced_class_weights(samples: Sequence[tuple[str, int]], num_classes: int) -> torch.Tensor:
    """``n / (k * n_c)`` per class (k: classes with images); 0 for a class without training images,
    which never is a target anyway."""
    counts = class_counts(samples, num_classes)
    present = sum(1 for c in counts if c)
    return torch.tensor([len(samples) / (present * c) if c else 0.0 for c in counts], dtype=torch.float32)


def balanced_sample_weights(samples: Sequence[tuple[str, int]]) -> list[float]:
    """Each image's draw weight: ``1 / n_images_of_its_class``."""
    counts = Counter(target for _, target in samples)
    return [1.0 / counts[target] for _, target in samples]


def balanced_order(weights: Sequence[float], *, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """This process's indices of one epoch drawn with replacement by ``weights``: ceil(n / world)
    of them, as many as a shuffled epoch gives each process."""
    per_process = math.ceil(len(weights) / world)
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, BALANCE_STREAM))
    drawn = torch.multinomial(
        torch.as_tensor(weights, dtype=torch.float64), per_process * world, replacement=True, generator=generator
    )
    return drawn.tolist()[rank::world]


class BalancedEpochSampler(EpochSampler):
    """An :class:`EpochSampler` whose epoch is a balanced draw (``--sampler balanced``) instead of a
    shuffle: the same ``(epoch, index)`` keys, the same resume from ``start``."""

    def __init__(
        self, weights: Sequence[float], *, seed: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0
    ) -> None:
        self.epoch = epoch
        self.indices = balanced_order(weights, seed=seed, epoch=epoch, rank=rank, world=world)[start:]


def epoch_sampler(samples, cfg, *, epoch: int, rank: int, world: int, start: int) -> EpochSampler:
    """The sampler ``cfg.sampler`` asks for, over ``samples``."""
    if cfg.sampler == "balanced":
        weights = balanced_sample_weights(samples)
        return BalancedEpochSampler(weights, seed=cfg.seed, epoch=epoch, rank=rank, world=world, start=start)
    return EpochSampler(len(samples), seed=cfg.seed, epoch=epoch, rank=rank, world=world, start=start)
