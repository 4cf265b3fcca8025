"""Fine-tuning and training from scratch: the loop behind ``mnv3 train``, as plain functions.

The recipe is assembled from maintained parts (timm's optimizers, cosine scheduler, Mixup/CutMix,
ModelEmaV3; torchvision v2 augmentation) and the loop only wires them together. Validation goes
through :func:`mnv3cli.evaluation.evaluate.evaluate` with the checkpoint's own preprocessing, so
``mnv3 evaluate VAL --weights RUN/best.pt`` reproduces exactly the top-1 reported here.

Nothing is lost: ``last.pt`` (weights, optimizer, scheduler, EMA, grad scaler, position, RNG states,
history) is written atomically after every epoch and when a stop is requested (SIGINT/SIGTERM via
:func:`~mnv3cli.training.processes.stop_on_signals`: the current step finishes first). Every
epoch reseeds its randomness from (seed, epoch, rank), so a resumed run replays exactly the epochs
an uninterrupted one would.

Under ``torchrun`` each process trains a shard (DistributedDataParallel, gloo on CPU, nccl on CUDA);
only rank 0 writes files and reports progress. Progress is reported through a :class:`TrainListener`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .. import __version__
from ..data import iter_batches
from ..errors import Interrupted, UserError
from ..evaluation.evaluate import EvalProgress, evaluate
from ..inference.backends import TorchBackend
from .bn_calibration import has_folded_batchnorm, unfold_batchnorm
from .config import TrainConfig
from .data import (
    EpochSampler,
    TrainDataset,
    collate_skipping,
    find_splits,
    train_transform,
)
from .outputs import write_config, write_curves, write_metrics
from .processes import (
    Processes,
    distributed_context,
    epoch_seed,
    quiet_worker,
    seed_everything,
)
from .setup import (
    StartingPoint,
    build_model,
    freeze_layers,
    param_groups,
    resolve_amp,
    set_train_mode,
)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


# -- progress reporting -------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainPlan:
    """What is about to run (sent once, before the first step)."""

    model_name: str
    start: str  # "fine-tuning from ...", "from scratch", "resuming ... at epoch 3"
    class_names: list[str]
    train_images: int
    val_images: int
    data: str
    epochs: int
    start_epoch: int  # 0-based epoch the run starts (or resumes) in
    steps_per_epoch: int
    batch_size: int  # per process
    world_size: int
    device: str
    amp: str  # the resolved mode: none | bf16 | fp16
    trainable_params: int
    total_params: int
    output: Path


@dataclass(frozen=True)
class StepProgress:
    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, within the epoch
    steps: int
    loss: float  # this step's loss (this process's batch)
    lr: float
    images_per_sec: float  # all processes, this epoch so far


@dataclass(frozen=True)
class EpochRecord:
    """One row of ``metrics.csv`` plus what the summary line needs."""

    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    top1: float  # percent
    top5: float
    lr: float
    images_per_sec: float  # training images per second (all processes)
    seconds: float  # training + validation wall time
    is_best: bool
    skipped_images: int  # unreadable images met so far (training and validation, unique)

    def row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class TrainListener:
    """Receives progress on rank 0. Subclass and override what you need; every hook is optional."""

    def on_start(self, plan: TrainPlan) -> None: ...

    def on_step(self, progress: StepProgress) -> None: ...

    def on_validation(self, progress: EvalProgress) -> None: ...

    def on_epoch_end(self, record: EpochRecord) -> None: ...


@dataclass
class TrainResult:
    output: Path
    best_top1: float
    best_epoch: int
    epochs: int  # epochs completed
    checkpoint: Path  # best.pt
    last_checkpoint: Path
    history: list[dict[str, Any]]
    skipped: list[tuple[str, str]]  # (path, reason) of unreadable images
    seconds: float  # wall time of this invocation

    def summary(self) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {"best_top1": self.best_top1, "best_epoch": self.best_epoch, "epochs": self.epochs,
                "checkpoint": str(self.checkpoint), "last_checkpoint": str(self.last_checkpoint),
                "output": str(self.output), "top1": last.get("top1"), "top5": last.get("top5"),
                "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                "images_per_sec": last.get("images_per_sec"), "skipped_images": len(self.skipped),
                "seconds": self.seconds}


# -- the run ------------------------------------------------------------------------------------

def train(cfg: TrainConfig, listener: TrainListener | None = None, *, resume: str | os.PathLike | None = None,
          stop: threading.Event | None = None) -> TrainResult:
    """Run (or with ``resume``, continue) the training ``cfg`` describes; see the module docstring.

    Raises :class:`~mnv3cli.errors.Interrupted` after saving ``last.pt`` when ``stop`` is set,
    :class:`TrainingDiverged` on a non-finite loss, :class:`UserError` for bad data or options.
    """
    with distributed_context(cfg.device) as (procs, device):
        return _Run(cfg, listener or TrainListener(), procs, device, resume, stop or threading.Event()).run()


class _Run:
    def __init__(self, cfg: TrainConfig, listener: TrainListener, procs: Processes, device: torch.device,
                 resume, stop: threading.Event) -> None:
        self.started = time.perf_counter()
        self.cfg, self.procs, self.device, self.stop = cfg, procs, device, stop
        seed_everything(cfg.seed)  # the new head (or a whole new model) starts the same every time
        self.listener = listener if procs.main else TrainListener()
        self.resume_file, self.checkpoint = _read_resume(resume) if resume is not None else (None, None)
        self.output = self.resume_file.parent if self.resume_file is not None else self._new_output()
        self.splits = find_splits(cfg.data or _missing_data(), cfg.val, cfg.val_split, cfg.seed)
        self._setup_model()
        self._setup_data()
        self._setup_recipe()
        self.epoch, self.step, self.num_updates = 0, 0, 0
        self.history: list[dict[str, Any]] = []
        self.best_top1, self.best_epoch = -1.0, 0
        self.skipped: dict[str, str] = {}
        self.partial = {"loss_sum": 0.0, "images": 0, "seconds": 0.0}
        self.restored_rng = None
        if self.checkpoint is not None:
            self._restore(self.checkpoint)

    # -- setup ------------------------------------------------------------------------------
    def _new_output(self) -> Path:
        """``--output`` (refusing to overwrite another run) or ``runs/<data folder name>[-N]``."""
        cfg = self.cfg
        if cfg.output:
            out = Path(cfg.output)
            if (out / "last.pt").exists() or (out / "config.json").exists():
                raise UserError(f"{out}: already holds a training run; continue it with "
                                f"`mnv3 train --resume {out}` or choose another --output")
            return out
        name = Path(cfg.data or "run").resolve().name or "run"
        out, n = Path("runs") / name, 1
        while out.exists() and any(out.iterdir()):
            n += 1
            out = Path("runs") / f"{name}-{n}"
        if self.procs.distributed:  # every process must write to the folder rank 0 chose
            box = [str(out)]
            dist.broadcast_object_list(box, src=0)
            out = Path(box[0])
        return out

    def _setup_model(self) -> None:
        cfg, names = self.cfg, self.splits.class_names
        if self.checkpoint is not None:
            from ..weights.loader import load_model

            loaded = load_model(self.resume_file)  # the very file whose training state is restored
            if list(loaded.class_names) != names:
                raise UserError(f"{cfg.data}: its classes {names} differ from the run's "
                                f"{list(loaded.class_names)}; resume with the data the run started with")
            self.start = StartingPoint(loaded.model, loaded.model_name, loaded.preprocess,
                                       loaded.wordnet_ids, "resuming")
        else:
            self.start = build_model(cfg, names)
            if cfg.weights and has_folded_batchnorm(self.start.model):  # (a fresh model looks the same)
                self.start.description += f"; BatchNorm statistics measured on {self._unfold_batchnorm()} images"
        model = self.start.model
        self.frozen = freeze_layers(model, cfg.freeze)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = cfg.bn_momentum
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.preprocess = self.start.preprocess

    def _unfold_batchnorm(self, images: int = 256) -> int:
        """:func:`unfold_batchnorm` on the first ``images`` training images, prepared as for
        validation (the same images in every process, so all processes agree)."""
        paths = [path for path, _ in self.splits.train[:images]]
        batches = (torch.from_numpy(b.images) for b in iter_batches(paths, self.start.preprocess, 32,
                                                                    self.cfg.resolved_workers) if b.indices)
        return unfold_batchnorm(self.start.model, batches)

    def _setup_data(self) -> None:
        cfg, procs = self.cfg, self.procs
        transform = train_transform(self.preprocess, crop_scale=cfg.crop_scale, hflip=cfg.hflip,
                                    augment=cfg.augment, random_erasing=cfg.random_erasing)
        self.dataset = TrainDataset(self.splits.train, transform)
        per_process = len(EpochSampler(len(self.dataset), seed=cfg.seed, epoch=0, rank=procs.rank,
                                       world=procs.world))
        # keep every image, except a last batch of one (BatchNorm cannot train on a single image)
        self.drop_last = per_process % cfg.batch_size == 1 and per_process > 1
        self.steps_per_epoch = (per_process // cfg.batch_size if self.drop_last
                                else math.ceil(per_process / cfg.batch_size))

    def _setup_recipe(self) -> None:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy
        from timm.optim import create_optimizer_v2
        from timm.scheduler import create_scheduler_v2
        from timm.utils import ModelEmaV3

        cfg = self.cfg
        if not any(p.requires_grad for p in self.model.parameters()):
            raise UserError("--freeze: nothing left to train")
        head_scale = cfg.head_lr_scale if cfg.head_lr_scale is not None else (
            10.0 if self.start.new_head else 1.0)
        self.cfg = cfg = dataclasses.replace(cfg, head_lr_scale=head_scale)  # recorded as resolved
        groups = param_groups(self.model, cfg.resolved_weight_decay, head_scale)
        self.optimizer = create_optimizer_v2(groups, opt=cfg.optimizer, lr=cfg.resolved_lr,
                                             weight_decay=cfg.resolved_weight_decay, momentum=cfg.momentum)
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched="cosine", num_epochs=cfg.epochs,
            warmup_epochs=min(cfg.warmup_epochs, cfg.epochs - 1), warmup_lr=cfg.warmup_lr,
            min_lr=cfg.min_lr, step_on_epochs=False, updates_per_epoch=self.steps_per_epoch)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.scaler = (torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None)
        self.ema = ModelEmaV3(self.model, decay=cfg.ema_decay, use_warmup=True) if cfg.ema else None
        mixing = cfg.mixup > 0 or cfg.cutmix > 0
        self.mixup = (Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.label_smoothing,
                            num_classes=len(self.splits.class_names)) if mixing else None)
        self.criterion = (SoftTargetCrossEntropy() if mixing
                          else nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing))
        self.ddp = None
        if self.procs.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)

    def _restore(self, ckpt: dict) -> None:
        extra = ckpt["extra"]
        if "train_state_dict" in extra:  # EMA runs keep the EMA as the checkpoint's weights
            self.model.load_state_dict(extra["train_state_dict"])
        if self.ema is not None:
            self.ema.module.load_state_dict(ckpt["state_dict"] if extra.get("ema") else self.model.state_dict())
        try:
            self.optimizer.load_state_dict(extra["optimizer"])
        except (ValueError, KeyError) as exc:
            raise UserError(f"{self.output}: its optimizer state does not fit this run ({exc}); resume "
                            "with the --optimizer and --freeze it was started with") from None
        if extra.get("epochs") == self.cfg.epochs:  # else a longer/shorter cosine from here on
            self.scheduler.load_state_dict(extra["scheduler"])
        if self.scaler is not None and extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        self.epoch, self.step, self.num_updates = extra["epoch"], extra["step"], extra["num_updates"]
        self.history = list(extra.get("history", []))
        self.best_top1, self.best_epoch = extra.get("best_top1", -1.0), extra.get("best_epoch", 0)
        self.skipped = dict(extra.get("skipped", {}))
        self.partial = dict(extra.get("partial", self.partial))
        states = extra.get("rng") or []
        if self.step and len(states) == self.procs.world:
            self.restored_rng = states[self.procs.rank]
        self.scheduler.step_update(self.num_updates)
        self.start.description = f"resuming {self.output} at epoch {self.epoch + 1}" + (
            f", step {self.step + 1}" if self.step else "")

    # -- main loop --------------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg, procs = self.cfg, self.procs
        if procs.main:
            try:
                self.output.mkdir(parents=True, exist_ok=True)
                write_config(self.output, self._config_record())
            except OSError as exc:
                raise UserError(f"{self.output}: cannot write the run folder ({exc.strerror or exc})") from None
        self._barrier()
        params = list(self.model.parameters())
        self.listener.on_start(TrainPlan(
            model_name=self.start.model_name, start=self.start.description,
            class_names=self.splits.class_names, train_images=len(self.splits.train),
            val_images=len(self.splits.val), data=self.splits.source, epochs=cfg.epochs,
            start_epoch=self.epoch, steps_per_epoch=self.steps_per_epoch, batch_size=cfg.batch_size,
            world_size=procs.world, device=str(self.device),
            amp={torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.amp_dtype, "none"),
            trainable_params=sum(p.numel() for p in params if p.requires_grad),
            total_params=sum(p.numel() for p in params), output=self.output))
        while self.epoch < cfg.epochs:
            self._train_epoch()
            self._end_epoch()
            if self.epoch < cfg.epochs and self._stop_requested():
                self._interrupted()
        return TrainResult(
            output=self.output, best_top1=self.best_top1, best_epoch=self.best_epoch,
            epochs=len(self.history), checkpoint=self.output / "best.pt",
            last_checkpoint=self.output / "last.pt", history=self.history,
            skipped=sorted(self.skipped.items()), seconds=time.perf_counter() - self.started)

    def _train_epoch(self) -> None:
        cfg, procs = self.cfg, self.procs
        if self.restored_rng is not None:
            from ..weights.checkpoint import restore_rng_state

            restore_rng_state(self.restored_rng)
            self.restored_rng = None
        else:
            seed_everything(epoch_seed(cfg.seed, self.epoch, procs.rank, self.step))
        sampler = EpochSampler(len(self.dataset), seed=cfg.seed, epoch=self.epoch, rank=procs.rank,
                               world=procs.world, start=self.step * cfg.batch_size)
        loader = DataLoader(
            self.dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.resolved_workers,
            collate_fn=collate_skipping, drop_last=self.drop_last, pin_memory=self.device.type == "cuda",
            worker_init_fn=quiet_worker,
            generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, self.epoch, procs.rank, self.step, 1)))
        set_train_mode(self.model, self.frozen, self.cfg.freeze_bn)
        net = self.ddp or self.model
        tick, images_done = time.perf_counter(), 0
        for images, targets, skipped in loader:
            for item in skipped:
                self.skipped[item.path] = item.reason
            if self._stop_requested(before_step=True):
                self.partial["seconds"] += time.perf_counter() - tick
                self._interrupted()
            if images is not None and self.mixup is not None and len(images) % 2:
                # timm's Mixup pairs images: drop an odd one out (a lone image leaves nothing to train on)
                images, targets = (images[:-1], targets[:-1]) if len(images) > 1 else (None, None)
            if images is not None:
                loss = self._step(net, images, targets)
                self.partial["loss_sum"] += loss * len(images)
                self.partial["images"] += len(images)
                images_done += len(images)
            elif procs.distributed:  # nothing readable here, but the other processes' step needs this one
                self._step(net, None, None)
            self.step += 1
            elapsed = time.perf_counter() - tick
            self.listener.on_step(StepProgress(
                epoch=self.epoch + 1, epochs=cfg.epochs, step=self.step, steps=self.steps_per_epoch,
                loss=loss if images is not None else float("nan"), lr=self._lr(),
                images_per_sec=images_done * procs.world / elapsed if elapsed > 0 else 0.0))
            if self._stop_requested() and self.step < self.steps_per_epoch:
                self.partial["seconds"] += time.perf_counter() - tick
                self._interrupted()
        self.partial["seconds"] += time.perf_counter() - tick

    def _step(self, net: nn.Module, images: torch.Tensor | None, targets: torch.Tensor | None) -> float:
        """One optimizer step on this process's batch; returns its loss.

        Without ``images`` (every image of this process's batch was unreadable) the process still
        takes part: DDP's gradient all-reduce and the step's other collectives must happen in every
        process, or the others wait forever. It contributes a zero gradient (as DDP averages over
        processes, the step then moves by the other processes' gradients, weighted as always)
        and takes the same optimizer step as everyone else, so all copies of the model stay equal.
        """
        if images is None:
            loss = self._zero_weight_loss(net)
        else:
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            targets = targets.to(self.device, non_blocking=True)
            if self.mixup is not None:
                images, targets = self.mixup(images, targets)
            with self._autocast():
                loss = self.criterion(net(images), targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        value = loss.item()
        if not self._all_finite(value):
            raise TrainingDiverged(self._diverged_message(value))
        if self.cfg.clip_grad:
            from timm.utils import dispatch_clip_grad

            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            dispatch_clip_grad([p for p in self.model.parameters() if p.requires_grad], self.cfg.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.num_updates += 1
        self.scheduler.step_update(self.num_updates)
        if self.ema is not None:
            self.ema.update(self.model, step=self.num_updates)
        return value

    def _zero_weight_loss(self, net: nn.Module) -> torch.Tensor:
        """A loss whose gradient is exactly zero but that runs ``net`` (DDP's forward and backward
        collectives) on a blank image, in eval mode so that it adds nothing to BatchNorm statistics.
        Non-finite when the weights themselves overflowed, which the divergence check then catches."""
        size = self.preprocess.input_size
        blank = torch.zeros(1, 3, size, size, device=self.device).contiguous(memory_format=self.memory_format)
        self.model.eval()
        try:
            with self._autocast():
                output = net(blank)
        finally:
            set_train_mode(self.model, self.frozen, self.cfg.freeze_bn)
        return output.float().sum() * 0.0

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def _end_epoch(self) -> None:
        cfg, procs = self.cfg, self.procs
        tick = time.perf_counter()
        result = evaluate(TorchBackend(self._validated_model(), self.device), self.splits.val,
                          len(self.splits.class_names), self.preprocess, batch_size=cfg.batch_size,
                          workers=cfg.resolved_workers, on_batch=self.listener.on_validation,
                          distributed=procs.distributed)
        for path, reason in result.errors:
            self.skipped[path] = reason
        if result.images and not math.isfinite(result.loss):  # the weights themselves overflowed
            raise TrainingDiverged(self._diverged_message(result.loss, "validation loss"))
        loss_sum, images, seconds = self._reduce_partial()
        self.partial["seconds"] += time.perf_counter() - tick
        self._gather_skipped()
        is_best = result.top1 > self.best_top1
        record = EpochRecord(
            epoch=self.epoch + 1, train_loss=loss_sum / max(images, 1), val_loss=result.loss,
            top1=result.top1, top5=result.top5, lr=self._lr(),
            images_per_sec=images / seconds if seconds > 0 else 0.0,
            seconds=self.partial["seconds"], is_best=is_best, skipped_images=len(self.skipped))
        self.history.append({k: v for k, v in record.row().items() if k not in ("is_best", "skipped_images")})
        if is_best:
            self.best_top1, self.best_epoch = result.top1, self.epoch + 1
        self.epoch, self.step = self.epoch + 1, 0
        self.partial = {"loss_sum": 0.0, "images": 0, "seconds": 0.0}
        if is_best:  # best.pt first: a crash between the two writes then only repeats the epoch
            self._save(self.output / "best.pt", best=True)
        self._save(self.output / "last.pt")
        if procs.main:
            write_metrics(self.output, self.history)
            write_curves(self.output, self.history)
        self.listener.on_epoch_end(record)

    # -- helpers ----------------------------------------------------------------------------
    def _validated_model(self) -> nn.Module:
        """The weights that go into the checkpoints: the EMA when enabled, else the model itself,
        in plain memory format (as ``mnv3 evaluate`` will run them)."""
        model = self.ema.module if self.ema is not None else self.model
        if self.procs.distributed:  # BatchNorm statistics differ per process: use rank 0's everywhere
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)
        return copy.deepcopy(model) if self.cfg.channels_last else model

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _stop_requested(self, before_step: bool = False) -> bool:
        """Whether any process was asked to stop (all processes must agree on the same step)."""
        if not self.procs.distributed:
            return self.stop.is_set()
        if before_step:  # the step-end check already synchronised the flag
            return False
        flag = torch.tensor([float(self.stop.is_set())], device=self._collective_device())
        dist.all_reduce(flag)
        return bool(flag.item())

    def _all_finite(self, value: float) -> bool:
        bad = not math.isfinite(value)
        if not self.procs.distributed:
            return not bad
        flag = torch.tensor([float(bad)], device=self._collective_device())
        dist.all_reduce(flag)
        return not flag.item()

    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _reduce_partial(self) -> tuple[float, int, float]:
        loss_sum, images, seconds = self.partial["loss_sum"], self.partial["images"], self.partial["seconds"]
        if self.procs.distributed:
            t = torch.tensor([loss_sum, float(images), seconds], dtype=torch.float64,
                             device=self._collective_device())
            dist.all_reduce(t)
            loss_sum, images, seconds = t[0].item(), int(t[1].item()), t[2].item() / self.procs.world
        return loss_sum, images, seconds

    def _gather_skipped(self) -> None:
        if self.procs.distributed:
            shards: list = [None] * self.procs.world
            dist.all_gather_object(shards, self.skipped)
            for shard in shards:
                self.skipped.update(shard)

    def _barrier(self) -> None:
        if self.procs.distributed:
            dist.barrier()

    def _diverged_message(self, value: float, what: str = "loss") -> str:
        last = self.output / "last.pt"
        kept = (f"the last good checkpoint, {last}, is kept" if last.exists()
                else "no checkpoint had been saved yet")
        where = (f"after epoch {self.epoch + 1}" if what != "loss"
                 else f"at epoch {self.epoch + 1}, step {self.step + 1}")
        return (f"{what} became {value} {where}; training stopped and {kept}. "
                "Try a lower --lr, --clip-grad 1.0 or --amp none")

    def _interrupted(self) -> None:
        """Save the exact position and raise :class:`Interrupted` with the resume command."""
        self._save(self.output / "last.pt")
        where = (f"after epoch {self.epoch}" if self.step == 0
                 else f"in epoch {self.epoch + 1} after step {self.step}/{self.steps_per_epoch}")
        raise Interrupted(f"interrupted {where}; saved {self.output / 'last.pt'}. Resume with: "
                          f"mnv3 train --resume {self.output}")

    def _save(self, path: Path, best: bool = False) -> None:
        """Write a checkpoint on rank 0 (all processes take part in gathering RNG states)."""
        from ..weights.checkpoint import capture_rng_state, save_checkpoint

        rng = capture_rng_state()
        if self.procs.distributed:
            states: list = [None] * self.procs.world
            dist.all_gather_object(states, rng)
        else:
            states = [rng]
        if self.procs.main:
            weights = self.ema.module if self.ema is not None else self.model
            extra: dict[str, Any] = {"config": self.cfg.resolved_dict(), "epoch": self.epoch,
                                     "epochs": self.cfg.epochs, "best_top1": self.best_top1,
                                     "best_epoch": self.best_epoch, "history": self.history}
            if not best:
                extra |= {"step": self.step, "num_updates": self.num_updates,
                          "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                          "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                          "ema": self.ema is not None, "partial": dict(self.partial),
                          "skipped": dict(self.skipped), "rng": states}
                if self.ema is not None:
                    extra["train_state_dict"] = self.model.state_dict()
            save_checkpoint(path, weights, model_name=self.start.model_name, arch=dict(weights.config),
                            class_names=self.splits.class_names, preprocess=self.preprocess,
                            wordnet_ids=self.start.wordnet_ids, extra=extra)
        self._barrier()

    def _config_record(self) -> dict[str, Any]:
        # absolute paths, so that `--resume` works from any directory
        paths = {k: str(Path(v).resolve()) for k in ("data", "val") if (v := getattr(self.cfg, k))}
        return {"config": self.cfg.resolved_dict() | paths | {"output": str(self.output.resolve())},
                "model": self.start.model_name, "start": self.start.description,
                "classes": self.splits.class_names, "data": self.splits.source,
                "train_images": len(self.splits.train), "val_images": len(self.splits.val),
                "preprocess": self.preprocess.to_dict(), "device": str(self.device),
                "world_size": self.procs.world, "mnv3_version": __version__,
                "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _read_resume(resume) -> tuple[Path, dict]:
    """The checkpoint to resume from (RUN/last.pt, or a ``.pt`` file named directly) and its contents."""
    from ..weights.checkpoint import read_checkpoint

    path = Path(resume)
    path = path if path.suffix == ".pt" else path / "last.pt"
    if not path.exists():
        raise UserError(f"{resume}: nothing to resume (no {path.name}); the run saves it after its "
                        "first epoch or when interrupted")
    ckpt = read_checkpoint(path)
    if "optimizer" not in ckpt["extra"]:
        raise UserError(f"{path}: holds no training state (optimizer, position); resume from a run "
                        "folder's last.pt")
    return path, ckpt


def _missing_data():
    raise UserError("no training data: pass DIR (an ImageFolder with train/ and val/ folders)")
