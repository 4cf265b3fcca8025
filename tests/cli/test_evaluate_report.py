"""``mnv3 evaluate --report`` end to end: file names that are not UTF-8, and report.html opened in a
real browser (headless Chromium through Playwright) with every section and image present.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import cli_env

SECTIONS = ("summary", "calibration", "per-class", "confusion", "mistakes", "unsure")


def test_non_utf8_names_keep_every_record_in_json_and_report(bundled_weights, imagenet_examples, tmp_path):
    folder = next(p for p in sorted(imagenet_examples.iterdir()) if p.is_dir())
    image = next(folder.iterdir())
    data = os.path.join(os.fsencode(tmp_path), b"data", os.fsencode(folder.name))
    os.makedirs(data)
    shutil.copy(image, os.path.join(data, b"caf\xe9.JPEG"))
    shutil.copy(image, os.path.join(data, b"plain.JPEG"))
    with open(os.path.join(data, b"broken-\xff.JPEG"), "wb") as fh:
        fh.write(b"\xff\xd8 not a jpeg")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnv3cli",
            "evaluate",
            tmp_path / "data",
            "-w",
            bundled_weights,
            "--json",
            "--report",
            tmp_path / "report",
        ],
        capture_output=True,
        env=cli_env(),
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr  # one unreadable image: partial failure, not a crash
    obj = json.loads(proc.stdout.decode("utf-8"))  # strict UTF-8
    assert obj["images"] == 2 and obj["errors"] == 1
    assert obj["failed"][0]["path"].endswith("broken-\\xff.JPEG")
    for path in (tmp_path / "report").iterdir():
        if path.suffix != ".png":
            path.read_bytes().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report" / "predictions.csv").read_text("utf-8"))))
    assert sorted(os.path.basename(r["path"]) for r in rows) == ["broken-\\xff.JPEG", "caf\\xe9.JPEG", "plain.JPEG"]


def _browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright")
    executable = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    return sync_api, executable


def test_report_page_opens_in_a_browser_with_every_section_and_image(
    run_cli, bundled_weights, imagenet_examples, tmp_path
):
    sync_api, executable = _browser()
    report = tmp_path / "report"
    proc = run_cli("-q", "evaluate", imagenet_examples, "-w", bundled_weights, "--limit", "40", "--report", report)
    assert proc.returncode == 0, proc.stderr
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        except Exception as exc:  # noqa: BLE001 - no browser on this machine
            pytest.skip(f"no headless Chromium to run: {exc}")
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto((report / "report.html").as_uri(), wait_until="load")
        for section in SECTIONS:
            assert page.locator(f"section#{section} h2").is_visible(), section
        sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        assert len(sizes) >= 3 + 2 and all(done and width > 0 for done, width in sizes)  # plots + thumbnails
        assert all(url.startswith(("file:", "data:")) for url in requests)  # nothing from the network
        recall = "#per-class-table tbody tr td:nth-child(3)"
        page.click("#per-class-table th:nth-child(3)")  # sort by recall, ascending
        values = [float(v) for v in page.eval_on_selector_all(recall, "tds => tds.map(t => t.textContent)")]
        assert values == sorted(values) and values[0] < values[-1]
        browser.close()
