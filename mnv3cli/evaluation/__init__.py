"""Layer 5: classify and measure: ``predict`` (top-k per input), ``evaluate`` (accuracy, loss,
confusion on labelled images), the metrics they share and the report files.

Works on any :class:`~mnv3cli.inference.backends.Backend` and never imports torch, so its names are
imported eagerly (a lazy ``evaluate`` would be shadowed by the submodule of the same name).
"""

from .evaluate import (
           EvalProgress,
           EvalResult,
           SamplePrediction,
           evaluate,
           spread_subset,
)
from .metrics import ClassificationMeter, log_softmax, softmax, topk_indices
from .predict import InputResult, Label, predict, top_labels
from .report import summary, write_report
from .results_file import ResultsFile, Resumed

__all__ = ["ClassificationMeter", "EvalProgress", "EvalResult", "InputResult", "Label",
           "ResultsFile", "Resumed", "SamplePrediction", "evaluate", "log_softmax", "predict",
           "softmax", "spread_subset", "summary", "top_labels", "topk_indices", "write_report"]
