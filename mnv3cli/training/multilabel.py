"""What a multi-label (sigmoid-head) run does differently: validation by mAP, and per-class decision
thresholds tuned on the validation images at the end and stored in ``best.pt``'s card.

A softmax run picks best.pt by top-1 and fits a temperature at the end; neither means anything for
a sigmoid head, whose classes are decided one by one. Mean average precision ranks the weights
without a threshold; the F1-optimal threshold of each class, measured on the validation split,
then turns scores into label sets (``predict``, ``serve``), and travels with the weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..evaluation.evaluate import EvalResult
from ..evaluation.multilabel import best_f1_thresholds
from ..evaluation.multilabel_eval import evaluate_multilabel
from ..inference.backends import TorchBackend


def init_prior_head(classifier: nn.Linear, samples) -> None:
    """Start a new sigmoid head at the training labels' frequencies: bias ``log(p / (1 - p))`` of
    each class's share ``p`` of the ``(path, multi-hot)`` samples, small weights (RetinaNet's prior
    init, Lin et al. 2017). A zero bias says "every label at 50 %", so the first updates are spent
    pushing down the many negatives instead of learning the features' evidence."""
    share = np.asarray([target for _, target in samples], dtype=np.float64).mean(axis=0)
    share = np.clip(share, 1e-3, 1 - 1e-3)
    with torch.no_grad():
        nn.init.normal_(classifier.weight, std=0.01)
        classifier.bias.copy_(torch.as_tensor(np.log(share / (1 - share)), dtype=classifier.bias.dtype))


def validate_multilabel(run, backend) -> EvalResult:
    """The validation result of a multi-label run: mAP (percent) in place of top-1, micro F1 at 0.5
    in place of top-5, mean binary cross-entropy as the loss (so every report and best.pt's choice
    work unchanged)."""
    found = evaluate_multilabel(
        backend,
        run.splits.val,
        run.splits.class_names,
        run.preprocess,
        batch_size=run.cfg.batch_size,
        workers=run.cfg.resolved_workers,
        on_batch=run.listener.on_validation,
        distributed=distributed.is_distributed(),
    )
    m = found.metrics
    return dataclasses.replace(found.base, top1=100 * (m.map or 0.0), top5=100 * m.micro_f1, loss=found.loss)


def tune_thresholds(loaded, samples, output: str | Path, **options) -> tuple[float, ...]:
    """Per-class F1-optimal thresholds of ``loaded`` (a sigmoid-head LoadedModel) on ``samples``
    (``(path, multi-hot)``), written with its weights to ``output``; returns them."""
    from ..weights.checkpoint import save_checkpoint

    found = evaluate_multilabel(
        TorchBackend(loaded.model, options.pop("device", None)),
        samples,
        loaded.card.class_names,
        loaded.card.preprocess,
        **options,
    )
    thresholds = best_f1_thresholds(found.probs, found.targets)
    kept = {k: v for k, v in loaded.meta.items() if k != "format"}
    save_checkpoint(
        Path(output),
        loaded.model,
        card=dataclasses.replace(loaded.card, thresholds=thresholds),
        arch=loaded.card.arch,
        extra=kept | {"thresholds_tuned_on": len(found.probs)},
    )
    return thresholds


def tune_best_thresholds(run) -> tuple[float, ...] | None:
    """The end of a multi-label ``mnv3 train``: F1-optimal thresholds of ``best.pt`` on the
    validation images, stored in its card (rank 0; the others wait)."""
    from ..weights.loader import load_model

    best = run.output / "best.pt"
    thresholds = None
    if distributed.is_main() and best.exists() and run.splits.val:
        thresholds = tune_thresholds(
            load_model(best),
            run.splits.val,
            best,
            batch_size=run.cfg.batch_size,
            workers=run.cfg.resolved_workers,
            device=run.device,
        )
    distributed.barrier()
    return thresholds


def calibrate_multilabel(loaded, samples, output: str | Path, *, extra: dict | None = None, **options) -> dict:
    """``mnv3 calibrate`` of a sigmoid-head model on ``(path, multi-hot)`` samples: a temperature per
    class (fitted on the raw logits), its thresholds carried over so that the labels stay the same,
    written with the weights to ``output``. Returns what was fitted (JSON-ready)."""
    from ..evaluation.multilabel import carry_thresholds, fit_class_temperatures
    from ..evaluation.multilabel_eval import bce
    from ..weights.checkpoint import save_checkpoint

    raw = dataclasses.replace(loaded.card, class_temperatures=None)
    found = evaluate_multilabel(
        TorchBackend(loaded.model, options.pop("device", None)), samples, raw.class_names, raw.preprocess, **options
    )
    logits = np.log(np.clip(found.probs, 1e-12, 1)) - np.log(np.clip(1 - found.probs, 1e-12, 1))
    temperatures = fit_class_temperatures(logits, found.targets)
    previous = loaded.card.class_temperatures or (1.0,) * len(temperatures)
    # the card's thresholds were for the previous temperatures: back to raw logits, then to the new ones
    raw_thresholds = carry_thresholds(loaded.card.decision_thresholds(), [1 / t for t in previous])
    card = dataclasses.replace(
        loaded.card, class_temperatures=temperatures, thresholds=carry_thresholds(raw_thresholds, temperatures)
    )
    kept = {k: v for k, v in loaded.meta.items() if k != "format"}
    fit = {
        "images": len(found.probs),
        "class_temperatures": dict(zip(raw.class_names, temperatures, strict=True)),
        "bce_before": bce(logits, found.targets),
        "bce_after": bce(logits / np.asarray(temperatures), found.targets),
    }
    save_checkpoint(
        Path(output), loaded.model, card=card, arch=card.arch, extra=kept | dict(extra or {}) | {"calibration": fit}
    )
    return fit
