"""Layer 5: measure a model on labelled images: ``evaluate`` (accuracy, loss, confusion), the
metrics, the calibration of its confidence (temperature fitting) and the report files. Classifying
unlabelled inputs is :mod:`mnv3cli.prediction`'s job.

Works on any :class:`~mnv3cli.inference.backends.Backend` and never imports torch, so its names are
imported eagerly (a lazy ``evaluate`` would be shadowed by the submodule of the same name).
"""

from .calibration import Calibration, fit_temperature
from .evaluate import (
    EvalProgress,
    EvalResult,
    SamplePrediction,
    evaluate,
    spread_subset,
)
from .metrics import ClassificationMeter, log_softmax, softmax, topk_indices
from .report import check_report_target, write_report
from .results import HEADLINE, EvaluationSummary, Row, summary

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
