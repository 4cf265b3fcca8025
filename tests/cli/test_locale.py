"""A C locale or an ASCII stream degrades output instead of crashing, and non-ASCII folder names
still match their classes (issue 24 item 12)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from helpers import cli_env

C_LOCALE = {"LC_ALL": "C", "PYTHONUTF8": "0"}
ASCII_STREAMS = {"PYTHONIOENCODING": "ascii"}


@pytest.mark.parametrize("env", [C_LOCALE, ASCII_STREAMS], ids=["LC_ALL=C", "PYTHONIOENCODING=ascii"])
def test_predict_tables_and_json_degrade_instead_of_crashing(run_cli, cat_photo, tmp_path, env):
    """Before: "internal error: UnicodeEncodeError" for a table naming ``café.jpg``."""
    shutil.copy(cat_photo, tmp_path / "café.jpg")
    table = run_cli("predict", "café.jpg", "-k", "2", env=env)
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert table.stdout.splitlines()[0] == "caf\\xe9.jpg" and "| 1 |" in table.stdout
    as_json = run_cli("predict", "café.jpg", "-k", "1", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout.isascii() and json.loads(as_json.stdout)["path"] == "café.jpg"


FIND = """
import json, sys
from mnv3cli.data.folders import find_samples
found = find_samples(sys.argv[1], ["caf\\u00e9", "th\\u00e9"], None)  # ASCII source: argv under LC_ALL=C
print(json.dumps(sorted({target for _, target in found.samples})))
"""


def test_a_non_ascii_class_folder_matches_its_class_under_a_c_locale(tmp_path):
    """Before: ``café`` read as ``'caf\\udcc3\\udca9'`` under LC_ALL=C, listed as unmatched."""
    from PIL import Image

    for name in ("café", "thé"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / name / "a.png")
    proc = subprocess.run(
        [sys.executable, "-c", FIND, str(tmp_path)], capture_output=True, text=True, env=cli_env(C_LOCALE), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [0, 1]
