"""docs/conventions.md's table of environment variables names every variable the code reads."""

from __future__ import annotations

import re

from helpers import ROOT

PAGE = ROOT / "docs" / "conventions.md"
OURS = re.compile(r"(?<![A-Za-z0-9])_?MNV3_[A-Z][A-Z0-9_]*")
# os.environ.get("X"), os.environ["X"], os.getenv("X"), envvar="X": what the package reads
READ = re.compile(r"""(?:environ\.get\(|environ\[|getenv\(|envvar=)\s*["']([A-Z_][A-Z0-9_]*)["']""")


def _table_variables() -> set[str]:
    text = PAGE.read_text(encoding="utf-8").split("## Environment variables", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z_][A-Z0-9_]*)(?:=[^`]*)?`", row.split(" | ")[0])}


def _sources(*folders: str) -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
        for folder in folders
        for p in (ROOT / folder).rglob("*.py")
    }


def test_every_mnv3_variable_in_the_code_is_in_the_table() -> None:
    documented = _table_variables()
    used = {
        name: path for path, text in _sources("mnv3cli", "tests", "benchmarks").items() for name in OURS.findall(text)
    }
    missing = {name: path for name, path in used.items() if name not in documented}
    assert not missing, f"MNV3 variables read but not in {PAGE.name}'s table: {missing}"
    assert {"MNV3_SHARED", "MNV3_REQUIRE_SHARED", "MNV3_CACHE", "MNV3_API_KEY"} <= set(used)


def test_every_variable_the_package_reads_is_in_the_table() -> None:
    documented = _table_variables()
    read = {name: path for path, text in _sources("mnv3cli").items() for name in READ.findall(text)}
    assert {"XDG_CACHE_HOME", "TORCH_HOME", "MNV3_DEVICE", "COLUMNS"} <= set(read)
    missing = {name: path for name, path in read.items() if name not in documented}
    assert not missing, f"variables read but not in {PAGE.name}'s table: {missing}"
