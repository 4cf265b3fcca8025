"""Temperature scaling of a set of weights: fit one temperature on labelled images, write a checkpoint
that carries it (``mnv3 calibrate``, and ``mnv3 train`` on its validation images at the end).

The fit runs on the raw logits of the PyTorch model (temperature 1, whatever the weights carried
before), so calibrating twice gives the same temperature, not a product of two. The checkpoint
written is the source's weights and card with the new temperature, which every backend then applies
(:func:`mnv3cli.model.with_temperature`): top-1 never changes, probabilities do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..evaluation.calibration import MIN_CALIBRATION_IMAGES, TemperatureFit, temperature_fit
from ..evaluation.evaluate import EvalProgress, evaluate
from ..inference.backends import TorchBackend


def calibrate_weights(
    weights: str | os.PathLike, samples: Sequence[tuple[str, int]], output: str | os.PathLike, **kwargs
) -> TemperatureFit:
    """:func:`calibrate_loaded` of the weights ``weights`` names (a file or a registry tag)."""
    from ..weights.loader import load_model

    return calibrate_loaded(load_model(weights), samples, output, **kwargs)


def calibrate_loaded(
    loaded,
    samples: Sequence[tuple[str, int]],
    output: str | os.PathLike,
    *,
    batch_size: int = 32,
    workers: int | None = None,
    device=None,
    extra: dict | None = None,
    on_batch: Callable[[EvalProgress], None] | None = None,
    fast_decode: bool = True,
) -> TemperatureFit:
    """Fit the temperature of a :class:`~mnv3cli.weights.loader.LoadedModel` on ``samples``
    (``(path, class index)``) and write ``output`` (a checkpoint: ``.pt``/``.pth``/``.safetensors``).
    A checkpoint source keeps the plain part of its ``extra`` (metrics, epoch, config; not optimizer
    state); ``extra`` adds to it. Raises ``UserError`` when fewer than
    :data:`~mnv3cli.evaluation.calibration.MIN_CALIBRATION_IMAGES` images are given or readable."""
    from ..weights.checkpoint import save_checkpoint

    _enough(len(samples), "image(s)", loaded.card.source)

    result = evaluate(
        TorchBackend(loaded.model, device),
        samples,
        loaded.card.num_classes,
        loaded.card.preprocess,
        batch_size=batch_size,
        workers=workers,
        on_batch=on_batch,
        keep_logits=True,
        fast_decode=fast_decode,
    )
    _enough(result.images, f"readable image(s) ({len(result.errors)} unreadable)", loaded.card.source)
    if result.logits is None:  # keep_logits=True above keeps them: a broken promise of evaluate()
        raise RuntimeError("evaluate() kept no logits to fit a temperature on")
    fit = temperature_fit(result.logits, [p.target for p in result.predictions])
    kept = {k: v for k, v in loaded.meta.items() if k != "format"}  # a checkpoint's plain extra
    save_checkpoint(
        Path(output),
        loaded.model,
        card=replace(loaded.card, temperature=fit.temperature),
        arch=loaded.card.arch,
        extra=kept | dict(extra or {}) | {"calibration": fit.to_dict()},
    )
    return fit


def _enough(images: int, what: str, source) -> None:
    from ..errors import UserError

    if images < MIN_CALIBRATION_IMAGES:
        raise UserError(
            f"{images} {what} to calibrate {source} on; a temperature needs at least "
            f"{MIN_CALIBRATION_IMAGES} (fitted on fewer it is noise)"
        )


def calibrate_best(run) -> TemperatureFit | None:
    """The end of ``mnv3 train``: fit the temperature of ``best.pt`` on the validation images and
    store it there (rank 0; the others wait). None when there is too little to fit on (fewer than
    :data:`~mnv3cli.evaluation.calibration.MIN_CALIBRATION_IMAGES` readable validation images):
    ``best.pt`` then keeps temperature 1."""
    from .. import distributed
    from ..errors import UserError

    if run.cfg.multi_label:  # a sigmoid head gets per-class thresholds instead (see .multilabel)
        from .multilabel import tune_best_thresholds

        tune_best_thresholds(run)
        return None
    best = run.output / "best.pt"
    fit = None
    if distributed.is_main() and len(run.splits.val) >= MIN_CALIBRATION_IMAGES and best.exists():
        try:
            fit = calibrate_weights(
                best,
                run.splits.val,
                best,
                batch_size=run.cfg.batch_size,
                workers=run.cfg.resolved_workers,
                device=run.device,
            )
        except UserError:  # too few validation images readable: best.pt stays as trained
            fit = None
    distributed.barrier()
    return fit
