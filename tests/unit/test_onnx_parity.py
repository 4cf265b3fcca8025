"""ONNX Runtime (the cached graph ``predict`` runs) and eager PyTorch agree on every dev image, and
OpenVINO (f32) on the same graph is within 0.2 points of top-1.

Each batch of 50 is decoded once and fed to both backends: one pass per backend over all 500
images of ``../shared/data/imagenet-sample/dev``, with the int8 TFLite weights.
"""

from __future__ import annotations

import numpy as np

from mnv3cli.data import is_image_file, iter_batches


def test_same_top1_as_torch_on_every_dev_image(int8_tflite, imagenet_dev):
    from mnv3cli.inference.backends import TorchBackend
    from mnv3cli.inference.runtime import open_runtime
    from mnv3cli.weights.loader import load_model

    onnx = open_runtime(str(int8_tflite), backend="onnxruntime")
    loaded = load_model(str(int8_tflite))
    torch_backend = TorchBackend(loaded.model)
    assert onnx.backend.name == "onnxruntime" and onnx.card.preprocess == loaded.card.preprocess
    assert list(onnx.card.class_names) == list(loaded.card.class_names)

    paths = sorted(str(p) for p in imagenet_dev.rglob("*") if is_image_file(p))
    assert len(paths) == 500
    openvino = open_runtime(str(int8_tflite), backend="openvino")  # the same cached graph, f32
    top1 = {"onnxruntime": [], "torch": [], "openvino": []}
    largest = 0.0
    for batch in iter_batches(paths, onnx.card.preprocess, batch_size=50):
        assert not batch.errors
        a, b = onnx.backend(batch.images), torch_backend(batch.images)
        top1["onnxruntime"] += a.argmax(1).tolist()
        top1["torch"] += b.argmax(1).tolist()
        top1["openvino"] += openvino.backend(batch.images).argmax(1).tolist()
        largest = max(largest, float(np.abs(a - b).max()))
    assert len(top1["torch"]) == 500
    differ = [paths[i] for i, (x, y) in enumerate(zip(top1["onnxruntime"], top1["torch"], strict=False)) if x != y]
    assert not differ, f"top-1 differs on {differ}"
    assert largest < 1e-3, largest  # same graph, same input: only float rounding apart
    labels = [p.split("/")[-2] for p in paths]  # wnid folders; correct when the wnid matches
    wnids = onnx.card.wordnet_ids
    correct = {k: sum(wnids[i] == w for i, w in zip(v, labels, strict=False)) for k, v in top1.items()}
    assert correct["onnxruntime"] == 394  # 78.8 %, as evaluate reports
    assert abs(correct["openvino"] - correct["onnxruntime"]) <= 1  # 0.2 points of 500 images
