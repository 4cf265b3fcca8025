"""``mnv3 train``: fine-tune (or train from scratch) on an ImageFolder, resumably, on one or many processes.

The options are generated from :class:`~mnv3cli.training.config.TrainConfig`, so the command
line, ``--config`` files and the run's ``config.json`` share one set of names and defaults. Every
option defaults to "not given" here; :func:`build_config` layers them over the config file.
"""

from __future__ import annotations

from typing import Any

import click

from .. import distributed
from ..errors import Interrupted
from ..rounding import format_seconds, format_significant
from ..training import build_config, default_of
from ..training.events import TrainListener
from .context import AppContext, pass_app, warn
from .options import bad_rows_failure, device_option, manifest_options
from .train_options import OPTIONS, mlflow_option
from .wrapping import fill, plain  # plain: printable.plain, as fill applies it


def _help(field: str, text: str) -> str:
    default = default_of(field)
    if default is None or "[default" in text or isinstance(default, dict):
        return text
    if isinstance(default, bool):
        default = "on" if default else "off"
    return f"{text} [default: {default}]"


def _options(func):
    for flags, field, kind, text in reversed(OPTIONS):
        kwargs: dict[str, Any] = {"default": None, "help": _help(field, text)}
        if kind is not None:
            kwargs["type"] = kind
        func = click.option(*flags, field, **kwargs)(func)
    return func


@click.command("train")
@click.argument("data", required=False, type=click.Path(), metavar="[DATA]")
@_options
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted run in the -o folder from its last.pt (options given now "
    "override its config, e.g. --epochs to train longer).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="YAML or TOML file of options (names as in config.json); the command line wins.",
)
@click.option(
    "--freeze",
    type=click.IntRange(0),
    is_flag=False,
    flag_value=0,
    default=None,
    metavar="[N]",
    help="Train only the classifier; with N, also the last N stages (stem, 5-6 bneck stages "
    "and the head count as stages).",
)
@manifest_options()
@mlflow_option
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as one JSON object on stdout.")
@device_option()
@pass_app
@click.pass_context
def command(
    ctx: click.Context,
    app: AppContext,
    data: str | None,
    resume: bool,
    config_file: str | None,
    as_json: bool,
    **options,
) -> None:
    """Fine-tune or train a model on the labelled images DATA (DATA/train + DATA/val, or
    --val-split), or on a CSV/JSONL manifest of path,label[,split] rows (its train and val rows).

    \b
    Examples:
      mnv3 train data/ --weights imagenet --epochs 5
      mnv3 train photos/ --val-split 0.2 --model mobilenetv3_small_100 --freeze
      mnv3 train --resume -o runs/data
      torchrun --nproc-per-node 4 -m mnv3cli train data/ --weights imagenet
    """
    if resume and not options.get("output"):
        raise click.UsageError("--resume continues the run folder given with -o DIR")
    if data is None and not resume:
        raise click.UsageError("give the training DATA, or --resume -o DIR")
    run: str | None = options["output"] if resume else None  # the run folder to continue
    cli = dict(options, data=data)
    cli["classes_file"] = str(cli["classes_file"]) if cli["classes_file"] else None
    cli["allow_absolute_paths"] = cli["allow_absolute_paths"] or None  # unset: a config file may set it
    if app.device != "auto":
        cli["device"] = app.device
    cfg = build_config(cli, config_file, run, warn)  # option errors before the heavy imports

    from ..training import stop_on_signals, train

    main = distributed.is_main()
    listener = _Display(app) if main else None

    with stop_on_signals() as stop:
        try:
            result = train(cfg, listener, resume=run, stop=stop)
        except Interrupted:
            if not main:  # rank 0 reports it
                ctx.exit(Interrupted.exit_code)
            raise
        finally:
            if listener:
                listener.close()
    if not main:  # rank 0 reports for every process
        return
    summary = result.summary()
    if result.skipped:
        app.info(f"skipped {summary.skipped_images} unreadable image(s), e.g. {result.skipped[0][1]}")
    if summary.stopped_early:
        app.info(
            f"stopped early after epoch {summary.epochs}: no better top-1 in {summary.patience} epoch(s) (--patience)"
        )
    if summary.calibration:
        c = summary.calibration
        app.info(f"temperature {c['temperature']:g} fitted on {c['images']} validation images, stored in best.pt:")
        app.info(
            f"  ECE {c['ece_before']:.2f}% -> {c['ece_after']:.2f}%, NLL {c['nll_before']:.4f} -> {c['nll_after']:.4f}"
        )
    metric = "mAP" if listener and listener.multi_label else "top-1"
    app.wrote(f"best {metric} {summary.best_top1:.2f}% at epoch {summary.best_epoch}: {summary.checkpoint}", as_json)
    if as_json:
        app.emit_json(summary.to_dict())
    if result.bad_rows:
        raise bad_rows_failure(result.bad_rows)


class _Display(TrainListener):
    """The live rich display (epoch, step, loss, lr, images/s, ETA) and one line per epoch on stderr.

    (:mod:`mnv3cli.training.events` imports no torch, so neither does this module.)"""

    def __init__(self, app: AppContext) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeRemainingColumn,
        )

        self.app = app
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[speed]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=app.console,
            disable=not app.interactive,
            transient=True,
        )
        self.task: TaskID | None = None
        self.epochs = 0
        self.multi_label = False

    def on_start(self, plan) -> None:
        self.epochs, self.top5 = plan.epochs, len(plan.class_names) > 5
        self.multi_label = bool(plan.config.get("multi_label"))  # mAP and micro F1 in the top-1/top-5 places
        self.top5 = self.top5 or self.multi_label
        if plan.unreadable_train or plan.unreadable_val:
            click.echo(f"mnv3: warning: {plain(unreadable_note(plan))}", err=True)
        for note in plan.notes:
            click.echo(f"mnv3: warning: {plain(note)}", err=True)
        for line in header(plan):
            self.app.info(line)
        self._print(
            epoch_row(
                ["epoch", "train loss", "val loss", *(("mAP", "micro F1") if self.multi_label else ("top-1", "top-5"))]
                + ["lr", "img/s", "time"],
                self.epochs,
                self.top5,
            )
        )
        self.progress.start()

    def on_step(self, p) -> None:
        fields: dict[str, Any] = {
            "loss": f"{p.loss:.4f}",
            "lr": f"{p.lr:.2e}",
            "speed": f"{p.images_per_sec:.1f} img/s",
        }
        if self.task is None:  # a new epoch (on_epoch_end removed the last one)
            self.task = self.progress.add_task(f"epoch {p.epoch}/{p.epochs}", total=p.steps, **fields)
        self.progress.update(self.task, completed=p.step, **fields)

    def on_validation(self, p) -> None:
        if self.task is not None:
            top1 = "" if self.multi_label else f", top-1 {p.top1:.1f}%"
            self.progress.update(self.task, speed=f"validating {p.done}/{p.total}{top1}")

    def on_epoch_end(self, r) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        cells = [
            f"{r.epoch}/{self.epochs}",
            f"{r.train_loss:.4f}",
            f"{r.val_loss:.4f}",
            f"{r.top1:.2f}%",
            f"{r.top5:.2f}%",
            f"{r.lr:.2e}",
            format_significant(r.images_per_sec),
            format_seconds(r.seconds),
        ]
        self._print(epoch_row(cells, self.epochs, self.top5) + (" *best" if r.is_best else ""))

    def _print(self, line: str) -> None:
        self.app.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        self.progress.stop()


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 epoch``, ``5 epochs``, ``1,234 images``."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def header(plan) -> list[str]:
    """What is about to run, in labelled lines wrapped to 80 columns between words (never inside
    a path or a number)."""
    procs = f" x {plan.world_size} processes" if plan.world_size > 1 else ""
    amp = "" if plan.amp == "none" else f", {plan.amp}"
    fields = [
        ("model", f"{plan.model_name}, {plan.start}"),
        (
            "data",
            f"{plural(len(plan.class_names), 'class', 'classes')}, {plan.train_images:,} training / "
            f"{plural(plan.val_images, 'validation image')} from {plan.data}",
        ),
        (
            "plan",
            f"{plural(plan.epochs, 'epoch')} of {plural(plan.steps_per_epoch, 'step')}, batch "
            f"{plan.batch_size}{procs} on {plan.device}{amp}",
        ),
        ("trained", f"{plan.trainable_params:,} of {plural(plan.total_params, 'parameter')}"),
        ("output", str(plan.output)),
    ]
    return [fill(text, indent=9, first=f"{label + ':':<9}") for label, text in fields]


def unreadable_note(plan) -> str:
    parts = [
        f"{n:,} of {n + total:,} {what}"
        for n, total, what in (
            (plan.unreadable_train, plan.train_images, "training"),
            (plan.unreadable_val, plan.val_images, "validation"),
        )
        if n
    ]
    return f"skipping {' and '.join(parts)} images that cannot be read, e.g. {plan.unreadable_example}"


def epoch_row(cells: list[str], epochs: int, top5: bool) -> str:
    """One line of the per-epoch table (78 columns up to 99 epochs); top-5 only when there are
    more than 5 classes (with fewer it is always 100 %)."""
    widths = [max(5, 2 * len(str(epochs)) + 1), 10, 8, 7, 7, 8, 6, 7]
    keep = [i for i in range(len(cells)) if top5 or i != 4]
    return "  ".join(f"{cells[i]:>{widths[i]}}" for i in keep)
