"""The documentation cannot drift: every console example in README.md and docs/ is run and compared.

Each page's ```console blocks run in order, in one temporary directory per page (so a block may use
a file an earlier block of the same page wrote), with its own ONNX cache (MNV3_CACHE), which starts
with the int8 TFLite model's graph already built: pages do not depend on each other's order, and the
cache is built once, not once per page (the Backends page shows a first run with its own cache). ``mnv3`` runs
as ``python -m mnv3cli`` from this checkout, offline (MNV3_OFFLINE=1), with COLUMNS=80.

What is compared: stdout and stderr MERGED, in the order written (PYTHONUNBUFFERED=1), exactly
as a terminal shows them, so an example does not depend on which stream a line goes to (the stream
rules are tested by the CLI tests). Matching rules (``...`` wildcards, the few normalised
run-dependent values) are in ``doc_examples``. Blocks marked ``<!-- no-test -->`` are not run.

Files each page's directory starts with: ``weights/`` and ``data/`` (links to ../shared's weights
and data), ``photos/cat.jpg`` and ``photos/coffee.jpg`` (scikit-image's chelsea and coffee), and
``bad/`` (cat.jpg, an empty file, a text file named .png, a truncated JPEG), and ``examples/`` (a link
to the repository's sample photos). Pages whose examples
use ``weights/`` or ``data/`` skip without ../shared, and fail under MNV3_REQUIRE_SHARED=1.
"""

from __future__ import annotations

import re
from pathlib import Path

import doc_examples as dx
from helpers import ROOT

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_console_block_has_a_command() -> None:
    """A malformed block (output before any ``$``) raises while parsing; none may be empty."""
    for page in PAGES:
        for block in dx.parse(page):
            assert block.commands, f"{_page_id(page)}:{block.line}: console block without '$ ' command"


def test_matcher_catches_a_changed_number() -> None:
    """Wildcards and normalised timings pass; any other changed digit fails."""
    actual = (
        '{"top1": 90.0, "seconds": 0.077}\n│ wall time  │   0.1 s │\n│ 1 │ Egyptian cat │   285 │     42.44 % │\nline\n'
    )
    assert dx.matches(
        [
            '{"top1": 90.0, "seconds": 3.5}',
            "│ wall time  │  487 ms │",
            "│ 1 │ Egyptian cat │   285 │     42.44 % │",
            "line",
        ],
        actual,
    )
    assert dx.matches(['{"top1": 90.0, ...}', "...", "line"], actual)
    assert not dx.matches(['{"top1": 90.1, "seconds": 3.5}', "..."], actual)
    assert not dx.matches(["...", "│ 1 │ Egyptian cat │   285 │     42.45 % │", "line"], actual)


def test_readme_quick_start_is_what_ci_runs() -> None:
    """.ci/run installs and tests exactly as the README's Quick start says."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ('pip install ".[test]"', "python -m pytest"):
        assert command in readme, f"README's Quick start lost {command!r}"
        assert command in ci, f".ci/run no longer runs {command!r}"


def test_mkdocs_nav_lists_every_page() -> None:
    """Every page under docs/ is in mkdocs.yml's nav, and every nav entry exists."""
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", nav, flags=re.M))
    present = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert listed == present, f"nav only: {listed - present}; not in nav: {present - listed}"
