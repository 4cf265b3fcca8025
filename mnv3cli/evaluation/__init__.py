"""Layer 5: measure a model on labelled images: ``evaluate`` (accuracy, loss, confusion), the
metrics, the calibration of its confidence (temperature fitting) and the report files. Classifying
unlabelled inputs is :mod:`mnv3cli.prediction`'s job.

Works on any :class:`~mnv3cli.inference.backends.Backend` and never imports torch, so its names are
imported eagerly (a lazy ``evaluate`` would be shadowed by the submodule of the same name), except
the report writers and the summary tables: their modules (HTML, plots, atomic folders) would cost
every ``mnv3 predict``, which imports this package for its softmax and top-k, ~15 ms.
"""

from .._lazy import lazy_exports
from .calibration import Calibration, fit_temperature
from .evaluate import (
    EvalProgress,
    EvalResult,
    SamplePrediction,
    evaluate,
    spread_subset,
)
from .metrics import ClassificationMeter, log_softmax, softmax, topk_indices

__getattr__, _lazy_names = lazy_exports(
    __name__,
    {
        "check_report_target": ".report",
        "write_report": ".report",
        **dict.fromkeys(("HEADLINE", "EvaluationSummary", "Row", "summary"), ".results"),
    },
)
__all__ = [
    "Calibration",
    "ClassificationMeter",
    "EvalProgress",
    "EvalResult",
    "EvaluationSummary",
    "HEADLINE",
    "Row",
    "SamplePrediction",
    "check_report_target",
    "evaluate",
    "fit_temperature",
    "log_softmax",
    "softmax",
    "spread_subset",
    "summary",
    "topk_indices",
    "write_report",
]
