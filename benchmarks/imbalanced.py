"""Imbalanced classes: does ``--class-weights balanced`` (or ``--sampler balanced``) raise balanced accuracy?

Ants vs bees (``../shared/data/hymenoptera``) with the bees of the training split cut to a tenth,
deterministically (every tenth file in sorted order: 124 ants, 13 bees), written as a CSV manifest
with ``train`` rows and the full ``val`` split (70 ants, 83 bees) as ``val`` rows. For each seed,
``mnv3 train`` fine-tunes from the int8 TFLite weights on a small fixed budget, once plainly and once
with each remedy asked for (interleaved, so machine load hits every side alike), and ``mnv3 evaluate
--split val`` scores best.pt: balanced accuracy (mean per-class recall) on the full val split.

    python benchmarks/imbalanced.py [--seeds 0,1,2] [--epochs 3] [--resolution 112]
        [--remedies class-weights,sampler] [--train-args "--freeze"]

Prints one line per run, the mean balanced accuracy of each side and the differences; exit status 1
when a remedy does not raise the mean.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
DATA = SHARED / "data" / "hymenoptera"
KEEP_EVERY = 10  # bees kept in training: one in ten
REMEDY_ARGS = {"none": [], "class-weights": ["--class-weights", "balanced"], "sampler": ["--sampler", "balanced"]}


def write_manifest(folder: Path) -> Path:
    """The cut training split and the full val split as one manifest (absolute paths)."""
    lines = ["path,label,split"]
    for split in ("train", "val"):
        for label in ("ants", "bees"):
            files = sorted((DATA / split / label).iterdir())
            if split == "train" and label == "bees":
                files = files[::KEEP_EVERY]
            lines += [f'"{path}",{label},{split}' for path in files]
    manifest = folder / "ants-bees-cut.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def mnv3(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "mnv3cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ | {"MNV3_OFFLINE": "1"},
    )
    if proc.returncode != 0:
        sys.exit(f"mnv3 {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def balanced_accuracy(manifest: Path, folder: Path, remedy: str, seed: int, options: argparse.Namespace) -> float:
    run = folder / f"{remedy}-{seed}"
    mnv3(
        "train", str(manifest), "--allow-absolute-paths", "-w", str(WEIGHTS), "-o", str(run),
        "--epochs", str(options.epochs), "-r", str(options.resolution), "--seed", str(seed),
        "--no-tensorboard", "--json", *REMEDY_ARGS[remedy], *shlex.split(options.train_args),
    )  # fmt: skip
    scored = mnv3(
        "evaluate", str(manifest), "--split", "val", "--allow-absolute-paths", "-w", str(run / "best.pt"), "--json"
    )
    return scored["balanced_accuracy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=112)
    parser.add_argument("--remedies", default="class-weights")
    parser.add_argument("--train-args", default="--freeze", help="more mnv3 train options, the same for every run")
    options = parser.parse_args()
    seeds = [int(s) for s in options.seeds.split(",")]
    remedies = ["none", *options.remedies.split(",")]
    scores: dict[str, list[float]] = {remedy: [] for remedy in remedies}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_manifest(Path(tmp))
        for seed in seeds:
            for remedy in remedies:
                scores[remedy].append(balanced_accuracy(manifest, Path(tmp), remedy, seed, options))
                print(f"seed {seed}  {remedy:<13}  balanced accuracy {scores[remedy][-1]:6.2f} %", flush=True)
    means = {remedy: statistics.mean(values) for remedy, values in scores.items()}
    for remedy in remedies:
        print(f"mean  {remedy:<13}  balanced accuracy {means[remedy]:6.2f} %  (seeds {options.seeds})")
    worse = []
    for remedy in remedies[1:]:
        gain = means[remedy] - means["none"]
        print(f"{remedy}: {gain:+.2f} points over the unweighted run")
        worse += [remedy] if gain <= 0 else []
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
