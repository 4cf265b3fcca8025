"""The int8 bar: MobileNetV3-Small from the int8 TFLite weights, calibrated on half of the dev images
(class by class) and measured on the other half, at most 1.0 point of top-1 below fp32; speed of
int8 against fp32 on the same backend, whatever it is.

For each format (``openvino``, ``onnx``) it runs the same code as ``mnv3 export --int8``
(:func:`mnv3cli.inference.int8.export_int8`) with ``--max-drop 1.0`` and prints every step. The
tool certifies a budget only when the measured drop *and* its own noise (the standard error of
the paired difference) are within it, so on 250 held-out images it may refuse: it then says how
many images the noise needs, and the script runs again with a 2-point budget to get a file whose
speed it can report (the measured drop is printed either way).

    python benchmarks/int8_budget.py [--formats openvino,onnx] [--threads 2]

Exit status 1 when the measured drop of the accepted int8 graph exceeds 1.0 point.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
DEV = SHARED / "data" / "imagenet-sample" / "dev"
BAR = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--formats", default="openvino,onnx")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from mnv3cli.data.folders import find_samples
    from mnv3cli.inference.int8 import BudgetNotMet, export_int8, split
    from mnv3cli.weights.loader import load_model

    loaded = load_model(str(WEIGHTS), progress=False)
    samples = find_samples(DEV, loaded.card.class_names, loaded.card.wordnet_ids).samples
    calibration, held_out = split(samples, len(samples), None)
    print(f"{len(calibration)} calibration images, {len(held_out)} held-out images")
    failed = False
    tmp = Path(tempfile.mkdtemp(prefix="mnv3-int8-bench-"))
    for fmt in args.formats.split(","):
        for budget in (1.0, 2.0):
            start = time.perf_counter()
            out = tmp / f"small-int8-{budget:g}.{'xml' if fmt == 'openvino' else 'onnx'}"
            try:
                result = export_int8(
                    loaded.model,
                    loaded.card,
                    out,
                    fmt,
                    calibration,
                    held_out,
                    max_drop=budget,
                    threads=args.threads,
                    on_step=lambda m: print(f"  {m}", flush=True),
                )
            except BudgetNotMet as exc:
                print(f"{fmt}, --max-drop {budget:g}: refused ({time.perf_counter() - start:.0f} s): {exc}")
                continue
            m = result.measured
            print(
                f"{fmt}, --max-drop {budget:g}: certified in {result.steps} step(s), "
                f"{time.perf_counter() - start:.0f} s: fp32 {m.fp32_top1:.1f} %, int8 "
                f"{m.int8_top1:.1f} %, drop {m.drop:.2f} ± {m.noise:.2f} (noise needs "
                f"{m.images_needed(budget)} images); {len(result.kept)} of {result.layers} "
                f"layers in float: {', '.join(layer.label for layer in result.kept) or 'none'}"
            )
            for batch, fp32_ms in result.latency_ms["fp32"].items():
                int8_ms = result.latency_ms["int8"][batch]
                print(
                    f"  latency batch {batch}: fp32 {fp32_ms:.2f} ms, int8 {int8_ms:.2f} ms "
                    f"(int8/fp32 {int8_ms / fp32_ms:.2f} x)"
                )
            if m.drop > BAR:
                print(f"  FAILED: drop {m.drop:.2f} > {BAR} point")
                failed = True
            break
    print("FAILED: a bar was missed" if failed else "bar met (measured drop <= 1.0 point)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
