"""Everything about a training run that is fixed once it starts (:class:`Run`): its options, device,
folder, data, model and recipe, assembled by :func:`prepare` (from scratch, or from the ``last.pt``
being resumed, together with the :class:`~mnv3cli.training.state.TrainState` it holds).

What changes while the run trains lives in the state; the loop in :mod:`mnv3cli.training.loop`
takes both and stays a handful of plain functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__, distributed
from ..data import iter_batches
from ..errors import UserError
from .bn_recalibration import has_folded_batchnorm, unfold_batchnorm
from .config import TrainConfig
from .data import (
    EpochSampler,
    RunLoader,
    Splits,
    TrainDataset,
    drop_unreadable,
    find_splits,
    train_transform,
)
from .events import TrainListener, TrainPlan
from .imbalance import balanced_class_weights
from .lock import hold_run_folder
from .outputs import write_config
from .recipe import Recipe, build_recipe
from .setup import StartingPoint, build_model, freeze_layers, resumed_model
from .state import TrainState, epoch_seed, read_resume, resume_folder, seed_everything
from .telemetry import with_telemetry


@dataclass
class Run:
    cfg: TrainConfig  # as resolved (e.g. head_lr_scale), as config.json and the checkpoints record it
    device: torch.device
    output: Path  # the run folder
    splits: Splits
    start: StartingPoint  # the model's card and how the run started
    model: nn.Module  # on ``device``
    frozen: list[nn.Module]
    memory_format: torch.memory_format
    dataset: TrainDataset
    drop_last: bool
    loader: RunLoader  # the training batches, its workers kept for the whole run
    steps_per_epoch: int
    recipe: Recipe
    listener: TrainListener  # the caller's on rank 0, a silent one elsewhere
    stop: threading.Event
    unreadable: dict[str, dict[str, str]]  # files left out of each split ("train", "val"): path -> why
    resumed: bool = False  # continuing a saved run
    notes: tuple[str, ...] = ()  # warnings for the user, sent with the plan

    @property
    def preprocess(self):
        return self.start.card.preprocess


def prepare(
    cfg: TrainConfig,
    listener: TrainListener,
    device: torch.device,
    resume,
    stop: threading.Event,
    held: contextlib.ExitStack,
) -> tuple[Run, TrainState]:
    """Assemble the run ``cfg`` describes (or, with ``resume``, the run saved there) and its state.

    The run folder is held (:func:`~mnv3cli.training.lock.hold_run_folder`) until ``held`` closes;
    it is taken once the data are found, so a mistyped DIR leaves no folder behind, and before
    anything in it is read or judged."""
    seed_everything(cfg.seed)  # the new head (or a whole new model) starts the same every time
    output = resume_folder(resume) if resume is not None else new_output(cfg)
    listener, notes = with_telemetry(listener, cfg, output, distributed.is_main())
    splits = find_splits(
        cfg.data or _missing_data(),
        cfg.val,
        cfg.val_split,
        cfg.seed,
        classes_file=cfg.classes_file,
        allow_absolute=cfg.allow_absolute_paths,
    )
    splits, unreadable = drop_unreadable(splits, cfg.resolved_workers)
    if cfg.multi_label and not splits.multi_label:
        raise UserError(f"{cfg.data}: --multi-label needs a manifest with a `labels` column (one label set a row)")
    cfg = dataclasses.replace(cfg, multi_label=splits.multi_label).validate()
    held.enter_context(hold_run_folder(output))
    resume_file, checkpoint = read_resume(resume) if resume is not None else (None, None)
    if resume is None:
        check_free(output)
    if resume_file is not None:
        start = resumed_model(resume_file, splits.class_names, cfg.data)
    else:
        start = build_model(cfg, splits.class_names)
        if cfg.multi_label and (start.new_head or not cfg.weights):
            from .multilabel import init_prior_head

            head = start.model.classifier
            assert isinstance(head, torch.nn.Linear), "a multi-label model has a classifier"
            init_prior_head(head, splits.train)
        if cfg.weights and has_folded_batchnorm(start.model):  # (a fresh model looks the same)
            start.description += f"; BatchNorm statistics measured on {_unfold(start, splits, cfg)} images"
    frozen = freeze_layers(start.model, cfg.freeze)
    for module in start.model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = cfg.bn_momentum
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = start.model.to(device, memory_format=memory_format)  # type: ignore[call-overload]  # torch takes both

    preprocess = start.card.preprocess
    dataset = TrainDataset(
        splits.train,
        train_transform(
            preprocess,
            crop_scale=cfg.resolved_crop_scale,
            hflip=cfg.hflip,
            augment=cfg.augment,
            random_erasing=cfg.random_erasing,
        ),
        seed=cfg.seed,
    )
    per_process = len(
        EpochSampler(len(dataset), seed=cfg.seed, epoch=0, rank=distributed.rank(), world=distributed.world_size())
    )
    if per_process < 2:  # BatchNorm cannot train on a single image (the same rule as --batch-size 2)
        raise UserError(
            f"{cfg.data}: {per_process} training image(s) per process; BatchNorm needs at least 2 per batch"
        )
    # keep every image, except a last batch of one (BatchNorm cannot train on a single image)
    drop_last = per_process % cfg.batch_size == 1 and per_process > 1
    steps = per_process // cfg.batch_size if drop_last else math.ceil(per_process / cfg.batch_size)

    loader = RunLoader(
        dataset,
        batch_size=cfg.batch_size,
        workers=cfg.resolved_workers,
        drop_last=drop_last,
        pin_memory=device.type == "cuda",
        seed=epoch_seed(cfg.seed, distributed.rank(), 1),
    )
    num_classes = len(splits.class_names)
    cfg, recipe = build_recipe(
        cfg,
        model,
        device,
        new_head=start.new_head,
        num_classes=num_classes,
        steps_per_epoch=steps,
        class_weights=balanced_class_weights(splits.train, num_classes) if cfg.class_weights == "balanced" else None,
    )
    state = TrainState()
    if checkpoint is not None:
        recipe.restore(checkpoint, model, cfg.epochs, output)
        state = TrainState.from_checkpoint(checkpoint["extra"], distributed.rank(), distributed.world_size())
        recipe.scheduler.step_update(state.num_updates)
        start.description = f"resuming {output} at epoch {state.epoch + 1}" + (
            f", step {state.step + 1}" if state.step else ""
        )
    run = Run(
        cfg,
        device,
        output,
        splits,
        start,
        model,
        frozen,
        memory_format,
        dataset,
        drop_last,
        held.enter_context(contextlib.closing(loader)),
        steps,
        recipe,
        listener,
        stop,
        unreadable,
        resumed=checkpoint is not None,
        notes=(*splits.problems, *notes),  # a manifest's bad rows first
    )
    state.skipped.update({**unreadable["train"], **unreadable["val"]})
    return run, state


def new_output(cfg: TrainConfig) -> Path:
    """``--output`` or the first unused ``runs/<data folder name>[-N]``."""
    if cfg.output:
        return Path(cfg.output)
    name = Path(cfg.data or "run").resolve().name or "run"
    out, n = Path("runs") / name, 1
    while out.exists() and any(out.iterdir()):
        n += 1
        out = Path("runs") / f"{name}-{n}"
    return Path(distributed.broadcast_object(str(out)))  # every process writes where rank 0 chose


def check_free(out: Path) -> None:
    """Refuse to start a new run over another run's checkpoints.

    A folder holding only ``config.json`` is free: a run killed before its first checkpoint leaves
    one, which can neither be resumed nor would otherwise be reusable."""
    if (out / "last.pt").exists() or (out / "best.pt").exists():
        raise UserError(
            f"{out}: already holds a training run; continue it with "
            f"`mnv3 train --resume -o {out}` or choose another --output"
        )


def _unfold(start: StartingPoint, splits: Splits, cfg: TrainConfig, images: int = 256) -> int:
    """:func:`unfold_batchnorm` on the first ``images`` training images, prepared as for
    validation (the same images in every process, so all processes agree)."""
    paths = [path for path, _ in splits.train[:images]]
    batches = (
        torch.from_numpy(b.images)
        for b in iter_batches(paths, start.card.preprocess, 32, cfg.resolved_workers)
        if b.indices
    )
    return unfold_batchnorm(start.model, batches)


def open_run_folder(run: Run, state: TrainState) -> None:
    """Write ``config.json`` (rank 0) and announce the plan, once every process is ready."""
    if distributed.is_main():
        try:
            run.output.mkdir(parents=True, exist_ok=True)
            write_config(run.output, config_record(run))
        except OSError as exc:
            raise UserError(f"{run.output}: cannot write the run folder ({exc.strerror or exc})") from None
    distributed.barrier()
    params = list(run.model.parameters())
    cfg, splits, unreadable = run.cfg, run.splits, run.unreadable
    examples = [*unreadable["train"].values(), *unreadable["val"].values()]
    run.listener.on_start(
        TrainPlan(
            model_name=run.start.card.model_name,
            start=run.start.description,
            class_names=splits.class_names,
            train_images=len(splits.train),
            val_images=len(splits.val),
            data=splits.source,
            epochs=cfg.epochs,
            start_epoch=state.epoch + 1,
            steps_per_epoch=run.steps_per_epoch,
            batch_size=cfg.batch_size,
            world_size=distributed.world_size(),
            device=str(run.device),
            amp=run.recipe.amp,
            trainable_params=sum(p.numel() for p in params if p.requires_grad),
            total_params=sum(p.numel() for p in params),
            output=run.output,
            unreadable_train=len(unreadable["train"]),
            unreadable_val=len(unreadable["val"]),
            unreadable_example=examples[0] if examples else "",
            resumed=run.resumed,
            config=config_record(run)["config"],
            notes=run.notes,
        )
    )


def config_record(run: Run) -> dict[str, Any]:
    """``config.json``: the resolved options and what the run is made of."""
    # absolute paths, so that `--resume` works from any directory
    paths = {k: str(Path(v).resolve()) for k in ("data", "val") if (v := getattr(run.cfg, k))}
    return {
        "config": run.cfg.resolved_dict() | paths | {"output": str(run.output.resolve())},
        "model": run.start.card.model_name,
        "start": run.start.description,
        "classes": run.splits.class_names,
        "data": run.splits.source,
        "train_images": len(run.splits.train),
        "val_images": len(run.splits.val),
        "preprocess": run.preprocess.to_dict(),
        "device": str(run.device),
        "world_size": distributed.world_size(),
        "mnv3_version": __version__,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _missing_data():
    raise UserError("no training data: pass DIR (an ImageFolder with train/ and val/ folders)")
