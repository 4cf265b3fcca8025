"""Errors and notes within 80 columns, one line where the conventions ask for one.

Every ``run_cli`` call made with ``COLUMNS=80`` checks the stderr it provoked (tests/conftest.py);
these calls provoke the messages a newcomer meets first: the note of a backend that is not
installed (profile, on every base install), explain without its extra, and the offline error of
weights that are not in the cache."""

from __future__ import annotations

import pytest

from helpers import ROOT

AT_80 = {"COLUMNS": "80"}


@pytest.fixture
def without(tmp_path):
    """An environment in which the given modules cannot be imported (``find_spec`` says None)."""

    def env(*modules: str) -> dict:
        site = tmp_path / "hide"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(
            "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules), encoding="utf-8"
        )
        return AT_80 | {"PYTHONPATH": f"{site}:{ROOT}"}

    return env


def test_profile_notes_a_missing_backend_in_one_short_line(run_cli, without):
    done = run_cli("profile", "--size", "small", "--runs", "1", "--warmup", "0", env=without("openvino"))
    assert done.returncode == 0, done.stderr
    assert "skipped openvino: OpenVINO is not installed" in done.stderr


def test_explain_without_its_extra_is_one_short_line(run_cli, without):
    done = run_cli("explain", ROOT / "examples" / "chelsea.jpg", env=without("pytorch_grad_cam"))
    assert done.returncode == 2
    assert done.stderr == "mnv3: error: explain needs grad-cam: pip install 'mnv3cli[explain]'\n"


def test_offline_download_error_is_one_short_line(run_cli, tmp_path):
    done = run_cli(
        "predict", ROOT / "examples" / "chelsea.jpg", "--model", "large", env=AT_80 | {"TORCH_HOME": str(tmp_path)}
    )
    assert done.returncode == 2
    assert done.stderr == "mnv3: error: offline: mobilenet_v3_large-5c1a4163.pth not cached; use --weights\n"
