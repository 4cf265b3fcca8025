"""Layer 5: classify and measure: ``predict`` (top-k per input), ``evaluate`` (accuracy, loss,
confusion on labelled images), the metrics they share and the report files.

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
from .predict import InputResult, Label, predict, top_labels
from .report import check_report_target, summary, write_report
from .results_file import ResultsFile, Resumed

__all__ = [
    "Calibration",
    "ClassificationMeter",
    "EvalProgress",
    "EvalResult",
    "InputResult",
    "Label",
    "ResultsFile",
    "Resumed",
    "SamplePrediction",
    "check_report_target",
    "evaluate",
    "fit_temperature",
    "log_softmax",
    "predict",
    "softmax",
    "spread_subset",
    "summary",
    "top_labels",
    "topk_indices",
    "write_report",
]
