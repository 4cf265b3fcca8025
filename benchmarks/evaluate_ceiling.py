"""``mnv3 evaluate`` against its pipeline's ceiling, and OpenVINO's top-1 against ONNX Runtime's.

1. Ceiling: the dev images decoded and preprocessed alone (``iter_batches``, the same decoding
   threads as evaluate), and the cached static graph alone (the ONNX Runtime backend, batch 32, on
   the same cores). Decoding and the model share the cores, so the ceiling of the two together is
   ``1 / (1 / decode_rate + 1 / model_rate)`` images/s; ``mnv3 evaluate``'s own in-loop rate
   (``images_per_sec`` of ``--json``) is reported as a fraction of it. Rounds alternate; best of
   ``--repeats``.
2. ``--backend openvino`` (f32) on the same 500 images: top-1 within 0.2 points of onnxruntime.

    python benchmarks/evaluate_ceiling.py [--repeats 3]

Exit status 1 when OpenVINO's top-1 differs by more than 0.2 points.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
DEV = SHARED / "data" / "imagenet-sample" / "dev"


def evaluate(*extra: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "mnv3cli", "-q", "evaluate", str(DEV), "-w", str(WEIGHTS), "--json", *extra],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from mnv3cli.data import iter_batches
    from mnv3cli.data.batches import default_workers
    from mnv3cli.data.folders import find_samples
    from mnv3cli.inference.runtime import open_runtime

    env = dict(os.environ, MNV3_CACHE=tempfile.mkdtemp(prefix="mnv3-ceiling-"), MNV3_OFFLINE="1", PYTHONPATH=str(ROOT))
    os.environ["MNV3_CACHE"] = env["MNV3_CACHE"]
    first = evaluate(env=env)  # builds the cache entry
    runtime = open_runtime(str(WEIGHTS), pipelined=True)
    samples = find_samples(DEV, runtime.card.class_names, runtime.card.wordnet_ids).samples
    paths = [p for p, _ in samples]
    batch = next(iter_batches(paths[:32], runtime.card.preprocess, 32)).images
    decode, model, tool = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in iter_batches(paths, runtime.card.preprocess, 32, default_workers()):
            pass
        decode.append(len(paths) / (time.perf_counter() - start))
        runtime.backend(batch)
        start = time.perf_counter()
        for _ in range(len(paths) // 32):
            runtime.backend(batch)
        model.append(32 * (len(paths) // 32) / (time.perf_counter() - start))
        tool.append(evaluate(env=env)["images_per_sec"])
    d, m, t = max(decode), max(model), max(tool)
    ceiling = 1 / (1 / d + 1 / m)
    print(
        f"decoding alone {d:.0f} images/s ({default_workers()} threads), model alone {m:.0f} images/s "
        f"(batch 32): ceiling together {ceiling:.0f} images/s"
    )
    print(f"mnv3 evaluate: {t:.0f} images/s = {t / ceiling:.2f} of the ceiling (top-1 {first['top1']:.1f} %)")

    ov = evaluate("--backend", "openvino", env=env)
    gap = abs(ov["top1"] - first["top1"])
    print(
        f"top-1 on {first['images']} images: onnxruntime {first['top1']:.1f} %, openvino "
        f"{ov['top1']:.1f} % ({ov['backend']}), difference {gap:.1f} points (bar <= 0.2); "
        f"openvino {ov['images_per_sec']:.0f} images/s"
    )
    bf16 = evaluate("--backend", "openvino", "--precision", "bf16", env=env)
    print(f"for reference, {bf16['backend']}: top-1 {bf16['top1']:.1f} %")
    failed = gap > 0.2
    print("FAILED: a bar was missed" if failed else "bars met")
    return int(failed)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
