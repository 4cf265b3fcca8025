"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess.

Hostile weight files: every refused pickle says what it would have run, and corrupt values
(NaN, infinity) are refused by name instead of answering "nan %".
"""

from __future__ import annotations

import os

import pytest
import torch


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_predict_refuses_nan_weights_with_one_line(run_cli, tmp_path, cat_photo, suffix):
    """Before: loaded, cached and answered "nan %" with exit 0 (or an internal error with --json)."""
    from safetensors.torch import save_file

    from mnv3cli.model import MobileNetV3

    state = MobileNetV3("small").state_dict()
    state["classifier.weight"][3, 7] = float("nan")
    path = tmp_path / f"nan{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    result = run_cli("predict", cat_photo, "--weights", path, "--json")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines()[-1] == (
        f"mnv3: error: {path}: tensor 'classifier.weight' holds 1 NaN or infinite value(s); the weights are corrupt"
    )


def test_convert_into_a_file_size_limit_is_a_user_error_and_leaves_nothing(tmp_path, bundled_weights):
    """torch's zip writer used to turn EFBIG into "internal error: RuntimeError" (exit 1)."""
    import resource
    import subprocess
    import sys

    from helpers import cli_env

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    out = tmp_path / "small.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "mnv3cli", "convert", str(bundled_weights), "-o", str(out)],
        capture_output=True,
        text=True,
        env=cli_env(),
        preexec_fn=limit,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"mnv3: error: {out}: cannot write (File too large)"
    assert os.listdir(tmp_path) == []
