"""Command-line tests: each runs ``mnv3`` (or torchrun) in a subprocess.

``mnv3 predict`` at scale: ``--output`` streamed to ``FILE.part``, ``--resume`` after kill -9,
torchrun sharding, and file names that are not valid UTF-8. The inputs are dev images of
../shared hard-linked into a temporary folder (with a broken file and an undecodable name among
them), classified by the int8 TFLite model on ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, cli_env, default_signals, stop

ODD_NAME = b"0007-caf\xe9.jpg"  # Latin-1 bytes: not valid UTF-8


def _link(src: Path, dst: Path | bytes) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        with open(src, "rb") as fh, open(dst, "wb") as out:
            out.write(fh.read())


def _image_folder(root: Path, imagenet_examples: Path, count: int) -> Path:
    folder = root / "images"
    folder.mkdir()
    sources = sorted(imagenet_examples.rglob("*.JPEG"))
    for i in range(count):
        _link(sources[i % len(sources)], folder / f"{i:04d}.jpg")
    _link(sources[-1], os.fsencode(folder) + b"/" + ODD_NAME)
    (folder / "0003-broken.jpg").write_bytes(b"not a JPEG")
    return folder


@pytest.fixture(scope="module")
def many_images(tmp_path_factory, imagenet_examples) -> Path:
    return _image_folder(tmp_path_factory.mktemp("many"), imagenet_examples, 300)


@pytest.fixture(scope="module")
def few_images(tmp_path_factory, imagenet_examples) -> Path:
    return _image_folder(tmp_path_factory.mktemp("few"), imagenet_examples, 40)


def _start(args: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mnv3cli", *map(str, args)],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=default_signals,
    )


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    try:
        deadline = time.monotonic() + timeout
        while not ready() and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never got there"
            time.sleep(0.005)
    finally:
        stop(proc)  # SIGKILL (whatever happened above), reaped


@pytest.mark.slow
@pytest.mark.parametrize("suffix, kills", [(".jsonl", ["opened", "grew", "grew"]), (".csv", ["grew"])])
def test_kill_9_at_several_points_then_resume_gives_the_uninterrupted_file(
    run_cli, bundled_weights, many_images, tmp_path, suffix, kills
):
    args = ["predict", many_images, "-w", bundled_weights, "-b", "8"]
    full = tmp_path / f"full{suffix}"
    proc = run_cli(*args, "-o", full)
    assert proc.returncode == 1, proc.stderr  # the broken file
    out, part = tmp_path / f"out{suffix}", tmp_path / f"out{suffix}.part"
    sizes = []
    for when in kills:
        # killed as soon as it opened its file, or once it added to what the last run left
        before = (part.stat().st_size if part.exists() else 0) if when == "grew" else -1
        run = _start([*args, "-o", out, "--resume"], tmp_path)
        _kill_when(run, lambda before=before: part.exists() and part.stat().st_size > before)
        assert run.returncode == -signal.SIGKILL, "the run ended before it was killed"
        assert not out.exists()
        sizes.append(part.stat().st_size)
    assert sizes[-1] > 0 and sizes == sorted(sizes)
    proc = run_cli(*args, "-o", out, "--resume")
    assert proc.returncode == 1, proc.stderr
    assert "resuming: " in proc.stderr and f"wrote 302 result(s) to {out}" in proc.stdout
    assert out.read_bytes() == full.read_bytes()  # record for record: same order, none twice, none torn
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([full.name, out.name])


def test_a_full_disk_keeps_whole_records_and_resume_finishes(run_cli, bundled_weights, many_images, tmp_path):
    """A file-size limit (like a full disk) part-way: exit 2 with one line naming FILE.part, whole
    records kept; --resume, with room again, ends with the uninterrupted file."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (80_000, 80_000))

    args = ["predict", str(many_images), "-w", str(bundled_weights), "-o", "labels.jsonl"]
    full = run_cli(*args[:-1], "full.jsonl")  # also warms the ONNX cache, which the limit would stop
    assert full.returncode == 1, full.stderr
    expected = (tmp_path / "full.jsonl").read_bytes()
    assert len(expected) > 80_000
    proc = subprocess.run(
        [sys.executable, "-m", "mnv3cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=tmp_path,
        timeout=600,
        preexec_fn=limit,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[-1] == (  # after the line about the broken image
        "mnv3: error: cannot write labels.jsonl.part: File too large; the results written before "
        "are kept in it: make room and run the same command with --resume"
    )
    kept = (tmp_path / "labels.jsonl.part").read_bytes()
    assert 0 < len(kept) <= 80_000 and expected.startswith(kept) and kept.endswith(b"\n")
    assert not (tmp_path / "labels.jsonl").exists()
    proc = run_cli(*args, "--resume")
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / "labels.jsonl").read_bytes() == expected


@pytest.mark.slow
def test_two_torchrun_processes_write_what_one_process_writes(run_cli, bundled_weights, few_images, tmp_path):
    args = ["predict", str(few_images), "-w", str(bundled_weights), "-b", "4", "-k", "3", "--json"]
    single = run_cli(*args, "-o", "one.jsonl")
    assert single.returncode == 1, single.stderr
    env = cli_env({"PYTHONPATH": str(ROOT)})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "mnv3cli"]
    proc = subprocess.run(
        [*torchrun, *args, "-o", "two.jsonl"], capture_output=True, env=env, cwd=tmp_path, timeout=600
    )
    one = (tmp_path / "one.jsonl").read_bytes()
    assert (tmp_path / "two.jsonl").read_bytes() == one  # one file, in input order
    assert proc.stdout == single.stdout.encode()  # only rank 0 prints, everything, in order
    assert proc.stderr.decode().count("wrote 42 result(s)") == 1
    assert len(one.splitlines()) == 42 and one.decode("utf-8")

    # a two-process run resumes what a one-process run left, cut inside a record
    lines = one.splitlines(keepends=True)
    (tmp_path / "three.jsonl.part").write_bytes(b"".join(lines[:17]) + lines[17][:9])
    proc = subprocess.run(
        [*torchrun, *args, "-o", "three.jsonl", "--resume"], capture_output=True, env=env, cwd=tmp_path, timeout=600
    )
    assert "resuming: 17 of 42 result(s)" in proc.stderr.decode()
    assert (tmp_path / "three.jsonl").read_bytes() == one
    assert [json.loads(line)["path"] for line in proc.stdout.splitlines()] == [
        json.loads(line)["path"] for line in lines[17:]
    ]


def test_undecodable_names_keep_every_record_in_valid_utf8(run_cli, bundled_weights, few_images, tmp_path):
    """Before: --output x.csv/.jsonl failed with an internal error and lost every result, --json
    wrote a line that is not UTF-8. Stdout and stdin strict, as in a UTF-8 locale that is not C."""
    strict = {"PYTHONIOENCODING": "utf-8:strict"}
    listing = b"".join(os.fsencode(p) + b"\n" for p in sorted(os.listdir(os.fsencode(few_images)))[:9])
    outputs = {}
    for suffix in (".csv", ".jsonl"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "mnv3cli",
                "predict",
                "-",
                "-w",
                str(bundled_weights),
                "-k",
                "1",
                "--json",
                "-o",
                f"labels{suffix}",
            ],
            input=listing,
            capture_output=True,
            env=cli_env(strict),
            cwd=few_images,
            timeout=600,
        )
        assert proc.returncode == 1 and b"Traceback" not in proc.stderr, proc.stderr  # the broken file
        records = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
        assert len(records) == 9
        odd = records[8]
        assert odd["path"] == "0007-caf\\xe9.jpg" and odd["path_escaped"] is True
        assert odd["predictions"] and all("path_escaped" not in r for r in records[:8])
        outputs[suffix] = (few_images / f"labels{suffix}").read_bytes()
        (few_images / f"labels{suffix}").rename(tmp_path / f"labels{suffix}")
    assert outputs[".jsonl"].decode("utf-8").splitlines()[8] == json.dumps(odd, ensure_ascii=False)
    csv_rows = outputs[".csv"].decode("utf-8").splitlines()
    assert len(csv_rows) == 10 and csv_rows[9].startswith("0007-caf\\xe9.jpg,")

    # --resume matches the escaped name: cut the file inside its record and finish it again
    text = outputs[".csv"]
    part = few_images / "labels.csv.part"
    part.write_bytes(text[: text.index(b"0007-caf") + 12])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mnv3cli",
            "predict",
            "-",
            "-w",
            str(bundled_weights),
            "-k",
            "1",
            "-o",
            "labels.csv",
            "--resume",
        ],
        input=listing,
        capture_output=True,
        env=cli_env(strict),
        cwd=few_images,
        timeout=600,
    )
    assert b"resuming: 8 of 9 result(s)" in proc.stderr, proc.stderr
    assert (few_images / "labels.csv").read_bytes() == text
    (few_images / "labels.csv").unlink()


def test_tables_show_undecodable_names_escaped(bundled_weights, few_images):
    proc = subprocess.run(
        [sys.executable, "-m", "mnv3cli", "predict", os.fsdecode(ODD_NAME), "-w", str(bundled_weights), "-k", "1"],
        capture_output=True,
        cwd=few_images,
        env=cli_env({"PYTHONIOENCODING": "utf-8:strict"}),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0007-caf\\xe9.jpg" in proc.stdout.decode("utf-8") and b"espresso" in proc.stdout  # the last image: coffee


def test_resume_needs_output_and_refuses_other_inputs(run_cli, bundled_weights, few_images, tmp_path):
    proc = run_cli("predict", few_images, "--resume")
    assert proc.returncode == 2 and "--resume continues an --output FILE" in proc.stderr
    (tmp_path / "labels.jsonl.part").write_text('{"path": "elsewhere.jpg", "error": "x"}\n')
    proc = run_cli("predict", few_images, "-w", bundled_weights, "-o", "labels.jsonl", "--resume")
    assert proc.returncode == 2, proc.stderr
    assert "result 1 in labels.jsonl.part is for elsewhere.jpg, but input 1 is" in proc.stderr
    assert (tmp_path / "labels.jsonl.part").read_text().startswith('{"path": "elsewhere.jpg"')


def test_progress_on_a_terminal_shows_rate_failures_and_eta(bundled_weights, few_images, tmp_path):
    """stderr a terminal: a bar with results so far, images/s, failures so far, time left."""
    import pty
    import re

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnv3cli",
            "predict",
            str(few_images),
            "-w",
            str(bundled_weights),
            "-b",
            "4",
            "-o",
            "labels.jsonl",
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=slave,
        preexec_fn=default_signals,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    stdout, _ = proc.communicate(timeout=600)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 1 and stdout == b"wrote 42 result(s) to labels.jsonl\n"
    assert re.search(r"\d+\.\d images/s, 1 failed .*42/42", shown), shown[-1000:]
    assert "0:00:0" in shown  # elapsed and time left


@pytest.mark.slow
def test_torchrun_resume_of_other_inputs_stops_every_process(bundled_weights, few_images, tmp_path):
    """The check runs on rank 0 only; its error must reach rank 1 too, or rank 1 waits forever."""
    (tmp_path / "labels.jsonl.part").write_text('{"path": "elsewhere.jpg", "error": "x"}\n')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "mnv3cli",
            "predict",
            str(few_images),
            "-w",
            str(bundled_weights),
            "-o",
            "labels.jsonl",
            "--resume",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "mnv3: error: --resume: result 1 in labels.jsonl.part is for elsewhere.jpg" in proc.stderr
    assert proc.stderr.count("mnv3: error:") == 1  # said once, by rank 0, not by every process
    assert (tmp_path / "labels.jsonl.part").read_text().startswith('{"path": "elsewhere.jpg"')
