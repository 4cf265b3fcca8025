"""``report.html``: one self-contained page a person can open from disk, with no network.

Everything is inline: the CSS, a few lines of JavaScript (sorting the per-class table), and the
pictures as ``data:`` URIs (the PNG plots, JPEG thumbnails of the gallery images), so the file can
be mailed or archived alone. The confusion matrix is a grid of counts for a handful of classes and
the most confused pairs beyond that, where a 1000 x 1000 grid would be unreadable.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence

from ..data.images import ImageDecodeError, open_rgb
from ..printable import plain, printable_path
from .evaluate import EvalResult, SamplePrediction
from .results import EvaluationSummary, headline

GRID_MAX_CLASSES = 20  # a confusion grid of counts up to this many classes; most confused pairs beyond
GALLERY = 12  # thumbnails per gallery
PAIRS = 25  # most confused pairs listed for many classes
THUMBNAIL = 160  # pixels, longer side

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border:1px solid #ddd}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;background:#f3f3f3}table.sortable th:after{content:" \\2195";color:#999}
.grid td{min-width:2.2em;text-align:center}.muted{color:#777}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:170px;font-size:12px;word-break:break-all}
figure img{max-width:160px;max-height:160px;display:block;border:1px solid #ccc}
.scroll{max-height:520px;overflow:auto;display:inline-block}.wrong{color:#b00}.right{color:#070}img.plot{max-width:100%}
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th, col){
    th.addEventListener('click', function(){
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.dataset.dir !== 'asc'; th.dataset.dir = up ? 'asc' : 'desc';
      rows.sort(function(a, b){
        var x = a.cells[col].dataset.v || a.cells[col].textContent;
        var y = b.cells[col].dataset.v || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? c : -c;
      });
      rows.forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _e(value) -> str:
    return html.escape(plain(str(value)), quote=True)  # control characters shown, not passed on


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def render_html(
    obj: EvaluationSummary,
    result: EvalResult,
    label: Callable[[int], str],
    images: Mapping[str, bytes],
    notes: list[str],
) -> str:
    """The page for summary ``obj``; ``images`` maps plot names (reliability.png ...) to PNG bytes.
    Gallery images that cannot be read any more are shown as a placeholder and named in ``notes``."""
    cal = obj.calibration
    title = f"mnv3 evaluate: {obj.model or 'model'} on {obj.data or 'images'}"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _section("summary", "Summary", _headline(obj)),
        _section(
            "calibration",
            "Calibration",
            _img(images, "reliability.png", "reliability diagram")
            + _coverage(cal)
            + _img(images, "coverage.png", "accuracy against coverage"),
        ),
        _section("per-class", "Per class", _per_class(obj)),
        _section(
            "confusion", "Confusion", _confusion(obj, result, label) + _img(images, "confusion.png", "confusion chart")
        ),
        _section("mistakes", "Most confident mistakes", _gallery(result.confident_mistakes(GALLERY), label, notes)),
        _section(
            "unsure", "Least confident correct answers", _gallery(result.least_confident_correct(GALLERY), label, notes)
        ),
    ]
    if obj.failed:
        items = "".join(f"<li>{_e(f['error'])}</li>" for f in obj.failed)
        parts.append(_section("failed", f"Unreadable images ({len(obj.failed)})", f"<ul>{items}</ul>"))
    parts.append(f"<script>{SORT_JS}</script></body></html>\n")
    return "\n".join(parts)


def _section(ident: str, heading: str, body: str) -> str:
    return f"<section id='{ident}'><h2>{_e(heading)}</h2>{body}</section>"


def _img(images: Mapping[str, bytes], name: str, alt: str) -> str:
    return f"<p><img class='plot' alt='{_e(alt)}' src='{_data_uri(images[name], 'image/png')}'></p>"


def _headline(obj: EvaluationSummary) -> str:
    """The same rows as the terminal's summary (:data:`~.results.HEADLINE`), with the context."""
    body = "".join(f"<tr><th>{_e(k)}</th><td class='n'>{_e(v)}</td></tr>" for k, v in headline(obj, "page"))
    return f"<table>{body}</table>"


def _coverage(cal: Mapping) -> str:
    rows = "".join(
        f"<tr><td class='n'>{p['coverage']} %</td><td class='n'>{p['images']}</td>"
        f"<td class='n'>{p['top1']:.2f} %</td><td class='n'>{p['min_confidence']:.4f}</td></tr>"
        for p in cal["coverage"]
    )
    return (
        "<p>Accuracy against coverage: the top-1 when only the most confident images are answered "
        "(<code>predict --min-confidence</code> at the given probability answers about that share).</p>"
        "<table><thead><tr><th>coverage</th><th>images</th><th>top-1</th><th>min confidence</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _per_class(obj: EvaluationSummary) -> str:
    columns = [
        ("label", "class"),
        ("precision", "precision %"),
        ("recall", "recall %"),
        ("f1", "F1 %"),
        ("support", "support"),
    ]
    head = "".join(f"<th class='{'' if k == 'label' else 'n'}'>{_e(h)}</th>" for k, h in columns)
    rows = []
    for r in obj.per_class:
        cells = [f"<td>{_e(r['label'])}</td>"]
        cells += [f"<td class='n' data-v='{r[k]}'>{r[k]:.1f}</td>" for k in ("precision", "recall", "f1")]
        cells.append(f"<td class='n'>{r['support']}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<p class='muted'>Click a column to sort.</p><div class='scroll'><table class='sortable' "
        f"id='per-class-table'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _confusion(obj: EvaluationSummary, result: EvalResult, label: Callable[[int], str]) -> str:
    """A grid of counts (rows = truth) for a few classes; the most confused pairs for many."""
    classes = result.classes
    if len(classes) <= GRID_MAX_CLASSES:
        matrix = result.meter.confusion
        other = matrix[classes].sum(axis=1) - matrix[classes][:, classes].sum(axis=1)
        head = "".join(f"<th>{_e(label(c))}</th>" for c in classes) + ("<th>other</th>" if other.any() else "")
        rows = []
        for i, c in enumerate(classes):
            total = max(int(matrix[c].sum()), 1)
            cells = "".join(_grid_cell(int(matrix[c, d]), total, c == d) for d in classes)
            cells += _grid_cell(int(other[i]), total, False) if other.any() else ""
            rows.append(f"<tr><th>{_e(label(c))}</th>{cells}</tr>")
        return (
            "<p>Rows: true class; columns: predicted class; cells: images.</p>"
            f"<table class='grid'><thead><tr><th>true \\ predicted</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    pairs = result.meter.most_confused(PAIRS)
    pair_rows = "".join(
        f"<tr><td>{_e(label(t))}</td><td>{_e(label(p))}</td><td class='n'>{n}</td></tr>" for t, p, n in pairs
    )
    return (
        f"<p>{len(classes)} classes: too many for a readable grid; the {len(pairs)} most confused "
        "pairs instead (confusion.csv holds the full matrix).</p>"
        "<table id='confused-pairs'><thead><tr><th>true</th><th>predicted</th><th>images</th></tr></thead>"
        f"<tbody>{pair_rows}</tbody></table>"
    )


def _grid_cell(count: int, total: int, diagonal: bool) -> str:
    share = count / total
    colour = f"rgba({'0,128,0' if diagonal else '200,0,0'},{0.08 + 0.6 * share:.2f})" if count else "transparent"
    return f"<td style='background:{colour}'>{count}</td>"


def _gallery(samples: Sequence[SamplePrediction], label: Callable[[int], str], notes: list[str]) -> str:
    if not samples:
        return "<p class='muted'>None.</p>"
    figures = []
    for s in samples:
        path = printable_path(s.path)
        try:
            src = _data_uri(_thumbnail(s.path), "image/jpeg")
            img = f"<img alt='{_e(path)}' src='{src}'>"
        except ImageDecodeError as exc:  # the file changed since evaluation: still list the entry
            img = "<div class='muted'>(image unreadable)</div>"
            notes.append(f"report.html: no thumbnail for {printable_path(str(exc))}")
        verdict = "right" if s.correct else "wrong"
        figures.append(
            f"<figure>{img}<figcaption><b>true:</b> {_e(label(s.target))}<br>"
            f"<b class='{verdict}'>predicted:</b> {_e(label(s.predicted))} "
            f"({100 * s.probabilities[0]:.1f} %)<br><span class='muted'>{_e(path)}</span>"
            "</figcaption></figure>"
        )
    return f"<div class='gallery'>{''.join(figures)}</div>"


def _thumbnail(path: str) -> bytes:
    image = open_rgb(path, min_size=THUMBNAIL)
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()
