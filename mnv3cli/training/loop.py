"""Fine-tuning and training from scratch: the loop behind ``mnv3 train``, as plain functions.

:func:`train` prepares a :class:`~mnv3cli.training.run.Run` (what is fixed) and a
:class:`~mnv3cli.training.state.TrainState` (where it stands), then alternates
:func:`train_one_epoch` and :func:`end_epoch` (validation, records, checkpoints), in the manner of
torchvision's reference ``train.py``. Validation goes through
:func:`mnv3cli.evaluation.evaluate.evaluate` with the checkpoint's own preprocessing, so
``mnv3 evaluate VAL --weights RUN/best.pt`` reproduces exactly the top-1 reported here.

Nothing is lost: ``last.pt`` (weights, optimizer, scheduler, EMA, grad scaler, position, RNG states,
history) is written atomically after every epoch and when a stop is requested (SIGINT/SIGTERM via
:func:`~mnv3cli.training.signals.stop_on_signals`: the current step finishes first). Every
epoch reseeds its randomness from (seed, epoch, rank), and every image's augmentation from (seed,
epoch, index) whichever data-loading worker decodes it, so a resumed run replays exactly the
epochs an uninterrupted one would, with any number of workers.

Under ``torchrun`` each process trains a shard (DistributedDataParallel, gloo on CPU, nccl on CUDA);
only rank 0 writes files and reports progress. Every collective goes through
:mod:`mnv3cli.distributed`, whose helpers do nothing in a single process, so the loop reads the same
either way. Progress is reported through a :class:`~mnv3cli.training.events.TrainListener`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, NoReturn, cast

import torch
from torch import nn

from .. import distributed
from ..errors import Interrupted, UserError
from ..evaluation.evaluate import EvalResult, evaluate
from ..inference.backends import TorchBackend
from .calibrate import calibrate_best
from .config import TrainConfig
from .events import EpochRecord, StepProgress, TrainListener, TrainResult
from .imbalance import epoch_sampler
from .outputs import write_curves, write_metrics
from .run import Run, open_run_folder, prepare
from .setup import process_device, set_train_mode
from .state import TrainState, capture_rng_state
from .telemetry import validation_samples


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def train(
    cfg: TrainConfig,
    listener: TrainListener | None = None,
    *,
    resume: str | os.PathLike | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Run (or with ``resume``, continue) the training ``cfg`` describes; see the module docstring.

    Raises :class:`~mnv3cli.errors.Interrupted` after saving ``last.pt`` when ``stop`` is set,
    :class:`TrainingDiverged` on a non-finite loss, :class:`UserError` for bad data or options.
    """
    with process_device(cfg.device) as device, contextlib.ExitStack() as held:
        started = time.perf_counter()
        run, state = prepare(cfg, listener or TrainListener(), device, resume, stop or threading.Event(), held)
        try:
            result = _train(run, state, started)
        except BaseException as exc:  # the logs learn how the run ended, then the error goes on
            with contextlib.suppress(Exception):
                run.listener.on_finish(None, "KILLED" if isinstance(exc, Interrupted) else "FAILED")
            raise
        run.listener.on_finish(result, "FINISHED")
        return result


def _train(run: Run, state: TrainState, started: float) -> TrainResult:
    """The epochs still to run (until --patience runs out), then the temperature of best.pt."""
    open_run_folder(run, state)
    while state.epoch < run.cfg.epochs and not state.out_of_patience(run.cfg.patience):
        train_one_epoch(run, state)
        end_epoch(run, state)
        more = state.epoch < run.cfg.epochs and not state.out_of_patience(run.cfg.patience)
        if more and stop_requested(run.stop):
            interrupted(run, state)
    fit = calibrate_best(run)  # the temperature of best.pt, on the validation images
    return TrainResult(
        output=run.output,
        best_top1=state.best_top1,
        best_epoch=state.best_epoch,
        epochs=len(state.history),
        checkpoint=run.output / "best.pt",
        last_checkpoint=run.output / "last.pt",
        history=state.history,
        skipped=sorted(state.skipped.items()),
        seconds=time.perf_counter() - started,
        calibration=fit.to_dict() if fit else None,
        stopped_early=state.epoch < run.cfg.epochs,
        patience=run.cfg.patience,
        bad_rows=run.splits.problems,
    )


def train_one_epoch(run: Run, state: TrainState) -> None:
    """The rest of the epoch ``state`` is in (all of it, or from the step a resumed run stopped at)."""
    cfg, rank, world = run.cfg, distributed.rank(), distributed.world_size()
    state.seed_epoch(cfg.seed, rank)
    sampler = epoch_sampler(
        run.dataset.samples, cfg, epoch=state.epoch, rank=rank, world=world, start=state.step * cfg.batch_size
    )
    tick, images_done = time.perf_counter(), 0  # starting the workers counts as training time
    batches = run.loader.epoch(sampler)
    set_train_mode(run.model, run.frozen, cfg.freeze_bn)
    for images, targets, skipped in batches:
        for item in skipped:
            state.skipped[item.path] = item.reason
        if stop_requested(run.stop, before_step=True):
            state.seconds += time.perf_counter() - tick
            interrupted(run, state)
        if images is not None and run.recipe.mixup is not None and len(images) % 2:
            # timm's Mixup pairs images: drop an odd one out (a lone image leaves nothing to train on)
            images, targets = (images[:-1], targets[:-1]) if len(images) > 1 else (None, None)
        if images is not None:
            loss = train_step(run, state, images, targets)
            state.loss_sum += loss * len(images)
            state.images += len(images)
            images_done += len(images)
        elif distributed.is_distributed():  # nothing readable here, but the others' step needs this one
            train_step(run, state, None, None)
        state.step += 1
        elapsed = time.perf_counter() - tick
        run.listener.on_step(
            StepProgress(
                epoch=state.epoch + 1,
                epochs=cfg.epochs,
                step=state.step,
                steps=run.steps_per_epoch,
                loss=loss if images is not None else float("nan"),
                lr=run.recipe.lr(),
                images_per_sec=images_done * world / elapsed if elapsed > 0 else 0.0,
            )
        )
        if stop_requested(run.stop) and state.step < run.steps_per_epoch:
            state.seconds += time.perf_counter() - tick
            interrupted(run, state)
    state.seconds += time.perf_counter() - tick


def train_step(run: Run, state: TrainState, images: torch.Tensor | None, targets: torch.Tensor | None) -> float:
    """One optimizer step on this process's batch; returns its loss.

    Without ``images`` (every image of this process's batch was unreadable) the process still
    takes part: DDP's gradient all-reduce and the step's other collectives must happen in every
    process, or the others wait forever. It contributes a zero gradient (as DDP averages over
    processes, the step then moves by the other processes' gradients, weighted as always)
    and takes the same optimizer step as everyone else, so all copies of the model stay equal.
    """
    recipe = run.recipe
    if images is None or targets is None:  # both or neither
        loss = _zero_weight_loss(run)
    else:
        images = images.to(run.device, non_blocking=True).contiguous(memory_format=run.memory_format)
        targets = targets.to(run.device, non_blocking=True)
        if recipe.mixup is not None:
            images, targets = recipe.mixup(images, targets)
        with recipe.autocast(run.device):
            loss = recipe.criterion(recipe.net(images), targets)
    recipe.optimizer.zero_grad(set_to_none=True)
    if recipe.scaler is not None:
        recipe.scaler.scale(loss).backward()
    else:
        loss.backward()
    value = loss.item()
    if distributed.any_process(not math.isfinite(value)):
        raise TrainingDiverged(_diverged_message(run, state, value))
    if run.cfg.clip_grad:
        from timm.utils import dispatch_clip_grad

        if recipe.scaler is not None:
            recipe.scaler.unscale_(recipe.optimizer)
        dispatch_clip_grad([p for p in run.model.parameters() if p.requires_grad], run.cfg.clip_grad)
    if recipe.scaler is not None:
        recipe.scaler.step(recipe.optimizer)
        recipe.scaler.update()
    else:
        recipe.optimizer.step()
    state.num_updates += 1
    recipe.scheduler.step_update(state.num_updates)
    if recipe.ema is not None:
        recipe.ema.update(run.model, step=state.num_updates)
    return value


def _zero_weight_loss(run: Run) -> torch.Tensor:
    """A loss whose gradient is exactly zero but that runs the DDP-wrapped model (its forward and
    backward collectives) on a blank image, in eval mode so that it adds nothing to BatchNorm
    statistics. Non-finite when the weights themselves overflowed, which the divergence check then
    catches."""
    size = run.preprocess.input_size
    blank = torch.zeros(1, 3, size, size, device=run.device).contiguous(memory_format=run.memory_format)
    run.model.eval()
    try:
        with run.recipe.autocast(run.device):
            output = run.recipe.net(blank)
    finally:
        set_train_mode(run.model, run.frozen, run.cfg.freeze_bn)
    return output.float().sum() * 0.0


def validate(run: Run) -> EvalResult:
    """Top-1/top-5 and loss of the weights that go into the checkpoints (every process the same).
    A multi-label run's result carries its mAP in place of top-1 (what picks best.pt), its micro
    F1 in place of top-5 and its mean binary cross-entropy as the loss."""
    if run.cfg.multi_label:
        from .multilabel import validate_multilabel

        return validate_multilabel(run, TorchBackend(_validated_model(run), run.device))
    return evaluate(
        TorchBackend(_validated_model(run), run.device),
        run.splits.val,
        len(run.splits.class_names),
        run.preprocess,
        batch_size=run.cfg.batch_size,
        workers=run.cfg.resolved_workers,
        on_batch=run.listener.on_validation,
        distributed=distributed.is_distributed(),
    )


def _validated_model(run: Run) -> nn.Module:
    """The EMA when enabled, else the model itself, with rank 0's BatchNorm statistics in every
    process (they differ per process), in plain memory format (as ``mnv3 evaluate`` will run it)."""
    model = run.recipe.weights(run.model)
    distributed.broadcast_tensors(model.state_dict().values())
    return copy.deepcopy(model) if run.cfg.channels_last else model


def end_epoch(run: Run, state: TrainState) -> None:
    """Validate, record the epoch (history, best), save ``best.pt``/``last.pt`` and the metric files."""
    tick = time.perf_counter()
    result = validate(run)
    for path, reason in result.errors:
        state.skipped[path] = reason
    if result.images and not math.isfinite(result.loss):  # the weights themselves overflowed
        raise TrainingDiverged(_diverged_message(run, state, result.loss, "validation loss"))
    loss_sum, images, seconds = distributed.all_reduce_sum([state.loss_sum, state.images, state.seconds])
    loss_sum, images, seconds = float(loss_sum), int(images), float(seconds) / distributed.world_size()
    for count, what, root in (
        (images, "training", run.splits.train_root),
        (result.images, "validation", run.splits.val_root),
    ):
        if not count:  # every file had a valid header but none could be decoded: nothing to report
            raise UserError(
                f"{root}: none of its {what} images could be decoded (e.g. "
                f"{next(iter(state.skipped.values()), 'no reason given')})"
            )
    state.seconds += time.perf_counter() - tick
    for shard in distributed.all_gather_object(state.skipped):
        state.skipped.update(shard)
    is_best = result.top1 > state.best_top1
    record = EpochRecord(
        epoch=state.epoch + 1,
        train_loss=loss_sum / max(images, 1),
        val_loss=result.loss,
        top1=result.top1,
        top5=result.top5,
        lr=run.recipe.lr(),
        images_per_sec=images / seconds if seconds > 0 else 0.0,
        seconds=state.seconds,
        is_best=is_best,
        skipped_images=len(state.skipped),
    )
    state.end_epoch(record.history_row(), result.top1, is_best)
    if is_best:  # best.pt first: a crash between the two writes then only repeats the epoch
        save(run, state, run.output / "best.pt", best=True)
    save(run, state, run.output / "last.pt")
    if distributed.is_main():
        write_metrics(run.output, state.history)
        write_curves(run.output, state.history)
    run.listener.on_epoch_end(record)
    if run.listener.sample_images:  # (only rank 0's listener asks)
        run.listener.on_samples(record.epoch, validation_samples(run, run.listener.sample_images))


def save(run: Run, state: TrainState, path: Path, best: bool = False) -> None:
    """Write a checkpoint on rank 0 (all processes take part in gathering RNG states): ``best.pt``
    holds the weights and the record, ``last.pt`` everything a resume needs."""
    from ..weights.checkpoint import save_checkpoint

    states = distributed.all_gather_object(capture_rng_state())
    if distributed.is_main():
        weights = run.recipe.weights(run.model)
        extra = {"config": run.cfg.resolved_dict(), "epochs": run.cfg.epochs}
        extra |= state.checkpoint_extra(None if best else states)
        if not best:
            extra |= run.recipe.checkpoint_extra(run.model)
        card = run.start.card
        save_checkpoint(
            path,
            weights,
            card=card,  # its head type; the fields below as trained
            model_name=card.model_name,
            arch=dict(cast(dict[str, Any], weights.config)),  # MobileNetV3.config, a dict
            class_names=run.splits.class_names,
            preprocess=card.preprocess,
            wordnet_ids=card.wordnet_ids,
            extra=extra,
        )
    distributed.barrier()


def stop_requested(stop: threading.Event, before_step: bool = False) -> bool:
    """Whether any process was asked to stop: all processes must stop at the same step, so together
    they decide at the end of a step; alone, a request is also honoured before the next step."""
    if before_step:
        return not distributed.is_distributed() and stop.is_set()
    return distributed.any_process(stop.is_set())


def interrupted(run: Run, state: TrainState) -> NoReturn:
    """Save the exact position and raise :class:`Interrupted` with the resume command."""
    save(run, state, run.output / "last.pt")
    if state.step:
        where = f"in epoch {state.epoch + 1} after step {state.step}/{run.steps_per_epoch}"
    else:  # state.epoch epochs are complete: the last one's number, counted from 1
        where = f"after epoch {state.epoch}" if state.epoch else "before the first step"
    raise Interrupted(
        f"interrupted {where}; saved {run.output / 'last.pt'}. Resume with: mnv3 train --resume -o {run.output}"
    )


def _diverged_message(run: Run, state: TrainState, value: float, what: str = "loss") -> str:
    last = run.output / "last.pt"
    kept = f"the last good checkpoint, {last}, is kept" if last.exists() else "no checkpoint had been saved yet"
    where = f"after epoch {state.epoch + 1}" if what != "loss" else f"at epoch {state.epoch + 1}, step {state.step + 1}"
    return (
        f"{what} became {value} {where}; training stopped and {kept}. Try a lower --lr, --clip-grad 1.0 or --amp none"
    )
