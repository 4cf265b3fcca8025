"""What an exported graph (``--weights model.onnx`` / ``model.xml``) must be before its answers are believed.

The file is untrusted, like its card (whose fields :class:`~mnv3cli.registry.ModelCard` bounds): a
graph with another number of outputs than its card has class names would print other classes' names,
an ``[N, 1000, 1, 1]`` output or a uint8 / one-channel input would fail deep inside a runtime (or,
on OpenVINO, be cast silently), and a NaN or infinity among the weights makes every answer a NaN. So
the one input must be float32 ``[batch, 3, S, S]`` with a fixed ``S``, the first output
``[batch, classes]`` with exactly the card's classes, and every floating-point constant finite;
anything else is refused at load with one line naming the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..registry import ModelCard

Dims = Sequence[int | str | None]  # a static size, or a dynamic one (its name, or None)


_ROLES = {4: ("batch", "channels", "height", "width"), 2: ("batch", "classes")}


def describe(dims: Dims) -> str:
    """``[batch, 3, 224, 224]``: static sizes as numbers, dynamic ones by their name in the graph, or
    (unnamed) by their role in an image classifier's input or output."""
    roles = _ROLES.get(len(dims), ("?",) * len(dims))
    return (
        "["
        + ", ".join(str(d) if isinstance(d, int) else (d or role) for d, role in zip(dims, roles, strict=True))
        + "]"
    )


def check_io(path: Path, card: ModelCard, dtype: str, inputs: Dims, outputs: Dims) -> None:
    """Refuse a graph whose input or output does not fit an image classifier with ``card``'s classes.

    ``dtype``: the input's element type, ``"float32"`` when it is one.
    """
    what = f"{path}: not an mnv3 image classifier:"
    shape = describe(inputs)
    if dtype != "float32":
        raise UserError(f"{what} its input is {dtype} {shape}; it must be float32 [batch, 3, S, S]")
    if len(inputs) != 4 or inputs[1] != 3:
        raise UserError(f"{what} its input is {shape}; it must be [batch, 3, S, S] (3 colour channels)")
    height, width = inputs[2], inputs[3]
    if not (isinstance(height, int) and isinstance(width, int)):
        raise UserError(
            f"{what} its input {shape} has no fixed height and width; export it with a fixed "
            "size (`mnv3 export --resolution N`)"
        )
    if height != width:
        raise UserError(f"{what} its input is {shape}; it must take square images [batch, 3, S, S]")
    if len(outputs) != 2 or outputs[1] != card.num_classes:
        raise UserError(
            f"{what} its output is {describe(outputs)} but its card names {card.num_classes} classes; "
            f"it must be [batch, {card.num_classes}]"
        )


def check_finite(path: Path, constants) -> None:
    """Refuse a graph with a NaN or infinity among ``constants`` (``(name, array)`` pairs)."""
    for name, array in constants:
        array = np.asarray(array)
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(array.size - np.isfinite(array).sum())
            raise UserError(f"{path}: its weights are damaged: {bad:,} non-finite value(s) (NaN/inf) in {name}")


def check_onnx(path: Path, session, card: ModelCard) -> None:
    """An ONNX Runtime session's graph (see the module docstring)."""
    import onnx

    inp, out = session.get_inputs()[0], session.get_outputs()[0]
    dtype = "float32" if inp.type == "tensor(float)" else inp.type.removeprefix("tensor(").rstrip(")")
    check_io(path, card, dtype, inp.shape, out.shape)
    graph = onnx.load(str(path), load_external_data=False).graph  # ONNX Runtime has read it: it parses
    check_finite(path, _onnx_constants(graph))


def _onnx_constants(graph):
    """Initializers stored inside the file and Constant nodes; those in external data files are
    read by ONNX Runtime only, and a non-finite one shows as a per-image error when run."""
    from onnx import TensorProto, numpy_helper

    for tensor in graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            yield tensor.name, numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_location != TensorProto.EXTERNAL:
                    yield node.output[0], numpy_helper.to_array(attribute.t)


def check_openvino(path: Path, model, card: ModelCard) -> None:
    """An ``openvino.Model`` (read from IR or ONNX) (see the module docstring)."""
    inp, out = model.inputs[0], model.outputs[0]
    dtype = str(inp.get_element_type().to_dtype())
    check_io(path, card, dtype, _ov_dims(inp.get_partial_shape()), _ov_dims(out.get_partial_shape()))
    check_finite(
        path,
        ((op.get_friendly_name(), op.get_data()) for op in model.get_ordered_ops() if op.get_type_name() == "Constant"),
    )


def _ov_dims(shape) -> list[int | None]:
    if shape.rank.is_dynamic:
        return [None]
    return [d.get_length() if d.is_static else None for d in shape]
