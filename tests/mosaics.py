"""Multi-label data made from real photos, deterministically: 2x2 mosaics of four dev images, each
labelled with the set of their coarse ImageNet categories, written with a JSONL manifest.

``../shared/data/imagenet-sample/dev`` holds one photo per ImageNet class for 500 classes, so the
labels are coarse groups of class indices (the well-known ImageNet index ranges, checked against
the class names: 0-6 tench..stingray and 389-397 barracouta..puffer are fish, 151-268 the dogs,
924-969 guacamole..cup the food, and so on). Each quarter of a mosaic is a centre-cropped photo, so
the evaluation's centre crop keeps all four. Used by the tests (a few dozen small mosaics) and by
``benchmarks/multilabel.py`` (hundreds). Also: ants/bees mosaics from ``hymenoptera``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image

# category -> inclusive ImageNet-1k index ranges (every index not listed is "objects")
CATEGORIES: dict[str, tuple[tuple[int, int], ...]] = {
    "fish": ((0, 6), (389, 397)),
    "birds": ((7, 24), (80, 100), (127, 146)),
    "reptiles": ((25, 68),),  # reptiles and amphibians
    "invertebrates": ((69, 79), (107, 126), (300, 327)),
    "dogs": ((151, 268),),
    "mammals": ((101, 106), (147, 150), (269, 299), (328, 388)),  # other mammals
    "food": ((924, 969),),
}
ORDER = (*CATEGORIES, "objects")


def category(index: int) -> str:
    """The coarse category of ImageNet class ``index``."""
    for name, ranges in CATEGORIES.items():
        if any(low <= index <= high for low, high in ranges):
            return name
    return "objects"


def dev_images(dev: Path) -> list[tuple[Path, str]]:
    """``(photo, category)`` for every dev image, in sorted WordNet-id order."""
    from mnv3cli.registry.imagenet import wordnet_ids

    position = {w: i for i, w in enumerate(wordnet_ids())}
    out = []
    for folder in sorted(p for p in dev.iterdir() if p.is_dir()):
        for photo in sorted(folder.iterdir()):
            out.append((photo, category(position[folder.name])))
    return out


def _tile(path: Path, size: int) -> Image.Image:
    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, several times faster
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        return im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)


def write_mosaics(
    photos: list[tuple[Path, str]], out: Path, count: int, *, size: int = 96, seed: int = 0, split: str | None = None
) -> list[dict]:
    """``count`` mosaics of four photos each (drawn with ``seed``), ``size`` pixels square, under
    ``out``; returns their manifest rows (``path`` relative to ``out``, ``labels`` in ORDER)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    half = size // 2
    rows = []
    for n in range(count):
        four = rng.sample(photos, 4)
        canvas = Image.new("RGB", (2 * half, 2 * half))
        for k, (photo, _) in enumerate(four):
            canvas.paste(_tile(photo, half), ((k % 2) * half, (k // 2) * half))
        name = f"{split or 'm'}-{seed}-{n:04d}.jpg"
        canvas.save(out / name, quality=90)
        labels = sorted({cat for _, cat in four}, key=lambda c: (ORDER.index(c) if c in ORDER else len(ORDER), c))
        rows.append({"path": name, "labels": labels} | ({"split": split} if split else {}))
    return rows


def write_manifest(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def imagenet_mosaics(dev: Path, out: Path, *, train: int, val: int, size: int = 96, seed: int = 0) -> Path:
    """Mosaics with a ``split`` column: train mosaics from the even-numbered dev photos, val ones from
    the odd-numbered (no photo in both), as ``out/mosaics.jsonl``."""
    photos = dev_images(dev)
    rows = write_mosaics(photos[0::2], out, train, size=size, seed=seed, split="train")
    rows += write_mosaics(photos[1::2], out, val, size=size, seed=seed + 1, split="val")
    return write_manifest(rows, out / "mosaics.jsonl")


def hymenoptera_mosaics(root: Path, out: Path, *, train: int, val: int, size: int = 96, seed: int = 0) -> Path:
    """Ants/bees mosaics (labels: the subset of {ants, bees} the four photos show)."""
    rows = []
    for split, count, offset in (("train", train, 0), ("val", val, 1)):
        photos = [(p, c) for c in ("ants", "bees") for p in sorted((root / split / c).iterdir())]
        rows += write_mosaics(photos, out, count, size=size, seed=seed + offset, split=split)
    return write_manifest(rows, out / "mosaics.jsonl")
