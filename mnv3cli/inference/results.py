"""What ``mnv3 export`` produced, as typed records: its ``--json`` is ``to_dict()`` and its terminal
lines read the same fields, so a new fact is one field (and, if people should see it, one line)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ExportResult:
    """What ``mnv3 export`` wrote and how close it computes to PyTorch: its ``--json`` record (field
    order is the record's key order) and what its two lines on the terminal say."""

    format: str
    output: str
    bytes: int  # the file and its companions (IR's .bin)
    model: str
    weights: str | None
    source: str
    opset: int | None  # None for formats without one (TorchScript)
    input_shape: list[Any]  # ["batch", 3, H, W]
    preprocess: dict[str, Any]
    temperature: float | None
    verified_on: str  # the --image, or "generated image"
    max_abs_diff: float  # to 3 significant digits
    tolerance: float
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Int8ExportResult:
    """What ``mnv3 export --int8`` wrote and certified: the held-out top-1 of fp32 and int8, the
    upper confidence bound of the drop that was certified, the
    layers kept in float and the latency of both (``to_dict()`` is the ``--json`` record)."""

    format: str
    output: str
    bytes: int
    model: str
    source: str
    input_shape: list[Any]
    preprocess: dict[str, Any]
    calibration_images: int
    held_out_images: int
    fp32_top1: float
    int8_top1: float
    drop: float  # measured on the held-out images, points
    upper_bound: float  # one-sided upper confidence bound of the drop (.certificate), points
    confidence: float  # of the bound as printed (0.95)
    step_confidence: float  # of each step's bound (Bonferroni over the steps tried)
    discordant_images: int  # held-out images on which fp32 and int8 disagree about being right
    max_drop: float
    opset: int
    steps: int
    layers: int
    kept_in_float: list[str]
    latency_ms: dict[str, dict[str, float]]  # fp32/int8 -> batch size (a string, as in JSON) -> ms

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        return {"format": record.pop("format"), "int8": True, **record}
