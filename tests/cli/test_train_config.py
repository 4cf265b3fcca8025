"""Command-line tests: each runs ``mnv3`` (or Python) in a subprocess.

``mnv3 train`` options: config files (YAML, TOML), the run's config.json, and their precedence.
"""

from __future__ import annotations


def test_missing_validation_data_is_a_clear_cli_error(run_cli, tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "flat" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "flat" / cls / "x.png")
    proc = run_cli("train", tmp_path / "flat", "--epochs", "1")
    assert proc.returncode == 2
    assert "no validation data" in proc.stderr and "--val-split 0.2" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("train")
    assert proc.returncode == 2 and "--resume" in proc.stderr
