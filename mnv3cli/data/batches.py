"""Parallel decode + preprocess into ready batches, in input order, without torch.

Threads rather than processes: Pillow releases the GIL while decoding and resizing, threads start
instantly (a DataLoader's worker processes cost a second each), and nothing here needs torch, so
the ONNX Runtime path stays light. Per-file failures travel with the batch instead of stopping it.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..registry.types import Preprocess
from .images import EncodedImage, ImageDecodeError
from .preprocess import Normalizer, load_and_preprocess


@dataclass
class Batch:
    """``images[i]`` is the input at position ``indices[i]``; ``errors`` maps position -> reason."""

    indices: list[int]
    images: np.ndarray  # [n, 3, H, W] float32 (n may be 0 when every file of the chunk failed)
    errors: dict[int, str] = field(default_factory=dict)


def default_workers() -> int:
    """Decoding workers when none are asked for: one per CPU core, at most 8 (beyond that the
    model, not decoding, is the bottleneck). The one rule for ``--workers`` everywhere."""
    return max(1, min(8, os.cpu_count() or 1))


def iter_batches(
    paths: Sequence[str | os.PathLike | EncodedImage],
    cfg: Preprocess,
    batch_size: int = 32,
    workers: int | None = None,
    fast_decode: bool = True,
) -> Generator[Batch, None, None]:
    """Yield batches covering ``paths`` in order; decoding runs ahead on a thread pool.

    One image has nothing to overlap: it is decoded right here, and neither the pool nor
    :mod:`concurrent.futures` (which imports :mod:`logging`, ~15 ms) is started."""
    normalizer = Normalizer(cfg)
    workers = workers or default_workers()

    def work(path):
        try:
            return load_and_preprocess(path, cfg, fast_decode, normalizer)
        except ImageDecodeError as exc:
            return exc

    if len(paths) == 1:
        yield _collect(range(1), [work(paths[0])], cfg)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mnv3-decode") as pool:
        # Submit chunk n+1 before collecting chunk n: decoding stays one batch ahead of inference,
        # and at most two batches of images are in memory.
        chunks = [range(i, min(i + batch_size, len(paths))) for i in range(0, len(paths), batch_size)]
        pending = None
        for chunk in chunks + [None]:
            submitted = (chunk, [pool.submit(work, paths[i]) for i in chunk]) if chunk else None
            if pending is not None:
                yield _collect(pending[0], [fut.result() for fut in pending[1]], cfg)
            pending = submitted


def _collect(chunk: range, results: list, cfg: Preprocess) -> Batch:
    indices, arrays, errors = [], [], {}
    for i, result in zip(chunk, results, strict=False):
        if isinstance(result, Exception):
            errors[i] = str(result)
        else:
            indices.append(i)
            arrays.append(result)
    size = cfg.input_size
    images = np.stack(arrays) if arrays else np.empty((0, 3, size, size), dtype=np.float32)
    return Batch(indices, images, errors)
