"""Hand-made exported graphs for the tests of untrusted exported files (issue 24, item 4): a mean
over the pixels and a linear layer, made with onnx.helper, so each defect is exactly the one under
test."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mnv3cli.inference.exported import CARD_KEY
from mnv3cli.registry import ModelCard, Preprocess

SIZE = 32
PRE = Preprocess(input_size=SIZE, resize=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def card(classes: int = 4, **fields) -> dict:
    d = ModelCard("custom", [f"class {i}" for i in range(classes)], PRE).to_dict()
    for key, value in fields.items():
        if key in d["preprocess"]:
            d["preprocess"][key] = value
        else:
            d[key] = value
    return d


def graph(
    path,
    card_dict: dict | None = None,
    *,
    outputs: int = 4,
    channels: int = 3,
    dtype=TensorProto.FLOAT,
    input_dims=None,
    output_4d: bool = False,
    weight: np.ndarray | None = None,
    log: bool = False,
):
    """x -> [Cast] -> mean over H, W -> [Log] -> MatMul W -> Add b -> [Reshape to N,C,1,1]."""
    dims = input_dims or ["batch", channels, SIZE, SIZE]
    w = weight if weight is not None else np.eye(channels, outputs, dtype=np.float32)
    nodes, inits, x = (
        [],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.zeros(outputs, np.float32), "b")],
        "x",
    )
    if dtype != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
        x = "xf"
    nodes.append(helper.make_node("ReduceMean", [x], ["m"], axes=[2, 3], keepdims=0))
    feature = "m"
    if log:
        nodes.append(helper.make_node("Log", ["m"], ["lm"]))
        feature = "lm"
    nodes += [helper.make_node("MatMul", [feature, "W"], ["z"]), helper.make_node("Add", ["z", "b"], ["logits"])]
    out_dims = ["batch", outputs]
    if output_4d:
        inits.append(numpy_helper.from_array(np.array([-1, outputs, 1, 1], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["logits", "shape"], ["out"]))
        out_dims = ["batch", outputs, 1, 1]
    final = "out" if output_4d else "logits"
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", dtype, dims)],
        [helper.make_tensor_value_info(final, TensorProto.FLOAT, out_dims)],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    text = json.dumps(card_dict if card_dict is not None else card(outputs), allow_nan=True)
    helper.set_model_props(model, {CARD_KEY: text})
    onnx.save(model, str(path))
    return path
