"""The processes of a training run: stop requests by signal, quiet DataLoader workers, the
``torchrun`` process group, and the per-epoch seeds that make a resumed run replay exactly.

Kept apart from the loop in :mod:`mnv3cli.training.loop`, which only asks: which process am I, was a
stop requested, and what seed does this epoch start from.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .. import distributed
from ..inference.device import resolve_device

# -- signals ------------------------------------------------------------------------------------

@contextlib.contextmanager
def stop_on_signals(event: threading.Event | None = None) -> Iterator[threading.Event]:
    """Turn the first SIGINT/SIGTERM into a stop request (``event``); a second SIGINT interrupts at once.

    The training loop checks the event after every step, saves ``last.pt`` and raises
    :class:`~mnv3cli.errors.Interrupted`. Outside the main thread signals cannot be caught; the
    event is then only set by the caller.
    """
    event = event or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum, frame):
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def quiet_worker(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process (which finishes its step and saves);
    killed by the terminal's SIGINT they would make the main process fail instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# -- processes ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


@contextlib.contextmanager
def distributed_context(device_name: str) -> Iterator[tuple[Processes, torch.device]]:
    """Join the torchrun process group when launched by torchrun (``WORLD_SIZE`` > 1): nccl when
    this process trains on its own GPU, else gloo."""
    device = resolve_device(device_name)
    if distributed.is_distributed() and device.type == "cuda":
        device = torch.device("cuda", distributed.local_rank())
        torch.cuda.set_device(device)
    with distributed.process_group("nccl" if device.type == "cuda" else "gloo"):
        yield Processes(distributed.rank(), distributed.world_size()), device


def epoch_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
