"""The fine-tuning bar: ``mnv3 train`` on ants vs bees, beside a plain timm training loop.

1. ``mnv3 train ../shared/data/hymenoptera --weights <int8 TFLite> --epochs 5`` (everything else
   default, 224 px) must reach at least 93.6 % validation top-1, as the mean best top-1 over
   ``--seeds`` (153 validation images: one image is 0.65 points).
2. Training speed against a plain loop written as a timm user would: torchvision's ImageFolder,
   the same RandomResizedCrop/flip and normalisation, a DataLoader with as many persistent workers
   as ``mnv3 train`` uses, ``timm.create_model('tf_mobilenetv3_small_100')`` (TF "same" padding, as
   the TFLite weights), AdamW from ``timm.optim``, label smoothing 0.1, batch 32; no validation, no
   checkpoints, no exact-resume seeding. After each seed's ``mnv3 train`` run, the plain loop runs
   as many epochs in its own process, so machine load hits both sides alike (interleaved); epoch 1
   of each is warm-up; each pair's ratio compares the medians of the other epochs' training
   images/s (``mnv3 train``'s from its metrics.csv, which leaves validation and checkpoints out),
   and the result is the median of the pairs' ratios.

    python benchmarks/finetune_hymenoptera.py [--epochs 5] [--seeds 0,1,2,3] [--train-args "..."]

Both sides use torch's default thread count with OpenMP's passive wait policy (spinning threads
cost seconds per step on a busy 2-core machine). Exit status 1 when the accuracy bar is missed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
DATA = SHARED / "data" / "hymenoptera"
BAR_TOP1 = 93.6  # today's 94.12 % mean minus 0.5 (docs/performance.md)

PLAIN_LOOP = """
import json, sys, time
import timm, torch
from timm.optim import create_optimizer_v2
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

data, batch_size, workers, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
transform = v2.Compose([
    v2.RandomResizedCrop(224, scale=(0.25, 1.0), antialias=True), v2.RandomHorizontalFlip(),
    v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3),
])
dataset = ImageFolder(data, transform)
loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                    persistent_workers=workers > 0)
model = timm.create_model("tf_mobilenetv3_small_100", num_classes=len(dataset.classes)).train()
optimizer = create_optimizer_v2(model, opt="adamw", lr=1e-4, weight_decay=0.05)
criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
rates = []
for _ in range(epochs):
    start, images = time.perf_counter(), 0
    for x, y in loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += len(x)
    rates.append(images / (time.perf_counter() - start))
print(json.dumps(rates))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument(
        "--seeds", default="0,1,2,3", help="comma-separated --seed values; the bar is on the mean best top-1"
    )
    parser.add_argument("--train-args", default="", help="extra `mnv3 train` options, e.g. '--no-channels-last'")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for path in (args.data, args.weights):
        if not path.exists():
            sys.exit(f"{path} is missing (../shared holds the weights and data)")
    env = os.environ | {
        "OMP_WAIT_POLICY": "PASSIVE",
        "MNV3_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }

    def train(seed: int, run: Path) -> tuple[dict, list[dict], dict]:
        command = [sys.executable, "-m", "mnv3cli", "train", str(args.data), "--weights", str(args.weights)]
        command += ["--epochs", str(args.epochs), "--seed", str(seed), "--output", str(run), "--json"]
        proc = subprocess.run(
            command + shlex.split(args.train_args), check=False, capture_output=True, text=True, env=env
        )
        if proc.returncode != 0:
            sys.exit(f"mnv3 train failed ({proc.returncode}):\n{proc.stderr}")
        with open(run / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        config = json.loads((run / "config.json").read_text())["config"]
        return json.loads(proc.stdout.strip().splitlines()[-1]), rows, config

    def plain(batch: int, workers: int) -> list[float]:
        command = [sys.executable, "-c", PLAIN_LOOP, str(args.data / "train"), str(batch), str(workers)]
        out = subprocess.run(command + [str(args.epochs)], check=False, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"plain loop failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    ours, theirs, per_seed, walls, ratios = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="mnv3-finetune-") as tmp:
        for seed in seeds:  # one mnv3 train run, then the plain loop: the two sides interleaved
            start = time.perf_counter()
            summary, rows, config = train(seed, Path(tmp) / f"run-{seed}")
            walls.append(time.perf_counter() - start)
            per_seed.append(summary["best_top1"])
            mine = [float(r["images_per_sec"]) for r in rows[1:]]  # epoch 1 includes warm-up
            timm_loop = plain(config["batch_size"], config["workers"])[1:]
            ours, theirs = ours + mine, theirs + timm_loop
            ratios.append(statistics.median(mine) / statistics.median(timm_loop))
            print(
                f"seed {seed}: best top-1 {summary['best_top1']:.2f} % at epoch {summary['best_epoch']}; "
                f"images/s mnv3 train {statistics.median(mine):.1f}, plain timm loop "
                f"{statistics.median(timm_loop):.1f}, ratio {ratios[-1]:.2f}",
                file=sys.stderr,
            )
    mean = round(statistics.mean(per_seed), 2)
    # the median of each pair's ratio: the load of a shared machine drifts between pairs
    ratio = statistics.median(ratios)
    result = {
        "seeds": seeds,
        "best_top1_per_seed": per_seed,
        "mean_best_top1": mean,
        "bar_top1": BAR_TOP1,
        "passed": mean >= BAR_TOP1,
        "wall_seconds_per_run": round(statistics.median(walls), 1),
        "train_images_per_sec": round(statistics.median(ours), 1),
        "plain_timm_loop_images_per_sec": round(statistics.median(theirs), 1),
        "ratio_mnv3_train_vs_plain_timm_loop": round(ratio, 3),
        "ratio_per_seed": [round(r, 3) for r in ratios],
        "batch_size": config["batch_size"],
        "workers": config["workers"],
        "channels_last": config["channels_last"],
        "train_args": args.train_args,
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count(),
    }
    print(
        f"best top-1 per seed {seeds}: {', '.join(f'{t:.2f}' for t in per_seed)} %; mean {mean:.2f} % "
        f"(bar {BAR_TOP1} %); training images/s: mnv3 train {result['train_images_per_sec']}, plain timm "
        f"loop {result['plain_timm_loop_images_per_sec']}; median ratio {ratio:.2f}",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
