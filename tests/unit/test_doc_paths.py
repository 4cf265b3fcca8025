"""The files that README.md, CHANGELOG.md and docs/ cite under tests/, benchmarks/ and mnv3cli/ exist.

Why: tests moved under tests/unit and tests/cli, and the pages kept citing tests/test_docs.py for
months; a reader who opens a cited file must find it."""

from __future__ import annotations

import re

from helpers import ROOT

PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
CITED = re.compile(r"(?<![\w./-])((?:tests|benchmarks|mnv3cli)/[\w./-]*\w\.(?:py|md|toml|txt))")


def test_every_cited_file_exists() -> None:
    cited = {(page.name, path) for page in PAGES for path in CITED.findall(page.read_text(encoding="utf-8"))}
    assert len(cited) > 10
    missing = sorted((page, path) for page, path in cited if not (ROOT / path).exists())
    assert not missing, f"pages cite files that do not exist: {missing}"
