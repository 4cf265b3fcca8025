"""``mnv3 predict`` at scale: flat memory with streamed output, kill -9 and --resume, torchrun.

1. ``mnv3 predict DIR -o out.jsonl`` on 500 and 5,000 images (the ImageNet sample's dev images
   hard-linked once and ten times): peak RSS at 5,000 within 1.1 x of the peak at 500 (the bar),
   and the time per image at both sizes (the command's whole wall time, start-up included).
2. kill -9 of the 5,000-image run at several points, each followed by ``--resume`` (killed again),
   then a last ``--resume``: the file equals the uninterrupted run's, byte for byte (the bar).
3. The 5,000 images under ``torchrun --nproc-per-node 1`` and ``2``: images/s of the whole command,
   and the file identical to the one-process run's (the bar). On a machine with fewer cores than
   processes × threads, the second process may not help; the figures say what it does here.

    python benchmarks/predict_at_scale.py [--weights W] [--data DIR]

Peak RSS is each child's own ``ru_maxrss`` (``os.wait4``). Exit status 1 when a bar is missed.
The ONNX cache lives in a temporary directory (``MNV3_CACHE``), never the user's.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
DEV = SHARED / "data" / "imagenet-sample" / "dev"
MNV3 = [sys.executable, "-m", "mnv3cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def link_images(src: Path, dst: Path, copies: int) -> int:
    """``copies`` hard links of every image under ``src`` in ``dst/<copy>/<class>/``."""
    images = sorted(p for p in src.rglob("*") if p.is_file())
    for copy in range(copies):
        for image in images:
            target = dst / f"{copy:02d}" / image.parent.name / image.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(image, target)
    return copies * len(images)


def run(cmd: list, cwd: Path, env: dict) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MiB, exit status) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{' '.join(map(str, cmd))} failed ({code}):\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024, code


def kill_and_resume(cmd: list, out: Path, cwd: Path, env: dict, after: list[float]) -> list[int]:
    """Start ``cmd --resume`` and kill -9 it ``after[i]`` seconds in, for each i; then finish it.
    Returns the size of ``out.part`` after each kill."""
    part = out.with_name(out.name + ".part")
    sizes = []
    for seconds in after:
        proc = subprocess.Popen(
            [str(c) for c in cmd + ["--resume"]], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(seconds)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sizes.append(part.stat().st_size if part.exists() else 0)
    run(cmd + ["--resume"], cwd, env)
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--data", type=Path, default=DEV)
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="mnv3-scale-") as tmp:
        tmp = Path(tmp)
        env = os.environ | {"MNV3_CACHE": str(tmp / "cache"), "MNV3_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        small = link_images(args.data, tmp / "small", 1)
        large = link_images(args.data, tmp / "large", 10)
        base = MNV3 + ["predict", "-w", args.weights]
        run(base + [tmp / "small", "-o", tmp / "warm.jsonl"], tmp, env)  # builds the ONNX cache

        wall_s, rss_s, _ = run(base + [tmp / "small", "-o", tmp / "small.jsonl"], tmp, env)
        wall_l, rss_l, _ = run(base + [tmp / "large", "-o", tmp / "large.jsonl"], tmp, env)
        ratio = rss_l / rss_s
        ok &= ratio <= 1.1
        print(
            f"1. peak RSS: {small} images {rss_s:.0f} MiB, {large} images {rss_l:.0f} MiB: "
            f"{ratio:.3f} x (bar <= 1.1); {1000 * wall_s / small:.2f} ms/image at {small}, "
            f"{1000 * wall_l / large:.2f} ms/image at {large} ({large / wall_l:.1f} images/s)"
        )

        reference = (tmp / "large.jsonl").read_bytes()
        cmd = base + [tmp / "large", "-o", tmp / "resumed.jsonl"]
        sizes = kill_and_resume(cmd, tmp / "resumed.jsonl", tmp, env, [3.0, 5.0, 8.0])
        same = (tmp / "resumed.jsonl").read_bytes() == reference
        ok &= same
        print(
            f"2. kill -9 at 3, 5 and 8 s into three runs (.part then {', '.join(map(str, sizes))} "
            f"bytes of {len(reference)}), then --resume: {'identical' if same else 'DIFFERENT'}"
        )

        for procs in (1, 2):
            out = tmp / f"torchrun{procs}.jsonl"
            wall, _, _ = run(
                TORCHRUN
                + [
                    "--nproc-per-node",
                    str(procs),
                    "-m",
                    "mnv3cli",
                    "predict",
                    "-w",
                    args.weights,
                    tmp / "large",
                    "-o",
                    out,
                ],
                tmp,
                env,
            )
            same = out.read_bytes() == reference
            ok &= same
            print(
                f"3. torchrun --nproc-per-node {procs}: {large / wall:.1f} images/s "
                f"({wall:.1f} s), file {'identical' if same else 'DIFFERENT'} to one process's"
            )
    print("all bars met" if ok else "a bar was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
