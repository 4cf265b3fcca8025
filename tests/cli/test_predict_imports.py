"""Command-line test: a warm bare ``mnv3 predict photo.jpg`` loads only what one image needs.

Its wall time is bounded against the import floor ``import onnxruntime, PIL.Image, numpy``
(benchmarks/fast_inference.py measures the ratio); this test holds the cause: modules that cost
milliseconds on every run and serve only other paths (URLs, downloads, ``--version``, report files)
are imported where those paths start, never by a predict of a local file.
"""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT, cli_env

# Each was imported by every predict once, at 5-30 ms apiece (python -X importtime).
NOT_FOR_ONE_IMAGE = (
    "urllib.request",  # inputs' and download's network code
    "http.client",
    "ssl",
    "email",  # pulled in by urllib and by importlib.metadata
    "importlib.metadata",  # __version__ and the ONNX cache key's torch version
    "tarfile",  # Google's .tgz checkpoints
    "mnv3cli.evaluation.report",  # evaluate's report files: HTML, plots, atomic folders
    "mnv3cli.evaluation.html_report",
    "mnv3cli.evaluation.plots",
    "mnv3cli.evaluation.results",  # evaluate's summary tables
    "torch",
    "concurrent.futures",  # the decoding thread pool, ~15 ms: one image is decoded inline
    "mnv3cli.prediction.sorting",  # --sort-into (with filecmp)
    "filecmp",
    "mnv3cli.data.folders",  # folder arguments and labelled layouts
    "PIL.ImageOps",  # EXIF rotation, ~10 ms: imported only for a photo that needs turning
)

# Runs the CLI, then prints (last stdout line) which of the modules named in argv[1] it imported.
GUARD = (
    "import json, sys\nnames = json.loads(sys.argv.pop(1))\nfrom mnv3cli.cli.app import main\ntry:\n"
    "    main()\nfinally:\n    print(json.dumps(sorted(n for n in names if n in sys.modules)))"
)


def test_a_warm_bare_predict_imports_nothing_it_does_not_need(run_cli):
    photo = ROOT / "examples" / "chelsea.jpg"
    warm = run_cli("predict", photo)  # builds the session's ONNX cache entry if it is not there yet
    assert warm.returncode == 0, warm.stderr
    result = subprocess.run(
        [sys.executable, "-c", GUARD, json.dumps(NOT_FOR_ONE_IMAGE), "predict", str(photo)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=cli_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    *table, imported = result.stdout.strip().splitlines()
    assert "Egyptian cat" in "\n".join(table) and "building" not in result.stderr
    assert json.loads(imported) == []


def test_version_still_reads_the_installed_version(run_cli):
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"mnv3, version {version('mnv3cli')}"
