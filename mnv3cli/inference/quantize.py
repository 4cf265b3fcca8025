"""int8 graphs: NNCF post-training quantization of the static ONNX graph, and layers kept in float.

Why NNCF and not ``onnxruntime.quantization``: on MobileNetV3-Small with the int8 TFLite weights
(100 calibration images, the other half of the dev images held out), ONNX Runtime's static QDQ
quantization took top-1 from 76.4 % to 28 % (per-channel weights, MinMax) or 52 % (percentile
99.99); NNCF's default preset lost 0.8 points. NNCF writes a QDQ ONNX graph that both ONNX Runtime
and OpenVINO run (OpenVINO as real int8 kernels), so one quantized graph serves both formats.

Keeping a layer in float is done on that graph, not by quantizing again: its activation inputs are
rewired around their Quantize/DequantizeLinear pair (weights keep their int8 grid, which costs
little: the budget loop measures the result either way), and its weights and biases are the fp32
graph's. That makes each step of the budget loop (:mod:`.int8`) a graph edit instead of a new
calibration. Which layers to keep comes from a measurement on calibration images (never the
held-out ones): how much keeping each layer alone in float brings the outputs back to fp32's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

COMPUTE_OPS = ("Conv", "Gemm", "MatMul", "Mul", "Add", "ReduceMean", "GlobalAveragePool")
PASS_THROUGH = ("Pad", "Flatten")  # ops between a DequantizeLinear and the layer that reads it


@dataclass(frozen=True)
class Layer:
    """A compute node with quantized activation inputs, and where each comes from."""

    node: str  # ONNX node name, e.g. /stages/stages.1/stages.1.0/depthwise/conv/Conv
    label: str  # the model's module path, e.g. stages.1.0.depthwise.conv (+ " (Mul)" for non-convs)
    quantized_inputs: tuple[str, ...] = field(default=())  # float tensors whose quantizer feeds it


def quantize_graph(fp32_path: str | os.PathLike, calibration: np.ndarray, **options):
    """NNCF post-training quantization (default preset) of the ONNX graph at ``fp32_path`` with the
    preprocessed ``calibration`` images ``[N, 3, H, W]``; returns the QDQ ``onnx.ModelProto``.
    ``options`` go to ``nncf.quantize`` (``benchmarks/int8_budget.py`` compares some)."""
    import contextlib
    import io
    import logging

    # NNCF imports torch's extension loader, which warns about CUDA on CPU-only machines, and draws
    # progress bars on stdout, where results go: both silenced (mnv3 says what it does on stderr)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf
    import onnx

    logging.getLogger("nncf").setLevel(logging.ERROR)
    model = onnx.load(str(fp32_path))
    name = model.graph.input[0].name
    dataset = nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))], lambda x: {name: x})
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(model, dataset, subset_size=len(calibration), **options)


def _label(node) -> str:
    """``/stages/stages.1/stages.1.0/se/Mul`` -> ``stages.1.0.se (Mul)``: the torch module path."""
    parts = [p for p in node.name.split("/") if p][:-1]
    path: list[str] = []
    for part in parts:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    label = ".".join(path) or node.name
    return label if node.op_type in ("Conv", "Gemm") else f"{label} ({node.op_type})"


def _producers(graph) -> dict:
    return {out: node for node in graph.node for out in node.output}


def _quantized_source(tensor: str, producers: dict) -> tuple[str, str] | None:
    """(tensor to rewire, its float original) when ``tensor`` is DequantizeLinear(QuantizeLinear(x))
    of an activation, possibly behind pass-through ops; else None."""
    node = producers.get(tensor)
    consumer_input = tensor
    while node is not None and node.op_type in PASS_THROUGH:
        consumer_input, node = node.input[0], producers.get(node.input[0])
    if node is None or node.op_type != "DequantizeLinear":
        return None
    quant = producers.get(node.input[0])
    if quant is None or quant.op_type != "QuantizeLinear":
        return None  # a weight: int8 initializer -> DequantizeLinear
    return consumer_input, quant.input[0]


def find_layers(qmodel) -> list[Layer]:
    """The compute nodes of a QDQ graph that read quantized activations, in graph order."""
    graph = qmodel.graph
    producers = _producers(graph)
    found = []
    for node in graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        sources = [_quantized_source(t, producers) for t in node.input]
        inputs = tuple(s[1] for s in sources if s is not None)
        if inputs:
            found.append(Layer(node.name, _label(node), inputs))
    return found


def keep_in_float(qmodel, fp32model, nodes: set[str]):
    """A copy of the QDQ graph where the layers named in ``nodes`` are float again: their
    activation inputs bypass their Quantize/DequantizeLinear pairs, and their weights and biases are
    the fp32 graph's (NNCF's bias correction tuned the quantized ones for int8 inputs). Nodes left
    without consumers are removed."""
    import copy

    model = copy.deepcopy(qmodel)
    graph = model.graph
    producers = _producers(graph)
    by_name = {node.name: node for node in graph.node}
    originals = {node.name: node for node in fp32model.graph.node}
    fp32_inits = {init.name: init for init in fp32model.graph.initializer}
    for name in nodes:
        node = by_name[name]
        for position, tensor in enumerate(node.input):
            source = _quantized_source(tensor, producers)
            original = originals.get(name)
            if (
                source is None
                and original is not None
                and position < len(original.input)
                and original.input[position] in fp32_inits
            ):  # a weight or bias: the float one
                init = copy.deepcopy(fp32_inits[original.input[position]])
                init.name = f"{init.name}.float"
                graph.initializer.append(init)
                node.input[position] = init.name
            if source is None:
                continue
            rewire, float_tensor = source
            if rewire == tensor:
                node.input[position] = float_tensor
            else:  # behind a Pad: the Pad reads the float tensor
                for pad in graph.node:
                    if pad.op_type in PASS_THROUGH and pad.input[0] == rewire:
                        pad.input[0] = float_tensor
    _prune(graph)
    used = {t for node in graph.node for t in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return model


def _prune(graph) -> None:
    """Remove nodes whose outputs nobody reads (the bypassed Q/DQ pairs), repeatedly."""
    while True:
        used = {t for node in graph.node for t in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def sensitivity(qmodel, fp32model, layers: list[Layer], reference: np.ndarray, logits: Callable) -> dict[str, float]:
    """How much keeping each layer alone in float brings the int8 graph's outputs back towards
    fp32's: the drop in mean KL divergence from the fp32 probabilities ``reference`` (logits on
    calibration images). ``logits(model)`` runs an ``onnx.ModelProto`` on those same images."""
    target = _log_softmax(reference)
    probs = np.exp(target)

    def divergence(model) -> float:
        return float((probs * (target - _log_softmax(logits(model)))).sum(1).mean())

    base = divergence(qmodel)
    return {layer.node: base - divergence(keep_in_float(qmodel, fp32model, {layer.node})) for layer in layers}


def plan(layers: list[Layer], gain: dict[str, float]) -> list[tuple[str, list[Layer]]]:
    """Nested sets of layers to keep in float, in the order the budget loop tries them: none, then
    the 1, 2, 4, 8 ... layers whose float version helped most (:func:`sensitivity`), never all of
    them (that would be no int8 at all). Each step says what it keeps."""
    ranked = sorted(layers, key=lambda layer: -gain.get(layer.node, 0.0))
    steps: list[tuple[str, list[Layer]]] = [("nothing", [])]
    size = 1
    while size < len(ranked):
        kept = ranked[:size]
        steps.append((", ".join(layer.label for layer in kept[len(steps[-1][1]) :]), kept))
        size *= 2
    return steps
