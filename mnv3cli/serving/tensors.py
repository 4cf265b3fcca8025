"""Tensors of the Open Inference Protocol: the request as JSON and Triton's binary tensor extension.

A request body is a JSON header, optionally followed by the raw bytes of tensors (its length is then
``Inference-Header-Content-Length``; each binary tensor says its ``binary_data_size``, in input
order). ``BYTES`` elements travel as a 4-byte little-endian length then the bytes; ``FP32`` as
little-endian floats. Everything here comes from a client: every size is checked against what was
sent before it is used, and each problem is a 400 naming the tensor.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from .uploads import ClientError

HEADER_LENGTH = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")


@dataclass
class Tensor:
    """An input (``value``: list of bytes, or an array), or a requested/answered output."""

    name: str
    datatype: str = ""
    shape: list[int] = field(default_factory=list)
    value: Any = None
    binary: bool = False
    parameters: dict = field(default_factory=dict)


@dataclass
class Inference:
    """What a request asks: one input, the outputs wanted (none: all, in JSON or binary per
    ``binary_data_output``), its ``id``."""

    input: Tensor
    outputs: list[Tensor]
    id: str | None
    binary_output: bool

    def default_output(self, name: str) -> Tensor:
        return Tensor(name, binary=self.binary_output)


def parse_request(body: bytes, header_length: str | None, inputs: dict[str, str], max_items: int) -> Inference:
    """The request in ``body``; ``inputs`` maps each accepted input name to its datatype; at most
    ``max_items`` elements (images) in one request."""
    if header_length is None:
        header, binary = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise ClientError(400, f"{HEADER_LENGTH} {header_length!r}: not a length within the {len(body)}-byte body")
        header, binary = body[: int(header_length)], body[int(header_length) :]
    try:
        request = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise ClientError(400, f"the inference request is not JSON ({exc})") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise ClientError(400, "the inference request must be a JSON object with an 'inputs' list")
    accepted = " or ".join(f"'{name}' ({kind})" for name, kind in inputs.items())
    if len(request["inputs"]) != 1:
        raise ClientError(400, f"{len(request['inputs'])} inputs: send exactly one, {accepted}")
    tensor = _input(request["inputs"][0], binary, inputs, accepted, max_items)
    parameters = _dict(request.get("parameters"), "parameters")
    binary_output = parameters.get("binary_data_output", False) is True
    outputs = [_requested(output, binary_output) for output in _list(request.get("outputs"), "outputs")]
    request_id = request.get("id")
    return Inference(tensor, outputs, request_id if isinstance(request_id, str) else None, binary_output)


def encode_bytes(items: list[bytes]) -> bytes:
    """A BYTES tensor's binary form: each element as its 4-byte length then its bytes."""
    return b"".join(_LENGTH.pack(len(item)) + item for item in items)


def decode_bytes(blob: bytes, name: str) -> list[bytes]:
    items, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ClientError(400, f"{name}: binary BYTES data ends inside an element's 4-byte length")
        (size,) = _LENGTH.unpack_from(blob, offset)
        offset += 4
        if offset + size > len(blob):
            raise ClientError(400, f"{name}: binary BYTES element of {size} bytes, only {len(blob) - offset} sent")
        items.append(blob[offset : offset + size])
        offset += size
    return items


def _input(spec: Any, binary: bytes, inputs: dict[str, str], accepted: str, max_items: int) -> Tensor:
    spec = _dict(spec, "input")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    if name not in inputs:
        raise ClientError(400, f"input {name!r}: this model takes {accepted}")
    if datatype != inputs[name]:
        raise ClientError(400, f"input '{name}': datatype {datatype!r}, expected {inputs[name]}")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ClientError(400, f"input '{name}': shape {shape!r} is not a list of sizes")
    if shape[0] > max_items:
        raise ClientError(400, f"input '{name}': {shape[0]} images in one request, at most {max_items}")
    size = _dict(spec.get("parameters"), f"input '{name}' parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(binary):
            raise ClientError(
                400, f"input '{name}': binary_data_size {size!r}, but {len(binary)} bytes follow the header"
            )
        blob = binary[:size]
    elif "data" not in spec:
        raise ClientError(400, f"input '{name}': neither 'data' nor parameters.binary_data_size")
    count = math.prod(shape)
    if datatype == "BYTES":
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ClientError(400, f"input '{name}': shape {shape}, expected [N] or [N, 1] (one image file each)")
        items = (
            decode_bytes(blob, name)
            if size is not None
            else [_base64(x, name, i) for i, x in enumerate(_flat(spec["data"]))]
        )
        value: Any = items
        found = len(items)
    else:
        try:
            array = np.frombuffer(blob, "<f4") if size is not None else np.asarray(spec["data"], np.float32).ravel()
        except (ValueError, TypeError) as exc:
            raise ClientError(400, f"input '{name}': data is not {count} numbers ({exc})") from None
        value, found = array, array.size
    if found != count:
        raise ClientError(400, f"input '{name}': shape {shape} holds {count} elements, {found} sent")
    if datatype != "BYTES":
        value = value.reshape(shape)
    return Tensor(name, datatype, shape, value)


def _requested(spec: Any, binary_default: bool) -> Tensor:
    spec = _dict(spec, "output")
    parameters = _dict(spec.get("parameters"), "output parameters")
    binary = parameters.get("binary_data", binary_default) is True
    return Tensor(str(spec.get("name")), binary=binary, parameters=parameters)


def _base64(item: Any, name: str, index: int) -> bytes:
    text = item.get("b64") if isinstance(item, dict) else item
    try:
        if not isinstance(text, str):
            raise TypeError(text)
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ClientError(
            400, f"input '{name}' element {index}: not base64 (JSON BYTES elements are base64-encoded image files)"
        ) from None


def _flat(data: Any) -> list:
    """The elements of nested lists, in order (a loop: a client chooses the nesting depth)."""
    items, stack = [], [data]
    while stack:
        top = stack.pop()
        if isinstance(top, list):
            stack.extend(reversed(top))
        else:
            items.append(top)
    return items


def _dict(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClientError(400, f"{what}: expected a JSON object")
    return value


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ClientError(400, f"{what}: expected a JSON list")
    return value
