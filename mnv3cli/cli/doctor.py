"""``mnv3 doctor``: what a bug report needs, as text to paste or ``--json``.

The facts are gathered by :func:`mnv3cli.inference.doctor.diagnose`; this module only prints them,
each line within 80 columns (long values, such as a cache path, wrap with an indent).
"""

from __future__ import annotations

import textwrap

import click

from ..inference.doctor import Report, diagnose
from .context import AppContext, pass_app
from .options import json_option


@click.command("doctor")
@json_option("Print the report as one JSON object.")
@click.option("--no-torch", is_flag=True, help="Do not import torch to check it (saves seconds).")
@pass_app
def command(app: AppContext, as_json: bool, no_torch: bool) -> None:
    """Versions, backends, CPU features, threads and cache: paste this into a bug report.

    Exit status 0: the report is printed even when something is missing (it says what and why).
    """
    report = diagnose(import_torch=not no_torch)
    if as_json:
        app.emit_json(report.to_dict())
        return
    for line in render(report):
        click.echo(line)


def _line(label: str, text: str) -> list[str]:
    return textwrap.wrap(text, 80, initial_indent=f"{label:<13}", subsequent_indent=" " * 13) or [label]


def _yes(flag: bool | None) -> str:
    return "yes" if flag else "no"


def render(report: Report) -> list[str]:
    """The report as lines of at most 80 columns."""
    lines = _line("python", f"{report.python} on {report.platform}")
    for name, ver in report.versions.items():
        lines += _line(name, ver or "not installed")
    for b in report.backends:
        lines += _line("backend", f"{b.name}: " + ("available" if b.available else f"no, {b.why_not}"))
    cpu = f"{report.cpus} cores, {report.usable_cpus} usable by this process"
    if report.cpu_flags is None:
        cpu += "; instruction sets unknown (no /proc/cpuinfo)"
    else:
        cpu += "; " + ", ".join(f"{name} {_yes(on)}" for name, on in report.cpu_flags.items())
    lines += _line("cpu", cpu)
    t = report.torch
    if t.importable:
        torch = f"imports; CPU capability {t.cpu_capability}, {t.threads} threads, CUDA {_yes(t.cuda)}"
    elif t.importable is None:
        torch = "not checked (--no-torch)"
    else:
        torch = f"does not import: {t.error}"
    lines += _line("torch import", torch)
    c = report.cache
    if c.error:
        cache = c.error
    elif not c.exists:
        cache = f"{c.path} (not created yet)"
    else:
        cache = f"{c.path} ({c.entries} entries, {c.bytes / 2**20:.1f} MiB)"
    lines += _line("ONNX cache", cache)
    env = ", ".join(f"{k}={v}" for k, v in report.environment.items()) or "no MNV3_* or thread variables set"
    return lines + _line("environment", env)
