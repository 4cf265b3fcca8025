"""The one torchrun helper: which process am I, and the few collectives the commands need.

Every function works in a single process too, where it does nothing (``barrier``) or returns its
input (``all_reduce_sum``, ``all_gather_object`` as a one-item list), so callers never branch on
"distributed" (accelerate's process helpers work the same way). The process's place is read from
torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), and torch is imported only when
there is more than one process: a one-process ``predict``/``evaluate`` on ONNX Runtime stays
torch-free.

Used by ``train`` (DDP), ``evaluate`` (shards of batches, merged at the end) and ``predict``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np


def world_size() -> int:
    """Processes in the job (1 outside torchrun)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def rank() -> int:
    """This process's place among all processes (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0")) if world_size() > 1 else 0


def local_rank() -> int:
    """This process's place on its machine: the GPU it takes."""
    return int(os.environ.get("LOCAL_RANK", "0")) if world_size() > 1 else 0


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """Rank 0: the process that prints and writes files."""
    return rank() == 0


def shard_positions(count: int, batch_size: int, rank: int, world: int) -> list[int]:
    """Positions of the batches ``rank, rank + world, ...`` of ``count`` samples cut into batches.

    Whole batches, not single samples, are dealt out, so every batch holds exactly the samples it
    holds in a one-process run (``evaluate`` and ``predict`` then compute bit-identical outputs).
    """
    return [
        i
        for start in range(rank * batch_size, count, world * batch_size)
        for i in range(start, min(start + batch_size, count))
    ]


def rank_device(device: str) -> str:
    """Under torchrun on a CUDA machine each process takes its own GPU (``LOCAL_RANK``).

    A device name in, a device name out; torch is imported only under torchrun.
    """
    if not is_distributed() or (device or "auto") not in ("auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    return f"cuda:{local_rank() % torch.cuda.device_count()}"


@contextlib.contextmanager
def process_group(backend: str = "gloo") -> Iterator[None]:
    """Join torchrun's process group for the duration (``gloo`` for CPU tensors, ``nccl`` for
    CUDA ones); nothing outside torchrun. A group someone else created is left to its owner."""
    if not is_distributed():
        yield
        return
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend)
    try:
        yield
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()


def _active() -> bool:
    if not is_distributed():
        return False
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "a collective outside the process group: wrap the work in mnv3cli.distributed.process_group()"
        )
    return True


def _collective_device():
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    """Wait until every process gets here."""
    if _active():
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sum(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The element-wise sum of ``values`` over all processes (float64), in every process."""
    array = np.asarray(values, dtype=np.float64)
    if not _active():
        return array.copy()
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(array.copy()).to(_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true in at least one process: one decision that every process takes."""
    return bool(all_reduce_sum([float(bool(flag))])[0] > 0)


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order, in every process."""
    if not _active():
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Process ``src``'s ``obj`` (picklable), in every process."""
    if not _active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_main(work: Callable[[], Any]) -> Any:
    """Run ``work`` on rank 0 only and give its value to every process; an exception it raises
    (a user error: a bad input, an output that does not match) is raised in every process, so
    none is left waiting in a collective. Outside torchrun: ``work()``."""
    if not _active():
        return work()
    outcome: tuple[bool, Any] = (True, None)
    if is_main():
        try:
            outcome = (True, work())
        except Exception as exc:  # raised below, in this process as in the others
            outcome = (False, exc)
    ok, value = broadcast_object(outcome)
    if not ok:
        raise value
    return value


def broadcast_tensors(tensors, src: int = 0) -> None:
    """Overwrite ``tensors`` in place with process ``src``'s values (e.g. BatchNorm statistics)."""
    if not _active():
        return
    import torch.distributed as dist

    for tensor in tensors:
        dist.broadcast(tensor, src=src)
