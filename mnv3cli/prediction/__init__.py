"""Layer 5: classify inputs nobody has labelled: ``predict`` (top-k per input, in order), the
top-k labels ``mnv3 serve`` answers with, the streamed and resumable results file, its records and
``--sort-into``. Measuring a model on labelled images is :mod:`mnv3cli.evaluation`'s job; this
package reuses its softmax and top-k, so it sits just above it.

Works on any :class:`~mnv3cli.inference.backends.Backend` and never imports torch, so ``predict``'s
names are imported eagerly (a lazy ``predict`` would be shadowed by the submodule of the same name);
the results file and ``--sort-into`` load on first use (a one-photo ``mnv3 predict`` needs neither).
"""

from .._lazy import lazy_exports
from .predict import UNKNOWN, InputResult, Label, predict, top_labels

__getattr__, _lazy_names = lazy_exports(
    __name__, {"ResultsFile": ".results_file", "Resumed": ".results_file", "SortInto": ".sorting"}
)

__all__ = [
    "UNKNOWN",
    "InputResult",
    "Label",
    "ResultsFile",
    "Resumed",
    "SortInto",
    "predict",
    "top_labels",
]
