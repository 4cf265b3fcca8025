"""Lines for people, filled to 80 columns without breaking what a reader copies.

A line breaks only at a space, and never inside a word, path or number (long ones overflow
rather than split), nor between a number and its unit (``76.4 %``, ``0.92 ms``, ``0.80 ± 0.98``),
nor between a layer's name and the operation after it (``stages.2.1.se (Mul)``), nor inside a
shape (``[batch, 3, 224, 224]``), nor inside a path the caller names (it may hold spaces).
"""

from __future__ import annotations

import re
import textwrap

from ..printable import plain

WIDTH = 80
_GLUE = "\u00a0"  # textwrap splits on ASCII whitespace only, so a no-break space holds words together
_KEEP_TOGETHER = re.compile(
    r" (?=(?:%|ms|MB|points?)(?![\w.]))| (?=±)|(?<=±) | (?=\([A-Z]\w*\))"
    r"|(?<=,) (?=[^\[\]]*\])|(?<=\(\+) "
)  # ... a shape: [batch, 3, 224, 224]; "(+ layer"


def fill(text: str, width: int = WIDTH, indent: int = 2, first: str = "", whole: tuple[object, ...] = ()) -> str:
    """``text`` filled to ``width`` columns after ``first`` (a label), continuation lines
    indented by ``indent``. ``whole``: strings in it that must stay on one line even though they
    hold spaces (paths). Both are shown as plain text (:func:`~mnv3cli.printable.plain`)."""
    glued = _KEEP_TOGETHER.sub(_GLUE, plain(text))
    for part in sorted(filter(None, map(plain, map(str, whole))), key=len, reverse=True):
        glued = glued.replace(_KEEP_TOGETHER.sub(_GLUE, part), part.replace(" ", _GLUE))
    lines = textwrap.wrap(
        glued,
        width,
        initial_indent=first,
        subsequent_indent=" " * indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(lines).replace(_GLUE, " ")
