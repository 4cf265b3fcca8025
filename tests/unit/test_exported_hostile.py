"""An exported file's card and graph are untrusted (issue 24, item 4): every card field is bounded at
load, the graph must be a float32 [N, 3, S, S] -> [N, classes] classifier with finite weights, and
each refusal is one UserError naming the file. Graphs: tests/hostile_graphs.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto

from hostile_graphs import SIZE, card, graph
from mnv3cli.errors import UserError
from mnv3cli.inference.runtime import open_runtime

BACKENDS = ("onnxruntime", "openvino")


def refused(path, backend: str, *needles: str) -> str:
    with pytest.raises(UserError) as info:
        open_runtime(str(path), backend=backend)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_a_well_formed_hand_made_graph_runs(tmp_path):
    path = graph(tmp_path / "ok.onnx")
    for backend in BACKENDS:
        runtime = open_runtime(str(path), backend=backend)
        logits = runtime.backend(np.ones((2, 3, SIZE, SIZE), np.float32))
        assert logits.shape == (2, 4)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"resize": 60000}, "resize 60000"),
        ({"input_size": 0}, "input_size 0"),
        ({"interpolation": "lanczos9"}, "lanczos9"),
        ({"std": [0, 0, 0]}, "std"),
        ({"std": [1, float("nan"), 1]}, "std"),
        ({"mean": [0, 0]}, "mean"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"class_names": [1, 2, 3, 4]}, "class_names"),
        ({"wordnet_ids": ["n1"]}, "WordNet"),
    ],
)
def test_every_card_field_is_bounded_at_load(tmp_path, fields, needle):
    path = graph(tmp_path / "bad-card.onnx", card(4, **fields))
    refused(path, "onnxruntime", "model card is damaged", needle)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"outputs": 10}, "[batch, 10]"),  # a 10-output graph under a 4-class card
        ({"outputs": 2000}, "[batch, 2000]"),
        ({"output_4d": True}, "[batch, 4, 1, 1]"),
        ({"channels": 1}, "3 colour channels"),
        ({"dtype": TensorProto.UINT8}, "uint8"),
        ({"input_dims": ["batch", 3, "height", "width"]}, "no fixed height and width"),
        ({"input_dims": ["batch", 3, SIZE, SIZE + 8]}, "square"),
    ],
)
def test_the_graph_must_be_a_classifier_of_the_cards_classes(tmp_path, backend, kwargs, needle):
    path = graph(tmp_path / "bad-graph.onnx", card(4), **{"outputs": 4, **kwargs})
    message = refused(path, backend, "not an mnv3 image classifier", needle)
    assert "batchxbatch" not in message


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(tmp_path, backend, bad):
    weight = np.eye(3, 4, dtype=np.float32)
    weight[1, 2] = bad
    path = graph(tmp_path / "nan.onnx", card(4), weight=weight)
    refused(path, backend, "non-finite", "damaged")


def test_a_hand_made_classifier_with_log_features_gives_non_finite_logits_for_black_images(tmp_path):
    """The fixture of the per-image test in tests/cli: finite weights, non-finite logits for some images."""
    path = graph(tmp_path / "log.onnx", card(4), log=True)
    runtime = open_runtime(str(path), backend="onnxruntime")
    images = np.stack([np.zeros((3, SIZE, SIZE), np.float32), np.ones((3, SIZE, SIZE), np.float32)])
    logits = runtime.backend(images)
    assert not np.isfinite(logits[0]).all() and np.isfinite(logits[1]).all()


def test_openvino_errors_show_their_reason_not_where_they_were_raised(tmp_path):
    """Issue 24, item 7: OpenVINO's message opens with source locations; the reason follows."""
    path = tmp_path / "garbage.xml"
    path.write_text("<net><layers></layers>", encoding="utf-8")  # cut off: no IR, no other format
    message = refused(path, "auto", "not a usable OpenVINO/ONNX model", "Unable to read the model")
    assert "core.cpp" not in message and "Exception from" not in message


def test_openvino_reason_keeps_every_reason_line():
    from mnv3cli.inference.openvino_backend import reason

    error = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:84:\n"
        "Check 'false' failed at src/frontends/common/src/frontend.cpp:54:\n"
        "FrontEnd API failed with GeneralFailure:\nmodel.bin: cannot open\n\n"
    )
    assert reason(error) == "FrontEnd API failed with GeneralFailure: model.bin: cannot open"
    assert reason(RuntimeError("Exception from src/a.cpp:1:\n")) == "RuntimeError"
