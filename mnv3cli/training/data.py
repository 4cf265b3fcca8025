"""Training data: ImageFolder splits, a torch Dataset with torchvision v2 augmentation, bad files skipped.

An unreadable image must not end a training run hours in: the dataset hands back a
:class:`Skipped` record instead of raising, :func:`collate_skipping` drops it from the batch and
passes it on, and the training loop counts it. Decoding goes through :func:`~mnv3cli.data.open_rgb`,
the same decoder ``predict`` and ``evaluate`` use (EXIF orientation, every pixel mode, bomb guard).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler
from torchvision.transforms import v2

from ..data.folders import find_samples
from ..data.images import ImageDecodeError, open_rgb, probe_image
from ..data.labelled import labelled_samples
from ..data.manifest import is_manifest
from ..errors import UserError
from ..registry.types import Preprocess
from .state import epoch_seed

Sample = tuple[str, int]  # (path, class index); a multi-label sample holds a multi-hot tuple of floats
SAMPLE_STREAM = 0x5A4D  # keeps sample seeds apart from epoch_seed(seed, epoch, rank, step)


@dataclass(frozen=True)
class Splits:
    """Class names (index order) and the training and validation samples."""

    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    source: str  # how the split was made, for the run's summary
    train_root: str = ""  # the folders the samples come from, for messages
    val_root: str = ""
    problems: tuple[str, ...] = ()  # a manifest's bad rows, "FILE:LINE: what" (the run exits 1)
    multi_label: bool = False  # targets are multi-hot tuples (a manifest with `labels`)


def image_folder(root: str | os.PathLike) -> tuple[list[str], list[Sample]]:
    """An ImageFolder's class names (sorted subfolders holding images) and ``(path, index)`` samples."""
    root = Path(root)
    candidates = (
        sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")) if root.is_dir() else []
    )
    found = find_samples(root, candidates)  # raises a clear UserError for missing/empty folders
    used = found.classes  # folders without images get no class
    remap = {old: new for new, old in enumerate(used)}
    return [candidates[i] for i in used], [(path, remap[t]) for path, t in found.samples]


def stratified_split(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of every class (at least one image of a class with two or more), seeded."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    train: list[Sample] = []
    val: list[Sample] = []
    for target in sorted(by_class):
        items = by_class[target]
        order = rng.permutation(len(items))
        n_val = min(len(items) - 1, max(1, round(fraction * len(items)))) if len(items) > 1 else 0
        val.extend(items[i] for i in sorted(order[:n_val]))
        train.extend(items[i] for i in sorted(order[n_val:]))
    return train, val


def find_splits(
    data: str | os.PathLike,
    val: str | os.PathLike | None = None,
    val_split: float | None = None,
    seed: int = 0,
    **manifest,
) -> Splits:
    """Resolve the training and validation sets of ``mnv3 train DATA``.

    ``DATA/train`` + ``DATA/val`` when present (``val`` overrides the second), else ``DATA`` itself
    as the training folder with ``val`` as validation folder or ``val_split`` held out of it.
    Validation folders are matched to the training classes by name. A CSV/JSONL manifest
    (``manifest``: ``classes_file``, ``allow_absolute``) goes to :mod:`.manifest_data`.
    """
    data = Path(data)
    if is_manifest(data):
        from .manifest_data import manifest_splits

        return manifest_splits(data, val, val_split, seed, **manifest)
    if not data.is_dir():
        raise UserError(f"{data}: {'no such folder' if not data.exists() else 'not a folder'}")
    nested = (data / "train").is_dir()
    train_root = data / "train" if nested else data
    class_names, train = image_folder(train_root)
    if val is None and nested and (data / "val").is_dir() and val_split is None:
        val = data / "val"
    if val is not None:
        if val_split is not None:
            raise UserError(
                f"--val-split {val_split}: not used when a validation folder ({val}) exists; drop one of them"
            )
        val_samples, problems = labelled_samples(val, class_names, prefer=("val",), **manifest)
        return Splits(class_names, train, val_samples, f"{train_root} / {val}", str(train_root), str(val), problems)
    if val_split is None:
        raise UserError(
            f"{data}: no validation data (no {data}/train + {data}/val folders); pass "
            "--val DIR or hold out a share of the images with --val-split 0.2"
        )
    train, val_samples = stratified_split(train, val_split, seed)
    if not val_samples:
        raise UserError(f"{data}: too few images to hold out --val-split {val_split}")
    return Splits(
        class_names,
        train,
        val_samples,
        f"{train_root} (val split {val_split:g}, seed {seed})",
        str(train_root),
        str(train_root),
    )


def drop_unreadable(splits: Splits, workers: int) -> tuple[Splits, dict[str, dict[str, str]]]:
    """``splits`` without the files that are not readable images (by their headers), and those
    files (path -> reason) by split, ``"train"`` and ``"val"``.

    A run whose training or validation images are all unreadable stops here, before any model is
    built: it would otherwise train on nothing and report a loss of 0 and a top-1 of 0 %. (A file
    truncated after a valid header passes, and is skipped when decoded.) Rank 0 looks, so that
    every process agrees.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .. import distributed

    def reason(path: str) -> str | None:
        try:
            probe_image(path)
        except ImageDecodeError as exc:
            return str(exc)
        return None

    bad: dict[str, dict[str, str]] = {}
    if distributed.is_main():
        with ThreadPoolExecutor(max(1, workers)) as pool:  # file opens: I/O-bound
            for name, samples in (("train", splits.train), ("val", splits.val)):
                paths = [path for path, _ in samples]
                bad[name] = {p: r for p, r in zip(paths, pool.map(reason, paths), strict=False) if r is not None}
    bad = distributed.broadcast_object(bad)
    for name, samples, root, what in (
        ("train", splits.train, splits.train_root, "training"),
        ("val", splits.val, splits.val_root, "validation"),
    ):
        if samples and len(bad[name]) == len(samples):
            example = next(iter(bad[name].values()))
            raise UserError(f"{root}: none of its {len(samples)} {what} images can be read (e.g. {example})")
    kept = dataclasses.replace(
        splits,
        train=[s for s in splits.train if s[0] not in bad["train"]],
        val=[s for s in splits.val if s[0] not in bad["val"]],
    )
    return kept, bad


class Skipped(NamedTuple):
    """An image that could not be used, and why."""

    path: str
    reason: str


def train_transform(
    preprocess: Preprocess,
    *,
    crop_scale: float = 0.25,
    hflip: float = 0.5,
    augment: str = "none",
    random_erasing: float = 0.0,
) -> v2.Compose:
    """RandomResizedCrop + flip [+ RandAugment/TrivialAugment] -> normalised tensor [+ erasing].

    The crop size, interpolation and normalisation are the weights' own (``preprocess``), so the
    model sees training images on the scale and in the value range it is evaluated with.
    """
    interpolation = v2.InterpolationMode(preprocess.interpolation)
    steps: list = [
        v2.RandomResizedCrop(
            preprocess.input_size, scale=(crop_scale, 1.0), interpolation=interpolation, antialias=True
        )
    ]
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(hflip))
    if augment == "randaugment":
        steps.append(v2.RandAugment(interpolation=interpolation))
    elif augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide(interpolation=interpolation))
    elif augment != "none":
        raise ValueError(f"unknown augment {augment!r}")
    steps += [
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(preprocess.mean), list(preprocess.std)),
    ]
    if random_erasing > 0:
        steps.append(v2.RandomErasing(random_erasing, value=0))
    return v2.Compose(steps)


class TrainDataset(Dataset):
    """``(image tensor, class index)`` per sample, or a :class:`Skipped` record for a bad file.

    Keys are ``(epoch, index)`` pairs (what :class:`EpochSampler` yields; a bare index means epoch
    0). A sample's augmentation draws from a generator seeded with (seed, epoch, index) alone, not
    from the random state of whichever process decodes it: a resumed run hands batches to its
    data-loading workers in another order than an uninterrupted one, yet every image is cropped,
    flipped and erased exactly alike, so the weights end up the same with any ``--workers``.
    """

    def __init__(self, samples: Sequence[Sample], transform, seed: int = 0) -> None:
        self.samples = list(samples)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        path, target = self.samples[index]
        try:
            image = open_rgb(path)
        except ImageDecodeError as exc:
            return Skipped(path, str(exc))
        # torchvision's transforms draw from torch's global generator: give it the sample's seed
        # for the duration, and leave the caller's stream (dropout, mixup with -j 0) untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.transform(image), target


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation (a stream apart from the per-epoch ones)."""
    return epoch_seed(seed, epoch, index, SAMPLE_STREAM)


def collate_skipping(items: list) -> tuple[torch.Tensor | None, torch.Tensor | None, list[Skipped]]:
    """Stack the good samples; return ``(images, targets, skipped)`` (tensors None if none is good)."""
    good = [item for item in items if not isinstance(item, Skipped)]
    skipped = [item for item in items if isinstance(item, Skipped)]
    if not good:
        return None, None, skipped
    images = torch.stack([image for image, _ in good])
    multi_hot = isinstance(good[0][1], tuple)
    targets = torch.tensor([target for _, target in good], dtype=torch.float32 if multi_hot else torch.long)
    return images, targets, skipped


class EpochSampler(Sampler[tuple[int, int]]):
    """This process's share of a seeded per-epoch shuffle, optionally resuming part-way through.

    The order depends only on (seed, epoch, rank, world size), never on RNG state left over from
    earlier work, which is what makes a resumed run replay the same epochs as an uninterrupted one.
    It yields ``(epoch, index)`` keys, so that :class:`TrainDataset` seeds each sample's augmentation
    from them; ``indices`` holds the plain indices.
    """

    def __init__(self, size: int, *, seed: int, epoch: int, rank: int = 0, world: int = 1, start: int = 0) -> None:
        # torch annotates a Dataset but uses only len(): a range of indices is all it needs
        positions: Dataset[int] = range(size)  # type: ignore[assignment]
        base: DistributedSampler[int] = DistributedSampler(
            positions, num_replicas=world, rank=rank, shuffle=True, seed=seed
        )
        base.set_epoch(epoch)
        self.epoch = epoch
        self.indices = list(base)[start:]

    def __iter__(self):
        return ((self.epoch, index) for index in self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class RunLoader:
    """One DataLoader for the whole run, its worker processes kept from epoch to epoch.

    Starting fresh workers every epoch (fork, imports, first batch) costs a noticeable share of a
    short epoch on a small machine. The workers' own random state is never used (each sample
    seeds its augmentation from (seed, epoch, index), see :class:`TrainDataset`), so keeping them
    changes nothing that an exact resume depends on. Each epoch hands in its
    :class:`EpochSampler`; :meth:`close` stops the workers.
    """

    def __init__(
        self, dataset: Dataset, *, batch_size: int, workers: int, drop_last: bool, pin_memory: bool, seed: int
    ):
        from torch.utils.data import DataLoader

        from .signals import quiet_worker

        self.current = _CurrentEpoch()
        workers = workers if workers > 1 else 0  # -j 1: decode in this process, no worker to start
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.current,
            num_workers=workers,
            collate_fn=collate_skipping,
            drop_last=drop_last,
            pin_memory=pin_memory,
            worker_init_fn=quiet_worker,
            persistent_workers=workers > 0,
            # a generator of its own: creating the iterator then draws nothing from torch's global
            # generator, whose stream (dropout, mixup) must not depend on the loader
            generator=torch.Generator().manual_seed(seed),
        )

    def epoch(self, sampler: EpochSampler):
        """The batches of ``sampler`` (an epoch, or what remains of it)."""
        self.current.sampler = sampler
        return iter(self.loader)

    def close(self) -> None:
        """Stop the kept workers now rather than whenever the loader is collected (DataLoader has
        no public way to)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader._iterator = None


class _CurrentEpoch(Sampler[tuple[int, int]]):
    """The sampler a :class:`RunLoader` reads: whichever :class:`EpochSampler` is current."""

    sampler: EpochSampler | None = None

    def __iter__(self):
        return iter(self.sampler or ())

    def __len__(self) -> int:
        return len(self.sampler or ())
