"""The fast-inference bars, each a ratio of two measurements taken in this one run.

1. Warm-cache ``mnv3 predict photo.jpg``: median wall time <= 0.25 x and peak RSS <= 0.4 x those of
   a minimal torchvision script doing the same (import torch and torchvision, build the model, load
   the weights, transform, forward, print the top-5). Both run as subprocesses, alternating, several
   times; peak RSS is each child's own ``ru_maxrss`` (``os.wait4``).
2. ``mnv3 evaluate`` on ``../shared/data/imagenet-sample/dev`` with ``mobilenetv3_small_100`` and the
   int8 TFLite weights: images/s >= 2 x a plain PyTorch pipeline (ImageFolder, Resize(256) /
   CenterCrop(224) / Normalize, DataLoader with batch 32 and 2 workers, the eager model under
   ``inference_mode``), with identical top-1 and top-5. Images/s counts the whole process (start-up
   included: what a user waits for); the in-loop ratio is printed beside it. The baseline imports
   only what it uses (the WordNet-id index comes from a JSON file, not a label library), both sides
   get one warm-up run, and the timed runs alternate.
   Also warm bare ``mnv3 predict photo.jpg`` (the bundled model) against the import floor
   ``python -c "import onnxruntime, PIL.Image, numpy"``: median wall time <= 1.6 x, same runs.
3. Model-only latency at batch 1: the ONNX Runtime backend within 1.2 x of a bare
   ``onnxruntime.InferenceSession`` on the same cached graph (the faster of ORT's default options
   and the backend's own options, so that the ratio shows what the wrapper costs).

    python benchmarks/fast_inference.py [--repeats 7] [--weights W] [--data DIR] [--photo JPG]

The machine should be otherwise quiet; on a busy one, run it twice. Exit status 1 when a bar is
missed. The ONNX cache lives in a temporary directory (``MNV3_CACHE``), never the user's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
FLOOR = [sys.executable, "-c", "import onnxruntime, PIL.Image, numpy"]
BARS = {
    "predict_wall": 0.25,
    "predict_rss": 0.4,
    "bare_predict_floor": 1.6,
    "evaluate_speedup": 2.0,
    "latency_overhead": 1.2,
}

PREPARE = """
import sys
import torch, torchvision
from mnv3cli.weights.loader import load_model
from mnv3cli.weights.remap import remap_state_dict

weights, tv_state, ours = sys.argv[1:]
model = load_model(weights, progress=False).model
torch.save(model.state_dict(), ours)
target = torchvision.models.mobilenet_v3_small().state_dict()
torch.save(remap_state_dict(model.state_dict(), target, weights), tv_state)
"""

TORCHVISION_PREDICT = """
import sys
import torch, torchvision
from PIL import Image
from torchvision import transforms as T

weights = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1  # metadata only: no download
model = torchvision.models.mobilenet_v3_small()
model.load_state_dict(torch.load(sys.argv[2], weights_only=True))
model.eval()
transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
x = transform(Image.open(sys.argv[1]).convert("RGB")).unsqueeze(0)
with torch.inference_mode():
    probs = model(x).softmax(1)[0]
top = probs.topk(5)
for p, i in zip(top.values.tolist(), top.indices.tolist()):
    print(f"{weights.meta['categories'][i]}: {100 * p:.2f} %")
"""

TORCH_PIPELINE = """
import json, sys, time
import torch
from torch.utils.data import DataLoader
from torchvision import transforms as T
from torchvision.datasets import ImageFolder
from mnv3cli.model import MobileNetV3

root, state, wnids = sys.argv[1], sys.argv[2], sys.argv[3]
with open(wnids) as fh:  # the class index of each WordNet id, written by the parent: no label library
    index = json.load(fh)
transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
dataset = ImageFolder(root, transform=transform)
dataset.target_transform = lambda i: index[dataset.classes[i]]
model = MobileNetV3("small", tf_padding=True)
model.load_state_dict(torch.load(state, weights_only=True))
model.eval()
loader = DataLoader(dataset, batch_size=32, num_workers=2)
top1 = top5 = n = 0
start = time.perf_counter()
with torch.inference_mode():
    for images, targets in loader:
        top = model(images).topk(5, dim=1).indices
        top1 += (top[:, 0] == targets).sum().item()
        top5 += (top == targets[:, None]).any(dim=1).sum().item()
        n += len(targets)
seconds = time.perf_counter() - start
print(json.dumps({"images": n, "top1": 100 * top1 / n, "top5": 100 * top5 / n, "images_per_sec": n / seconds}))
"""


def run(cmd: list[str], env: dict) -> tuple[float, int, str, str]:
    """Wall seconds, peak RSS in MiB (this child's own), stdout and stderr of ``cmd``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss // 1024, stdout, stderr  # ru_maxrss is in KiB on Linux


def prepare(workdir: Path, weights: Path, env: dict) -> tuple[Path, Path]:
    """State dicts of the converted weights: torchvision's layout (script 1) and ours (script 2).

    Done in a child process: this one must stay small, or the children it forks would inherit
    its peak RSS (Linux keeps ``ru_maxrss`` across exec).
    """
    tv_state, ours = workdir / "torchvision_small_int8.pth", workdir / "mnv3_small_int8.pth"
    run([sys.executable, "-c", PREPARE, str(weights), str(tv_state), str(ours)], env)
    return tv_state, ours


def bar_predict(args, env, workdir: Path, tv_state: Path) -> dict:
    script = workdir / "torchvision_predict.py"
    script.write_text(TORCHVISION_PREDICT)
    ours_cmd = [*MNV3, "predict", str(args.photo), "--weights", str(args.weights)]
    tv_cmd = [sys.executable, str(script), str(args.photo), str(tv_state)]
    bare_cmd = [*MNV3, "predict", str(args.photo)]
    cold, _, _, stderr = run(ours_cmd, env)
    print(f"  cold first run (builds the ONNX cache): {cold:.2f} s; stderr: {stderr.strip()[:120]}")
    run(bare_cmd, env)  # the bundled model's cache entry
    ours, theirs, bare, floor = [], [], [], []
    for _ in range(args.repeats):  # alternating: machine load hits every side alike
        ours.append(run(ours_cmd, env)[:2])
        theirs.append(run(tv_cmd, env)[:2])
        bare.append(run(bare_cmd, env)[0])
        floor.append(run(FLOOR, env)[0])
    wall = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in theirs)
    rss = statistics.median(r for _, r in ours), statistics.median(r for _, r in theirs)
    print(f"  mnv3 predict (warm): median {wall[0]:.3f} s, peak RSS {rss[0]:.0f} MiB")
    print(f"  torchvision script : median {wall[1]:.3f} s, peak RSS {rss[1]:.0f} MiB")
    bare_wall, floor_wall = statistics.median(bare), statistics.median(floor)
    print(f"  bare mnv3 predict  : median {bare_wall:.3f} s; import floor (onnxruntime, PIL, numpy) {floor_wall:.3f} s")
    return {
        "bare_predict_floor": bare_wall / floor_wall,
        "predict_wall": wall[0] / wall[1],
        "predict_rss": rss[0] / rss[1],
        "predict_seconds": wall,
        "predict_rss_mib": rss,
    }


def bar_evaluate(args, env, workdir: Path, state: Path) -> dict:
    """Both sides warmed up once (ours builds its cache entry, both read the images into the page
    cache), then ``--repeats`` runs alternating; medians of the whole-process and in-loop rates."""
    from mnv3cli.registry.imagenet import wordnet_ids

    script, wnids = workdir / "torch_pipeline.py", workdir / "wnids.json"
    script.write_text(TORCH_PIPELINE)
    wnids.write_text(json.dumps({w: i for i, w in enumerate(wordnet_ids())}))
    ours_cmd = [
        *MNV3,
        "evaluate",
        str(args.data),
        "--weights",
        str(args.weights),
        "--model",
        "mobilenetv3_small_100",
        "--json",
    ]
    tv_cmd = [sys.executable, str(script), str(args.data), str(state), str(wnids)]
    run(ours_cmd, env)
    run(tv_cmd, env)
    runs = {"ours": [], "theirs": []}
    for _ in range(max(1, args.repeats // 2)):
        for side, cmd in (("ours", ours_cmd), ("theirs", tv_cmd)):
            wall, _, out, _ = run(cmd, env)
            runs[side].append((wall, json.loads(out)))
    ours, theirs = runs["ours"][-1][1], runs["theirs"][-1][1]
    n = ours["images"]
    rate = {side: statistics.median(r["images"] / wall for wall, r in v) for side, v in runs.items()}
    loop = {side: statistics.median(r["images_per_sec"] for _, r in v) for side, v in runs.items()}
    for side, name, r in (("ours", "mnv3 evaluate    ", ours), ("theirs", "PyTorch pipeline ", theirs)):
        print(
            f"  {name}: {rate[side]:6.1f} images/s end to end, {loop[side]:6.1f} in the loop "
            f"(medians of {len(runs[side])}); top-1 {r['top1']:.1f} %, top-5 {r['top5']:.1f} %"
        )
    return {
        "evaluate_speedup": rate["ours"] / rate["theirs"],
        "evaluate_loop_speedup": loop["ours"] / loop["theirs"],
        "same_accuracy": (n, round(ours["top1"], 6), round(ours["top5"], 6))
        == (theirs["images"], round(theirs["top1"], 6), round(theirs["top5"], 6)),
        "top1": (ours["top1"], theirs["top1"]),
        "top5": (ours["top5"], theirs["top5"]),
    }


def bar_latency(args, cache: Path) -> dict:
    import numpy as np
    import onnxruntime as ort

    from mnv3cli.data import load_and_preprocess
    from mnv3cli.inference.onnx_backend import session_options
    from mnv3cli.inference.onnx_cache import OnnxCache
    from mnv3cli.inference.runtime import open_runtime

    runtime = open_runtime(str(args.weights), cache=OnnxCache(cache))  # predict's warm entry
    ours = runtime.backend
    x = load_and_preprocess(args.photo, runtime.card.preprocess)[None]
    raw = ort.InferenceSession(str(ours.path), providers=["CPUExecutionProvider"])  # defaults
    tuned = ort.InferenceSession(str(ours.path), session_options(), providers=["CPUExecutionProvider"])
    name = raw.get_inputs()[0].name
    runners = {
        "ours": lambda: ours(x),
        "raw": lambda: raw.run(None, {name: x}),
        "raw_same_options": lambda: tuned.run(None, {name: x}),
    }
    times = {k: [] for k in runners}
    for _ in range(10):
        for f in runners.values():
            f()
    for _ in range(args.rounds):  # interleaved rounds of 50 calls each
        for key, f in runners.items():
            for _ in range(50):
                start = time.perf_counter()
                f()
                times[key].append(time.perf_counter() - start)
    assert np.allclose(ours(x), raw.run(None, {name: x})[0], atol=1e-5)
    median = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(
        f"  OnnxBackend {median['ours']:.3f} ms; bare InferenceSession: {median['raw']:.3f} ms with "
        f"ORT's default options, {median['raw_same_options']:.3f} ms with the backend's (median, batch 1)"
    )
    fastest_raw = min(median["raw"], median["raw_same_options"])
    return {"latency_overhead": median["ours"] / fastest_raw, "latency_ms": median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each predict command")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of 50 calls for the latency bar")
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--data", type=Path, default=DEV)
    parser.add_argument("--photo", type=Path, help="a JPEG [default: the first dev image]")
    args = parser.parse_args()
    args.photo = args.photo or next(p for p in sorted(args.data.rglob("*.JPEG")))

    with tempfile.TemporaryDirectory(prefix="mnv3-bench-") as tmp:
        workdir = Path(tmp)
        cache = workdir / "cache"
        env = dict(os.environ, MNV3_CACHE=str(cache), MNV3_OFFLINE="1")
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: our modules' bytecode is cached too
        tv_state, state = prepare(workdir, args.weights, env)
        print(f"1. warm-cache predict of {args.photo.name} vs a minimal torchvision script ({args.repeats} runs each)")
        results = bar_predict(args, env, workdir, tv_state)
        print(
            f"2. evaluate {args.data} ({sum(1 for _ in args.data.rglob('*.JPEG'))} images) vs a plain PyTorch pipeline"
        )
        results |= bar_evaluate(args, env, workdir, state)
        print("3. model-only latency at batch 1 on the cached graph")
        results |= bar_latency(args, cache)

    checks = {
        "predict_wall": results["predict_wall"] <= BARS["predict_wall"],
        "predict_rss": results["predict_rss"] <= BARS["predict_rss"],
        "bare_predict_floor": results["bare_predict_floor"] <= BARS["bare_predict_floor"],
        "evaluate_speedup": results["evaluate_speedup"] >= BARS["evaluate_speedup"] and results["same_accuracy"],
        "latency_overhead": results["latency_overhead"] <= BARS["latency_overhead"],
    }
    print("\nratios (bar):")
    print(f"  predict wall time   {results['predict_wall']:.3f} x  (<= {BARS['predict_wall']})")
    print(f"  predict peak RSS    {results['predict_rss']:.3f} x  (<= {BARS['predict_rss']})")
    print(f"  bare predict/floor  {results['bare_predict_floor']:.3f} x  (<= {BARS['bare_predict_floor']})")
    print(
        f"  evaluate images/s   {results['evaluate_speedup']:.2f} x  (>= {BARS['evaluate_speedup']}; "
        f"in the loop {results['evaluate_loop_speedup']:.2f} x; same accuracy: {results['same_accuracy']})"
    )
    print(f"  latency vs bare ORT {results['latency_overhead']:.3f} x  (<= {BARS['latency_overhead']})")
    print(
        json.dumps(
            {
                "ratios": {
                    k: results[k]
                    for k in (
                        "predict_wall",
                        "predict_rss",
                        "bare_predict_floor",
                        "evaluate_speedup",
                        "evaluate_loop_speedup",
                        "latency_overhead",
                    )
                },
                "passed": checks,
            }
        )
    )
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
