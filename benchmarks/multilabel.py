"""The multi-label bar: ``mnv3 train`` on mosaics of real photos, beside two baselines, by mAP.

Data (tests/mosaics.py): 2x2 mosaics of the 500 dev photos of ``../shared`` (one per ImageNet
class), each labelled with the set of its photos' coarse categories (fish, birds, reptiles,
invertebrates, dogs, mammals, food, objects: ImageNet index ranges). Training mosaics use the
even-numbered photos, validation mosaics the odd-numbered ones: no photo is in both.

1. ``mnv3 train MOSAICS.jsonl --weights <int8 TFLite> --epochs E --resolution R --lr LR``
   (everything else default: BCE, head lr x10, warmup + cosine, BatchNorm unfolded, crops
   keeping >= 80 % of a mosaic, the head's bias at the labels' frequencies); mAP of
   best.pt by ``mnv3 evaluate`` on the validation mosaics.
2. A plain loop on the same data, starting weights, resolution, epochs and peak lr, written as
   a timm user would: the same network loaded from the TFLite file with a new 8-output head,
   RandomResizedCrop + flip, AdamW (``timm.optim``), ``BCEWithLogitsLoss``, batch 32, no
   schedule; its mAP on the same validation mosaics, same preprocessing.
3. Zero-shot: the single-label ImageNet model (the TFLite file, 224 px), its softmax
   probabilities summed over each category's classes, as the category's score.

    python benchmarks/multilabel.py [--epochs 6] [--resolution 224] [--lr 1e-3] [--train 384] [--val 192]

Prints one JSON object; exit status 1 when mnv3's mAP is not above both baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
DEV = SHARED / "data" / "imagenet-sample" / "dev"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PLAIN_LOOP = """
import json, sys
import torch
from timm.optim import create_optimizer_v2
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from PIL import Image
from mnv3cli.weights.loader import load_model

manifest, weights, out = sys.argv[1], sys.argv[2], sys.argv[5]
epochs, size, lr = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[6])
torch.manual_seed(0)
rows = [json.loads(line) for line in open(manifest)]
classes = []
for r in rows:
    classes += [c for c in r["labels"] if c not in classes]
train = [r for r in rows if r["split"] == "train"]
folder = manifest.rsplit("/", 1)[0]
transform = v2.Compose([
    v2.RandomResizedCrop(size, scale=(0.25, 1.0), antialias=True), v2.RandomHorizontalFlip(),
    v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3),
])

class Mosaics(Dataset):
    def __len__(self):
        return len(train)
    def __getitem__(self, i):
        image = Image.open(f"{folder}/{train[i]['path']}").convert("RGB")
        target = torch.tensor([float(c in train[i]["labels"]) for c in classes])
        return transform(image), target

loaded = load_model(weights)
model = loaded.model
model.reset_classifier(len(classes))
model.train()
loader = DataLoader(Mosaics(), batch_size=32, shuffle=True, num_workers=0)
optimizer = create_optimizer_v2(model, opt="adamw", lr=lr, weight_decay=0.05)
criterion = torch.nn.BCEWithLogitsLoss()
for _ in range(epochs):
    for x, y in loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
torch.save({"state": model.state_dict(), "classes": classes}, out)
"""


def mean_ap(probs, targets) -> float:
    from mnv3cli.evaluation.multilabel import average_precision

    aps = [average_precision(probs[:, c], targets[:, c]) for c in range(targets.shape[1])]
    return float(sum(a for a in aps if a is not None) / sum(a is not None for a in aps))


def val_samples(manifest: Path, classes: list[str]) -> list[tuple[str, tuple[float, ...]]]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    return [
        (str(manifest.parent / r["path"]), tuple(float(c in r["labels"]) for c in classes))
        for r in rows
        if r["split"] == "val"
    ]


def plain_map(manifest: Path, state_file: Path, resolution: int) -> float:
    """mAP of the plain loop's weights, through the same evaluation as ``mnv3 evaluate``."""
    import torch

    from mnv3cli.evaluation.multilabel_eval import evaluate_multilabel
    from mnv3cli.inference.backends import TorchBackend
    from mnv3cli.weights.loader import load_model

    saved = torch.load(state_file, weights_only=True)
    loaded = load_model(WEIGHTS)
    loaded.model.reset_classifier(len(saved["classes"]))
    loaded.model.load_state_dict(saved["state"])
    found = evaluate_multilabel(
        TorchBackend(loaded.model.eval(), None),
        val_samples(manifest, saved["classes"]),
        saved["classes"],
        loaded.card.preprocess.at_resolution(resolution),
    )
    return found.metrics.map


def zero_shot_map(manifest: Path) -> float:
    """The ImageNet model's softmax summed per category, as each category's score."""
    import numpy as np
    from mosaics import ORDER, category

    from mnv3cli.evaluation.evaluate import evaluate
    from mnv3cli.evaluation.metrics import softmax
    from mnv3cli.inference.backends import TorchBackend
    from mnv3cli.weights.loader import load_model

    loaded = load_model(WEIGHTS)
    samples = val_samples(manifest, list(ORDER))
    result = evaluate(
        TorchBackend(loaded.model.eval(), None),
        [(p, 0) for p, _ in samples],
        1000,
        loaded.card.preprocess,
        keep_logits=True,
    )
    probs = softmax(result.logits)
    groups = np.array([ORDER.index(category(i)) for i in range(1000)])
    scores = np.stack([probs[:, groups == g].sum(axis=1) for g in range(len(ORDER))], axis=1)
    targets = np.array([samples[p.index][1] for p in result.predictions], dtype=bool)
    return mean_ap(scores, targets)


def run(command: list[str], env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{command[:4]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate, both loops")
    parser.add_argument("--train", type=int, default=384, help="training mosaics")
    parser.add_argument("--val", type=int, default=192, help="validation mosaics")
    parser.add_argument("--size", type=int, default=224, help="mosaic side in pixels")
    args = parser.parse_args()
    for path in (DEV, WEIGHTS):
        if not path.exists():
            sys.exit(f"{path} is missing (../shared holds the weights and data)")
    from mosaics import imagenet_mosaics

    env = os.environ | {
        "OMP_WAIT_POLICY": "PASSIVE",
        "MNV3_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result: dict = vars(args) | {"threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="mnv3-multilabel-") as tmp:
        manifest = imagenet_mosaics(DEV, Path(tmp) / "mosaics", train=args.train, val=args.val, size=args.size)
        start = time.perf_counter()
        folder = Path(tmp) / "run"
        mnv3 = [sys.executable, "-m", "mnv3cli"]
        train = [*mnv3, "train", str(manifest), "--weights", str(WEIGHTS), "-e", str(args.epochs)]
        train += ["-r", str(args.resolution), "--lr", str(args.lr), "-o", str(folder), "--no-tensorboard"]
        run(train, env)
        result["mnv3_train_seconds"] = round(time.perf_counter() - start, 1)
        evaluated = run([*mnv3, "evaluate", str(manifest), "-w", str(folder / "best.pt"), "--json"], env)
        summary = json.loads(evaluated.stdout.splitlines()[0])
        result |= {"mnv3_map": summary["map"], "mnv3_micro_f1": summary["micro_f1"]}
        start = time.perf_counter()
        state = Path(tmp) / "plain.pt"
        plain = [sys.executable, "-c", PLAIN_LOOP, str(manifest), str(WEIGHTS), str(args.epochs)]
        run([*plain, str(args.resolution), str(state), str(args.lr)], env)
        result["plain_loop_seconds"] = round(time.perf_counter() - start, 1)
        result["plain_loop_map"] = round(plain_map(manifest, state, args.resolution), 4)
        result["zero_shot_map"] = round(zero_shot_map(manifest), 4)
    result["passed"] = result["mnv3_map"] > max(result["plain_loop_map"], result["zero_shot_map"])
    print(
        f"mAP on {args.val} validation mosaics: mnv3 train {100 * result['mnv3_map']:.1f} %, plain loop "
        f"{100 * result['plain_loop_map']:.1f} %, zero-shot {100 * result['zero_shot_map']:.1f} %",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
