"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess.

The CLI skeleton: lazy commands, --version, the registry listing, the error conventions.
"""

from __future__ import annotations

import json
import subprocess
import sys

from mnv3cli import __version__
from mnv3cli.cli.app import COMMANDS
from mnv3cli.registry import list_models


def _imports_after(args: list[str]) -> set[str]:
    code = (
        "import sys; from mnv3cli.cli.app import cli\n"
        f"try:\n    cli({args!r}, prog_name='mnv3')\nexcept SystemExit:\n    pass\n"
        "print('\\n' + repr(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'torchvision', 'timm', 'onnxruntime'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(eval(out.strip().splitlines()[-1]))


def test_help_never_imports_torch():
    """What makes ``--help`` fast, checked without a clock (a timed bar flakes on a busy machine)."""
    for args in (["--help"], *([name, "--help"] for name in COMMANDS)):
        modules = _imports_after(list(args))
        assert not modules, f"mnv3 {' '.join(args)} imported {sorted(modules)[:5]}"


def test_version(run_cli):
    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_models_json_lists_the_registry(run_cli):
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    rows = listing["models"]
    assert [r["name"] for r in rows] == list_models()
    small = rows[0]
    assert small["params"] == 2_542_856 and small["macs"] == 56_510_400 and small["aliases"] == ["small"]
    assert small["weights"][0]["tag"] == "torchvision:IMAGENET1K_V1"
    assert listing["default"] == {"model": "mobilenetv3_small_100", "weights": "bundled"}
    bundled = [w for r in rows for w in r["weights"] if w["bundled"]]
    assert [w["tag"] for w in bundled] == ["bundled"] and len(bundled[0]["bundled"]["sha256"]) == 64


def test_models_table(run_cli):
    result = run_cli("models")
    assert result.returncode == 0
    for name in list_models():
        assert name in result.stdout
    assert "2.54 M" in result.stdout and "56.5 M" in result.stdout
    assert "bundled (built in: the default)" in result.stdout


def test_unknown_command_is_a_usage_error(run_cli):
    result = run_cli("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr
