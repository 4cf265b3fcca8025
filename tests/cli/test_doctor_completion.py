"""mnv3 doctor and mnv3 completion, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mnv3cli
from helpers import cli_env


def test_doctor_json_reports_versions_backends_and_torch(run_cli) -> None:
    done = run_cli("doctor", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["versions"]["mnv3cli"] == mnv3cli.__version__
    assert {"torch", "onnxruntime"} <= {b["name"] for b in report["backends"] if b["available"]}
    assert report["torch"]["importable"] is True and report["torch"]["cpu_capability"]
    assert report["cache"]["path"] == os.environ["MNV3_CACHE"]


def test_doctor_text_fits_80_columns(run_cli) -> None:
    done = run_cli("doctor", "--no-torch", env={"COLUMNS": "80"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("python ") and any(line.startswith("onnxruntime ") for line in lines)
    assert max(map(len, lines)) <= 80


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _mnv3_completion mnv3"),
        ("zsh", "compdef _mnv3_completion mnv3"),
        ("fish", "complete --no-files --command mnv3"),
    ],
)
def test_completion_prints_the_script(run_cli, shell: str, marker: str) -> None:
    done = run_cli("completion", shell)
    assert done.returncode == 0, done.stderr
    assert marker in done.stdout and "_MNV3_COMPLETE" in done.stdout


def test_completion_refuses_an_unknown_shell(run_cli) -> None:
    done = run_cli("completion", "tcsh")
    assert done.returncode == 2 and "tcsh" in done.stderr


def test_completion_completes_a_command_name(run_cli) -> None:
    done = run_cli(env={"_MNV3_COMPLETE": "bash_complete", "COMP_WORDS": "mnv3 pre", "COMP_CWORD": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plain,predict"]


def test_bash_completion_script_completes_in_bash(tmp_path: Path) -> None:
    """The printed script, sourced by bash, fills COMPREPLY through an ``mnv3`` found on PATH."""
    shim = tmp_path / "bin" / "mnv3"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mnv3cli "$@"\n')
    shim.chmod(0o755)
    script = "\n".join(
        [
            "source <(mnv3 completion bash)",
            "COMP_WORDS=(mnv3 doc); COMP_CWORD=1; _mnv3_completion mnv3",
            'echo "${COMPREPLY[@]}"',
            'COMPREPLY=(); COMP_WORDS=(mnv3 completion ""); COMP_CWORD=2; _mnv3_completion mnv3',
            'echo "${COMPREPLY[@]}"',
        ]
    )
    env = cli_env({"PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"})
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["doctor", "bash zsh fish"]
