"""Import Google's MobileNetV3 TFLite models (float, int8 or uint8) as fp32 weights of our model.

The graph is parsed with the ``tflite`` package (the flatbuffer schema bindings, a dependency of
mnv3cli). Its CONV_2D / DEPTHWISE_CONV_2D (/ FULLY_CONNECTED) ops, in execution order,
are exactly the convolutions and linear layers of :class:`~mnv3cli.model.MobileNetV3` in module
order, so they are paired by position and every shape is checked. What the converter undoes:

* quantization: ``(q - zero_point) * scale``, per output channel where the file has several scales;
* layouts: CONV_2D ``[out, kh, kw, in]``, DEPTHWISE_CONV_2D ``[1, kh, kw, channels]``;
* folded BatchNorm: the folded kernel goes into our conv, the folded bias into our BatchNorm, which
  is made an identity plus bias (weight 1, mean 0, variance ``1 - eps``);
* the squeeze-excite gate: our gate is ``relu6(x + 3) / 6``; some converters fold the ``+ 3`` into
  the conv bias (int8 file), others keep an explicit ADD (uint8 file). The graph around each gate is
  read to find out which, instead of assuming;
* the 1001-way classifier: output 0 is "background" and is dropped.

TensorFlow's "SAME" padding on stride-2 convolutions is the model's ``tf_padding=True``; the loader
sets it and attaches the TF preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..model.layers import ConvBNAct, SqueezeExcite
from .infer import kernel_shape

MAGIC = b"TFL3"  # flatbuffer file identifier of TFLite models, at byte offset 4
KERNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
HARD_SIGMOID_OFFSET = 3.0
# Options tables of the ops whose strides or fused activations the converter reads.
OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "ADD": "AddOptions",
    "MUL": "MulOptions",
}


@dataclass
class Kernel:
    """One convolution / dense op of the graph, dequantized to fp32 in PyTorch's layout."""

    name: str  # the weight tensor's name in the graph, for error messages
    op: str
    weight: np.ndarray  # conv [out, in, kh, kw], depthwise [channels, 1, kh, kw], dense [out, in]
    bias: np.ndarray | None
    stride: int
    # When a hard-sigmoid gate ``relu6(. + c) / 6`` follows this op: the constant ``c`` the graph
    # adds after it (0 when the +3 is already in the bias). None when no such gate follows.
    gate_offset: float | None


def _tflite():
    try:
        import tflite
    except ImportError:
        raise UserError(
            "reading .tflite files needs the 'tflite' package, a dependency of mnv3cli "
            "that is missing here: pip install tflite"
        ) from None
    return tflite


class _Graph:
    """The main subgraph of a TFLite model, with the lookups the converter needs."""

    def __init__(self, data: bytes, source: str) -> None:
        tfl = _tflite()
        from tflite.utils import opcode2name

        self.tfl, self.data, self.source = tfl, data, source
        self.model = tfl.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() < 1:
            raise UserError(f"{source}: TFLite file has no graph")
        self.graph = self.model.Subgraphs(0)
        self.ops = [self.graph.Operators(i) for i in range(self.graph.OperatorsLength())]
        self.op_names = []
        for op in self.ops:
            code = self.model.OperatorCodes(op.OpcodeIndex())
            # newer files keep the code in BuiltinCode, old ones in DeprecatedBuiltinCode
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            try:
                self.op_names.append(opcode2name(builtin))
            except ValueError:
                self.op_names.append(f"CUSTOM_{builtin}")
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for i, op in enumerate(self.ops):
            for t in self._inputs(op):
                self.consumers.setdefault(t, []).append(i)
            for t in op.OutputsAsNumpy():
                self.producer[int(t)] = i
        types = tfl.TensorType
        self.dtypes = {
            types.FLOAT32: "<f4",
            types.FLOAT16: "<f2",
            types.INT32: "<i4",
            types.UINT8: "u1",
            types.INT8: "i1",
            types.INT16: "<i2",
            types.INT64: "<i8",
        }
        self.int_ranges = {types.UINT8: (0, 255), types.INT8: (-128, 127)}

    @staticmethod
    def _inputs(op) -> list[int]:
        return [int(t) for t in op.InputsAsNumpy() if t >= 0] if op.InputsLength() else []

    def tensor_name(self, index: int) -> str:
        return self.graph.Tensors(index).Name().decode(errors="replace")

    def constant(self, index: int) -> np.ndarray | None:
        """A constant tensor, dequantized to fp32 in the file's layout; None if computed at run time."""
        tensor = self.graph.Tensors(index)
        buffer = self.model.Buffers(tensor.Buffer())
        if buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = np.frombuffer(self.data, np.uint8, buffer.Size(), buffer.Offset())
        elif buffer.DataLength():
            raw = buffer.DataAsNumpy()
        else:
            producer = self.producer.get(index)
            if producer is not None and self.op_names[producer] == "DEQUANTIZE":  # fp16 weights
                return self.constant(self._inputs(self.ops[producer])[0])
            return None
        if tensor.Type() not in self.dtypes:
            raise UserError(f"{self.source}: tensor {self.tensor_name(index)!r} has an unsupported type")
        shape = tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        value = np.frombuffer(raw.tobytes(), self.dtypes[tensor.Type()]).reshape(shape).astype(np.float32)
        quant = tensor.Quantization()
        if quant is not None and quant.ScaleLength():
            scale = quant.ScaleAsNumpy().astype(np.float32)
            zero = quant.ZeroPointAsNumpy().astype(np.float32) if quant.ZeroPointLength() else np.zeros_like(scale)
            if scale.size > 1:  # per-channel: broadcast along the quantized dimension
                axis = quant.QuantizedDimension()
                bshape = [1] * value.ndim
                bshape[axis] = scale.size
                scale, zero = scale.reshape(bshape), zero.reshape(bshape)
            value = (value - zero) * scale
        return value

    def options(self, i: int):
        """The builtin options table of op ``i`` (one of :data:`OPTIONS`), or None."""
        cls_name = OPTIONS.get(self.op_names[i])
        table = self.ops[i].BuiltinOptions()
        if cls_name is None or table is None:
            return None
        cls = getattr(self.tfl, cls_name)
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return opts

    def applies_relu6(self, i: int) -> bool:
        """Whether op ``i`` ends in ReLU6: fused, or implied by its quantized output range [0, 6]."""
        opts = self.options(i)
        if (
            opts is not None
            and hasattr(opts, "FusedActivationFunction")
            and opts.FusedActivationFunction() == self.tfl.ActivationFunctionType.RELU6
        ):
            return True
        out = self.graph.Tensors(int(self.ops[i].OutputsAsNumpy()[0]))
        quant, bits = out.Quantization(), self.int_ranges.get(out.Type())
        if bits is None or quant is None or quant.ScaleLength() != 1 or quant.ZeroPointLength() != 1:
            return False
        scale, zero = float(quant.Scale(0)), int(quant.ZeroPoint(0))
        low, high = (bits[0] - zero) * scale, (bits[1] - zero) * scale
        return abs(low) < 1e-6 and abs(high - 6) < 0.05

    def scalar_operand(self, i: int, skip: int) -> float | None:
        """The constant single-value operand of binary op ``i`` other than tensor ``skip``."""
        for t in self._inputs(self.ops[i]):
            if t != skip:
                value = self.constant(t)
                if value is not None and value.size == 1:
                    return float(value.reshape(()))
        return None

    def gate_offset(self, i: int) -> float | None:
        """Follow op ``i``'s output through ``[ADD c] [RELU6] MUL 1/6``: the gate's offset ``c``.

        A hard-swish (whose input also feeds the final multiply) or any other pattern gives None.
        """
        offset, relu6 = 0.0, self.applies_relu6(i)
        tensor = int(self.ops[i].OutputsAsNumpy()[0])
        for _ in range(3):
            users = self.consumers.get(tensor, [])
            if len(users) != 1:
                return None
            j, name = users[0], self.op_names[users[0]]
            value = self.scalar_operand(j, tensor) if name in ("ADD", "MUL") else None
            if name == "ADD" and value is not None and not relu6:
                offset, relu6 = offset + value, self.applies_relu6(j)
            elif name == "RELU6" and not relu6:
                relu6 = True
            elif name == "MUL" and value is not None and relu6 and abs(value * 6 - 1) < 0.01:
                return offset
            else:
                return None
            tensor = int(self.ops[j].OutputsAsNumpy()[0])
        return None

    def kernel(self, i: int) -> Kernel:
        op, name = self.ops[i], self.op_names[i]
        inputs = [int(t) for t in op.InputsAsNumpy()]
        weight = self.constant(inputs[1])
        label = self.tensor_name(inputs[1])
        if weight is None:
            raise UserError(f"{self.source}: weights of {name} {label!r} are not constants")
        bias = self.constant(inputs[2]) if len(inputs) > 2 and inputs[2] >= 0 else None
        if name == "CONV_2D" and weight.ndim == 4:
            weight = weight.transpose(0, 3, 1, 2)
        elif name == "DEPTHWISE_CONV_2D" and weight.ndim == 4:
            weight = weight.transpose(3, 0, 1, 2)
        elif name != "FULLY_CONNECTED" or weight.ndim != 2:
            raise UserError(f"{self.source}: {name} {label!r} has an unexpected shape {weight.shape}")
        opts = self.options(i)
        stride = opts.StrideH() if name != "FULLY_CONNECTED" else 1
        if name != "FULLY_CONNECTED" and opts.StrideW() != stride:
            raise UserError(f"{self.source}: {name} {label!r} has unequal strides")
        return Kernel(label, name, np.ascontiguousarray(weight), bias, stride, self.gate_offset(i))


def read_tflite(path: Path) -> list[Kernel]:
    """Every convolution/dense op of a TFLite model, in execution order, as fp32 kernels."""
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != MAGIC:
        raise UserError(f"{path}: not a TFLite model (no TFL3 identifier)")
    try:
        graph = _Graph(data, str(path))
        return [graph.kernel(i) for i, name in enumerate(graph.op_names) if name in KERNEL_OPS]
    except UserError:
        raise
    except Exception as exc:  # a damaged flatbuffer fails anywhere, with any error
        raise UserError(f"{path}: damaged TFLite model ({type(exc).__name__}: {exc})") from None


def tflite_state_dict(
    kernels: list[Kernel], model: nn.Module, *, background: bool, source: str
) -> dict[str, torch.Tensor]:
    """A state dict for ``model`` (built with ``tf_padding=True``) holding the TFLite kernels.

    ``background``: the file's classifier has one more output, class 0, which is dropped.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(layers) != len(kernels):
        raise UserError(
            f"{source}: has {len(kernels)} convolution/dense ops but the model needs "
            f"{len(layers)}; it is weights for another architecture"
        )
    names = {id(m): n for n, m in model.named_modules()}
    norm_of = {id(m.conv): m.bn for m in model.modules() if isinstance(m, ConvBNAct)}
    gates = {id(m.expand) for m in model.modules() if isinstance(m, SqueezeExcite)}
    state = {}
    for layer, k in zip(layers, kernels, strict=True):
        weight = torch.from_numpy(k.weight)
        bias = torch.from_numpy(k.bias) if k.bias is not None else torch.zeros(weight.shape[0])
        if layer is model.classifier and background:
            weight, bias = weight[1:], bias[1:]
        if kernel_shape(weight.shape) != kernel_shape(layer.weight.shape):
            raise UserError(
                f"{source}: {k.op} {k.name!r} has shape {tuple(weight.shape)} but the "
                f"model's {names[id(layer)]!r} needs {tuple(layer.weight.shape)}"
            )
        if isinstance(layer, nn.Conv2d) and layer.stride[0] != k.stride:
            raise UserError(
                f"{source}: {k.op} {k.name!r} has stride {k.stride} but the model's "
                f"{names[id(layer)]!r} has {layer.stride[0]}"
            )
        if id(layer) in gates:
            if k.gate_offset is None:
                raise UserError(
                    f"{source}: squeeze-excite op {k.name!r} is not followed by a "
                    "hard-sigmoid gate; not a MobileNetV3 graph"
                )
            bias = bias + (k.gate_offset - HARD_SIGMOID_OFFSET)
        name = names[id(layer)]
        state[f"{name}.weight"] = weight.reshape(layer.weight.shape).contiguous()
        bn = norm_of.get(id(layer))
        if bn is None:
            state[f"{name}.bias"] = bias
            continue
        prefix = names[id(bn)]
        state |= {
            f"{prefix}.weight": torch.ones_like(bias),
            f"{prefix}.bias": bias,
            f"{prefix}.running_mean": torch.zeros_like(bias),
            f"{prefix}.running_var": torch.full_like(bias, 1.0 - bn.eps),
            f"{prefix}.num_batches_tracked": torch.tensor(0),
        }
    return state
