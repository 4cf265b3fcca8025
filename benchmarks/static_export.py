"""Static export bars: mnv3's cached ONNX graph against the graph it replaced, timm's and OpenVINO.

Graphs, all of MobileNetV3-Small at 224, dynamic batch:
- ``mnv3 static``: what the ONNX cache and ``mnv3 export`` write now (int8 TFLite weights; every
  TF "same" padding a constant);
- ``mnv3 dynamic``: the same model exported as before (paddings recomputed on each run);
- ``timm tf_``: timm's ``tf_mobilenetv3_small_100`` holding the same weights, exported with
  ``torch.onnx.export`` (opset 17), dynamic batch;
- ``openvino f32``: the static graph compiled by OpenVINO with the f32 precision hint (when
  installed).

Each is timed with bare runtimes (2 threads, defaults otherwise), interleaved, the best of
``--repeats`` rounds of ``--runs`` calls (``--runs / 8`` at batch 32), per image: on a machine
shared with other processes the best round is the one least disturbed, the median is printed too.
Bars (ratios within this
run): static <= 0.75 x timm at both batches, and no slower than OpenVINO f32 on the same graph.
The static graph's logits are checked against PyTorch and the dynamic graph; symmetric-padding
models (torchvision's and timm's layouts) are exported and checked the same way.

    python benchmarks/static_export.py [--repeats 5] [--runs 50]

Exit status 1 when a bar is missed. The machine should be otherwise quiet.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))
WEIGHTS = SHARED / "weights" / "mobilenet_v3_small_1.0_224_int8.tflite"
THREADS = 2
BARS = {"vs_timm": 0.75, "vs_openvino": 1.0}


def ops(path: Path) -> collections.Counter:
    import onnx

    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def openvino_model(path: Path):
    try:
        import openvino as ov
    except ImportError:
        return None
    compiled = ov.Core().compile_model(
        str(path), "CPU", {"INFERENCE_NUM_THREADS": THREADS, "INFERENCE_PRECISION_HINT": "f32"}
    )
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[0]


def time_per_image(run, batch: int, runs: int) -> float:
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    run(x)
    start = time.perf_counter()
    for _ in range(runs):
        run(x)
    return (time.perf_counter() - start) / runs / batch * 1e3


def symmetric_checks(tmp: Path) -> list[str]:
    """torchvision- and timm-layout weights (symmetric padding): static graph == PyTorch."""
    import timm
    import torch
    import torchvision

    from mnv3cli.inference.export import export_verified
    from mnv3cli.weights.loader import load_model

    lines = []
    for name, model in (
        ("torchvision mobilenet_v3_small", torchvision.models.mobilenet_v3_small()),
        ("timm mobilenetv3_small_100", timm.create_model("mobilenetv3_small_100")),
    ):
        for layer in model.modules():  # logits of a useful size (default init gives ~1e-9)
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, 0, 0.2)
        stem = "symmetric-" + name.split()[0]  # not timm.onnx: that is the tf_ graph under test
        file = tmp / (stem + ".pth")
        torch.save(model.state_dict(), file)
        loaded = load_model(str(file), progress=False)
        graph = tmp / (stem + ".onnx")
        diff = export_verified(loaded.model, graph, loaded.card.preprocess)
        count = ops(graph)
        lines.append(
            f"{name}: {sum(count.values())} nodes, Shape {count['Shape']}, Pad {count['Pad']}, "
            f"logit difference from PyTorch {diff:.1e}"
        )
        if count["Shape"] or diff > 1e-4:
            lines.append("  FAILED: shape arithmetic or a difference above 1e-4")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    import timm
    import torch

    from mnv3cli.inference.export import export_onnx
    from mnv3cli.inference.verify import onnx_difference, sample_batch
    from mnv3cli.weights.loader import load_model
    from mnv3cli.weights.remap import remap_state_dict

    torch.set_num_threads(THREADS)
    tmp = Path(tempfile.mkdtemp(prefix="mnv3-static-"))
    loaded = load_model(str(WEIGHTS), progress=False)
    static = export_onnx(loaded.model, tmp / "static.onnx")
    dynamic = export_onnx(loaded.model, tmp / "dynamic.onnx", static=False)
    timm_model = timm.create_model("tf_mobilenetv3_small_100").eval()
    timm_model.load_state_dict(remap_state_dict(loaded.model.state_dict(), timm_model.state_dict()))
    timm_graph = tmp / "timm-tf.onnx"
    with torch.no_grad():
        torch.onnx.export(
            timm_model,
            (torch.randn(1, 3, 224, 224),),
            str(timm_graph),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )

    batch = sample_batch(loaded.card.preprocess)
    logits = {
        name: ort_session(path)(batch)
        for name, path in (("static", static), ("dynamic", dynamic), ("timm", timm_graph))
    }
    print(
        f"static graph vs PyTorch: {onnx_difference(loaded.model, static, batch):.1e}; vs the dynamic "
        f"graph: {np.abs(logits['static'] - logits['dynamic']).max():.1e}; vs timm's: "
        f"{np.abs(logits['static'] - logits['timm']).max():.1e}"
    )
    for name, path in (("mnv3 static", static), ("mnv3 dynamic", dynamic), ("timm tf_", timm_graph)):
        count = ops(path)
        print(f"{name:14} {sum(count.values()):4d} nodes ({count['Constant']} constants, {count['Shape']} Shape)")
    for line in symmetric_checks(tmp):
        print(line)

    runners = {
        "mnv3 static": ort_session(static),
        "mnv3 dynamic": ort_session(dynamic),
        "timm tf_": ort_session(timm_graph),
    }
    ov = openvino_model(static)
    if ov is not None:
        runners["openvino f32"] = ov
    results, medians = {}, {}
    for batch_size in (1, 32):
        times = {name: [] for name in runners}
        for _ in range(args.repeats):
            for name, run in runners.items():
                runs = args.runs if batch_size == 1 else max(5, args.runs // 8)
                times[name].append(time_per_image(run, batch_size, runs))
        results[batch_size] = {name: min(t) for name, t in times.items()}
        medians[batch_size] = {name: statistics.median(t) for name, t in times.items()}

    print(f"\nms per image, bare runtimes, {THREADS} threads: best (median) of {args.repeats} rounds")
    print(f"{'graph':14} {'batch 1':>15} {'batch 32':>15}")
    for name in runners:
        print(
            f"{name:14} {results[1][name]:6.3f} ({medians[1][name]:6.3f}) "
            f"{results[32][name]:6.3f} ({medians[32][name]:6.3f})"
        )
    failed = False
    for batch_size in (1, 32):
        r = results[batch_size]
        vs_old = r["mnv3 static"] / r["mnv3 dynamic"]
        vs_timm = r["mnv3 static"] / r["timm tf_"]
        line = f"batch {batch_size}: static/dynamic {vs_old:.2f} x, static/timm {vs_timm:.2f} x (bar <= 0.75)"
        failed |= vs_timm > BARS["vs_timm"]
        if "openvino f32" in r:
            vs_ov = r["mnv3 static"] / r["openvino f32"]
            line += f", static/openvino {vs_ov:.2f} x (bar <= 1.0)"
            failed |= vs_ov > BARS["vs_openvino"]
        print(line)
    print("FAILED: a bar was missed" if failed else "all bars met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
