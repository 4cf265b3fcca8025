"""The shape of the package: each layer imports only the layers below it, and modules stay small.

Layers, bottom up: shared basics (errors, fileio) < model < registry < weights < data and the
torchrun helper < inference < evaluation and profiling < prediction < training < serving < cli.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "mnv3cli"


MAX_LINES = 350


UNTIL_SPLIT: set[str] = set()  # modules being taken apart


LAYERS = {
    "errors": 0,
    "deprecation": 0.1,  # the table of renamed options, which raises errors.UserError
    "_lazy": 0,
    "rounding": 0,
    "printable": 0,
    "fileio": 0.2,  # atomic writes, which raise errors.WriteError
    "mnv3cli": 0.5,  # the package itself: its version, and public names resolved lazily
    "model": 1,
    "registry": 2,
    "weights": 3,
    "factory": 3.5,  # create_model: a registry name (and optional weights) to a model
    "data": 4,
    "distributed": 4,
    "inference": 5.0,
    "evaluation": 5.1,  # measuring on labelled images: metrics, temperature calibration, reports
    "profiling": 5.1,
    "prediction": 5.15,  # classifying unlabelled inputs: uses evaluation's softmax and top-k
    "training": 5.2,
    "serving": 5.3,  # mnv3 serve's HTTP service (FastAPI): predict's labels, the runtime, data
    "cli": 6,
    "__main__": 7,
}


def _unit(module: str) -> str:
    """``mnv3cli.inference.runtime`` -> ``inference``; the package itself -> ``mnv3cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mnv3cli"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every mnv3cli module ``path`` imports, at any depth, as absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target]
            if node.module is None:  # `from .. import distributed`: modules, or names of a package
                targets = [
                    f"{target}.{alias.name}" if _is_module(f"{target}.{alias.name}") else target for alias in node.names
                ]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, t) for t in targets if t == "mnv3cli" or t.startswith("mnv3cli.")]
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer():
    units = {_unit(_module_name(p)) for p in _modules()}
    assert units <= set(LAYERS), f"add a layer for: {sorted(units - set(LAYERS))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_point_down(path: Path):
    unit = _unit(_module_name(path))
    wrong = [
        f"line {line}: {target}"
        for line, target in _imports(path)
        if _unit(target) != unit and LAYERS[_unit(target)] >= LAYERS[unit]
    ]
    assert not wrong, f"{unit} (layer {LAYERS[unit]}) imports from its own layer or above: {wrong}"


def test_the_rule_catches_an_upward_import(tmp_path):
    """The checker itself: an import from a higher layer is found, one from below is not."""
    module = PACKAGE / "data" / "_probe_for_test.py"
    module.write_text("from ..evaluation import predict\nfrom ..registry import get_entry\n")
    try:
        targets = [t for _, t in _imports(module)]
        assert targets == ["mnv3cli.evaluation", "mnv3cli.registry"]
        assert LAYERS[_unit(targets[0])] > LAYERS["data"] > LAYERS[_unit(targets[1])]
    finally:
        module.unlink()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_modules_stay_small(path: Path):
    if str(path.relative_to(PACKAGE).as_posix()) in UNTIL_SPLIT:
        pytest.xfail("being split")
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines (at most {MAX_LINES}): split it by idea"
