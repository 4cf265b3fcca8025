"""Where a training run stands (:class:`TrainState`), and how that position travels in ``last.pt``.

Everything that changes from step to step and must survive an interruption lives here: the
epoch/step/update counters, the history, the best epoch, the unreadable images met, the sums of the
epoch in progress, and the random number generators' states. Every epoch reseeds its randomness
from (seed, epoch, rank, step) (:func:`epoch_seed`); a run stopped inside an epoch saves the exact
RNG states of every process instead, so a resumed run replays exactly what an uninterrupted one
would have done.

The keys written under the checkpoint's ``extra`` (``epoch``, ``step``, ``num_updates``,
``history``, ``best_top1``, ``best_epoch``, ``skipped``, ``partial``, ``rng``) are a file format:
runs saved by earlier versions must still resume, so they do not change.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError


def epoch_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict:
    """torch, numpy and Python RNG states in a form that loads with ``weights_only=True``."""
    np_state = np.random.get_state()
    if not isinstance(np_state, tuple):  # a dict only for bit generators other than the legacy MT19937
        raise RuntimeError(f"numpy's global RNG is not the legacy MT19937 ({np_state.get('bit_generator')})")
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping) -> None:
    """Undo :func:`capture_rng_state` (resuming training reproduces the same random stream)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """The run's position and record; what ``last.pt`` must hold besides weights and optimizer."""

    epoch: int = 0  # epochs completed: the number of the last one, counted from 1 (0: none yet)
    step: int = 0  # steps completed in the epoch in progress
    num_updates: int = 0  # optimizer steps since the start (the scheduler's clock)
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per completed epoch
    best_top1: float = -1.0
    best_epoch: int = 0  # 1-based; 0 before the first validation
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable image -> reason
    # sums over the steps of the epoch in progress (this process), for its mean loss and speed
    loss_sum: float = 0.0
    images: int = 0
    seconds: float = 0.0
    rng: dict | None = None  # this process's RNG states to restore before the next step (resume)

    @classmethod
    def from_checkpoint(cls, extra: Mapping[str, Any], rank: int, world: int) -> TrainState:
        """The position ``extra`` (a checkpoint's) holds; RNG states only when the run stopped
        inside an epoch with as many processes as now (else the epoch reseeds as usual)."""
        partial = extra.get("partial", {"loss_sum": 0.0, "images": 0, "seconds": 0.0})
        states = extra.get("rng") or []
        return cls(
            epoch=extra["epoch"],
            step=extra["step"],
            num_updates=extra["num_updates"],
            history=list(extra.get("history", [])),
            best_top1=extra.get("best_top1", -1.0),
            best_epoch=extra.get("best_epoch", 0),
            skipped=dict(extra.get("skipped", {})),
            loss_sum=partial["loss_sum"],
            images=partial["images"],
            seconds=partial["seconds"],
            rng=states[rank] if extra["step"] and len(states) == world else None,
        )

    def checkpoint_extra(self, rng_states: list[dict] | None) -> dict[str, Any]:
        """The keys ``extra`` holds for this state: all of them for ``last.pt`` (``rng_states``,
        one per process), only the record (epoch, best, history) for ``best.pt`` (None)."""
        extra: dict[str, Any] = {
            "epoch": self.epoch,
            "best_top1": self.best_top1,
            "best_epoch": self.best_epoch,
            "history": self.history,
        }
        if rng_states is not None:
            extra |= {
                "step": self.step,
                "num_updates": self.num_updates,
                "partial": {"loss_sum": self.loss_sum, "images": self.images, "seconds": self.seconds},
                "skipped": dict(self.skipped),
                "rng": rng_states,
            }
        return extra

    def seed_epoch(self, seed: int, rank: int) -> None:
        """Start (or continue) the epoch's random stream: the saved one when resuming mid-epoch."""
        if self.rng is not None:
            restore_rng_state(self.rng)
            self.rng = None
        else:
            seed_everything(epoch_seed(seed, self.epoch, rank, self.step))

    def out_of_patience(self, patience: int | None) -> bool:
        """Whether ``patience`` epochs have passed since the best validation top-1 (early stopping).
        It reads only the record that ``last.pt`` keeps, so a resumed run that had stopped stays
        stopped, unless resumed with a larger ``--patience``."""
        return patience is not None and self.best_epoch > 0 and self.epoch - self.best_epoch >= patience

    def end_epoch(self, history_row: dict[str, Any], top1: float, is_best: bool) -> None:
        self.history.append(history_row)
        if is_best:
            self.best_top1, self.best_epoch = top1, self.epoch + 1
        self.epoch, self.step = self.epoch + 1, 0
        self.loss_sum, self.images, self.seconds = 0.0, 0, 0.0


def resume_folder(resume) -> Path:
    """The run folder ``--resume`` names (RUN, or RUN/last.pt named directly)."""
    path = Path(resume)
    return path.parent if path.suffix == ".pt" else path


def read_resume(resume) -> tuple[Path, dict]:
    """The checkpoint to resume from (RUN/last.pt, or a ``.pt`` file named directly) and its contents."""
    from ..weights.checkpoint import read_checkpoint

    path = Path(resume)
    path = path if path.suffix == ".pt" else path / "last.pt"
    if not path.exists():
        raise UserError(
            f"{resume}: nothing to resume (no {path.name}); the run saves it after its first epoch or when interrupted"
        )
    ckpt = read_checkpoint(path)  # checks the weights' and the training state's checksums
    if "optimizer" not in ckpt["extra"]:
        raise UserError(f"{path}: holds no training state (optimizer, position); resume from a run folder's last.pt")
    for part in TRAINING_STATE:
        where = non_finite(ckpt["extra"].get(part), part)
        if where is not None:  # written so (a diverged run) or changed in a file without checksum
            raise UserError(
                f"{path}: its training state holds a NaN or infinity ({where}); resuming would train "
                "on garbage: resume from an earlier copy or start again"
            )
    return path, ckpt


TRAINING_STATE = ("optimizer", "scheduler", "scaler", "train_state_dict")  # keys of extra, all numbers


def non_finite(value: Any, where: str) -> str | None:
    """Where the first NaN or infinity in ``value`` (nested state dicts, tensors, numbers) is, or None."""
    if isinstance(value, torch.Tensor):
        return where if value.is_floating_point() and not bool(torch.isfinite(value).all()) else None
    if isinstance(value, float):
        return None if np.isfinite(value) else where
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        found = non_finite(item, f"{where}/{key}")
        if found is not None:
            return found
    return None
