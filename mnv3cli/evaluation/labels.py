"""The text shown for a model output: its class name, or its index when the model has no such class.

``predict``'s labels and every label in ``evaluate``'s summary and report files come from here, so a
prediction beyond the class list (a head wider than its names) reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence


def class_label(class_names: Sequence[str], index: int) -> str:
    """``class_names[index]``, or ``str(index)`` when ``index`` is out of range."""
    return class_names[index] if 0 <= index < len(class_names) else str(index)
