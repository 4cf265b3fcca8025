"""What a release needs at the root: the licence pyproject names, and a Keep a Changelog CHANGELOG."""

from __future__ import annotations

import re

from helpers import ROOT

PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib is Python 3.11+
KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}  # Keep a Changelog 1.1.0


def test_license_is_the_apache_text_pyproject_names_and_the_bundled_notice_stays() -> None:
    assert 'license = { text = "Apache-2.0" }' in PYPROJECT
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    bundled = ROOT / "mnv3cli" / "bundled"
    assert text == (bundled / "LICENSE-Apache-2.0.txt").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in (bundled / "NOTICE").read_text(encoding="utf-8")


def test_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\](.*)$", text, re.M)
    assert versions[0] == ("Unreleased", "")
    released = versions[1:]
    assert released and f'version = "{released[0][0]}"' in PYPROJECT  # the newest is pyproject's
    assert all(re.fullmatch(r" - \d{4}-\d{2}-\d{2}", rest) for _, rest in released), released
    kinds = set(re.findall(r"^### (.+)$", text, re.M))
    assert kinds <= KINDS, kinds - KINDS
    links = dict(re.findall(r"^\[([^\]]+)\]: (\S+)$", text, re.M))
    assert set(links) == {name for name, _ in versions}, links
