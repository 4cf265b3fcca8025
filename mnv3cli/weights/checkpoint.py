"""The project's own checkpoint: weights plus everything needed to use or resume them.

A checkpoint is self-contained (architecture, class names, preprocessing travel with the weights)
so that ``--weights my.pt`` needs no other option. Two containers hold the same record:

* ``.pt``/``.pth``: a ``torch.save`` of a plain dict, loadable with ``weights_only=True``; ``extra``
  holds the training state (optimizer, scheduler, EMA, epoch, RNG states, metrics).
* ``.safetensors``: the state dict, with the other fields as JSON strings in the metadata; ``extra``
  must then be JSON (metrics, epoch), since safetensors stores tensors only by name.

Writes are atomic, and a ``.pt`` file is read back before it replaces the old one, so a checkpoint
that could not be resumed (e.g. a numpy array in ``extra``) fails at save time, not at resume time.

Every checkpoint records :func:`tensors_sha256` of its weights, checked on load: neither container
notices a flipped bit in tensor data (torch does not check its zip's CRCs), and such a file would
load and silently give other answers. Files written before the checksum existed load unchecked.
The same inputs give the same bytes (safetensors metadata in sorted order, no times or paths), so
a file's sha256, and the ONNX cache key made from it, stay put when it is written again.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..fileio import atomic_write
from ..registry import ModelCard, Preprocess
from .readers import (
    SAFETENSORS_SUFFIX,
    TORCH_SUFFIXES,
    check_file,
    read_safetensors,
    read_torch,
)
from .remap import strip_prefixes

FORMAT = "mnv3-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("model_name", "arch", "num_classes", "class_names", "preprocess", "state_dict")
CHECKSUM = "tensors_sha256"  # record key (and safetensors metadata key) of the weights' checksum
EXTRA_CHECKSUM = "extra_sha256"  # record key of the checksum of ``extra`` (.pt: the training state)
DTYPES = {"float32": torch.float32, "float16": torch.float16}  # what weights may be stored as


def tensors_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order: the same for a
    ``.pt`` and a ``.safetensors`` holding the same tensors, whatever order either stores them in."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode() + b"\n")
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def extra_sha256(extra: Mapping) -> str:
    """sha256 over everything ``extra`` holds (optimizer, scheduler, EMA weights, grad scaler,
    position, RNG states): every tensor's place, dtype, shape and bytes and every other value's
    ``repr``, mapping keys in sorted order. A NaN written over an Adam moment on disk changes it as a
    flipped weight bit changes :func:`tensors_sha256`."""
    digest = hashlib.sha256()

    def walk(where: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(json.dumps([where, str(tensor.dtype), list(tensor.shape)]).encode() + b"\n")
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)  # a memoryview: no copy
        elif isinstance(value, Mapping):
            digest.update(json.dumps([where, "map", len(value)]).encode() + b"\n")
            for key in sorted(value, key=repr):
                walk(f"{where}/{key!r}", value[key])
        elif isinstance(value, list | tuple):
            digest.update(json.dumps([where, "seq", len(value)]).encode() + b"\n")
            for i, item in enumerate(value):
                walk(f"{where}/{i}", item)
        else:
            digest.update(json.dumps([where, repr(value)]).encode() + b"\n")

    walk("", extra)
    return digest.hexdigest()


def save_checkpoint(
    path,
    model,
    *,
    card: ModelCard | None = None,
    model_name: str | None = None,
    arch: Mapping | None = None,
    class_names=None,
    preprocess=None,
    wordnet_ids=None,
    extra: Mapping | None = None,
    dtype: str | None = None,
) -> None:
    """Write ``model`` and its metadata to ``path`` (``.pt``/``.pth`` or ``.safetensors``), atomically.

    The metadata is a :class:`~mnv3cli.registry.ModelCard` (``card``), or its fields given one by
    one; a field given by keyword wins over the card's (e.g. ``arch`` of the model as trained). The
    card's ``source`` and ``sha256`` describe another file and are not stored: the on-disk record is
    unchanged, so files written before and after cards existed read the same. ``preprocess`` is a
    :class:`~mnv3cli.registry.Preprocess` or its ``to_dict()``. ``extra`` is a plain dict of state
    dicts, tensors and Python scalars/lists (e.g. the RNG states of
    :func:`mnv3cli.training.state.capture_rng_state`). ``dtype`` (``"float16"``, a key of
    :data:`DTYPES`) stores the floating-point weights in that precision (half the size; the loader
    computes in float32 again); default: as they are.
    """
    if card is not None:
        model_name = model_name if model_name is not None else card.model_name
        arch = arch if arch is not None else card.arch
        class_names = class_names if class_names is not None else card.class_names
        preprocess = preprocess if preprocess is not None else card.preprocess
        wordnet_ids = wordnet_ids if wordnet_ids is not None else card.wordnet_ids
    if model_name is None or arch is None or class_names is None or preprocess is None:
        raise TypeError("save_checkpoint needs card= or model_name=, arch=, class_names= and preprocess=")
    path = Path(path)
    class_names = [str(c) for c in class_names]
    cast = DTYPES[dtype] if dtype is not None else None
    state = {k: v.detach().cpu().contiguous() for k, v in strip_prefixes(model.state_dict()).items()}
    if cast is not None:
        state = {k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}
    if len(class_names) != model.num_classes:
        raise ValueError(f"{len(class_names)} class names for a model with {model.num_classes} outputs")
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "arch": dict(arch),
        "num_classes": model.num_classes,
        "class_names": class_names,
        "wordnet_ids": list(wordnet_ids) if wordnet_ids is not None else None,
        "preprocess": preprocess.to_dict() if isinstance(preprocess, Preprocess) else dict(preprocess),
        "state_dict": state,
        CHECKSUM: tensors_sha256(state),
        "extra": dict(extra or {}),
    }
    if card is not None and card.temperature != 1.0:  # calibrated (mnv3 calibrate); else bytes as before
        record["temperature"] = float(card.temperature)
    if card is not None and card.multi_label:  # a sigmoid head; single-label files keep their bytes
        record["head"] = card.head
        for name in ("thresholds", "class_temperatures"):
            if getattr(card, name) is not None:
                record[name] = [float(t) for t in getattr(card, name)]
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        if record["extra"]:  # else the bytes stay as before (weights-only files)
            record[EXTRA_CHECKSUM] = extra_sha256(record["extra"])
        _write_torch(path, record)
    elif suffix == SAFETENSORS_SUFFIX:
        _write_safetensors(path, record)
    else:
        raise UserError(
            f"{path}: cannot write a checkpoint with extension {path.suffix or '(none)'!r}; "
            f"use .pt, .pth or .safetensors"
        )


def _write_torch(path: Path, record: dict) -> None:
    """Serialise in memory first: torch's zip writer turns a failed write (full disk, file-size
    limit) into an opaque RuntimeError, while a plain ``write`` of the bytes raises the OSError that
    :func:`atomic_write` reports as "cannot write PATH: ..."."""
    buffer = io.BytesIO()
    torch.save(record, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TypeError(
            f"{path}: checkpoint would not load with weights_only=True ({exc}); keep "
            "'extra' to tensors, state dicts and plain Python values"
        ) from None
    with atomic_write(path, "wb") as fh:
        fh.write(buffer.getbuffer())


def _write_safetensors(path: Path, record: dict) -> None:
    from safetensors.torch import save

    try:
        extra = json.dumps(record["extra"], allow_nan=False, sort_keys=True)
    except (TypeError, ValueError):
        raise UserError(
            f"{path}: .safetensors holds weights and JSON metadata only; save training "
            "state (optimizer, RNG, ...) to a .pt checkpoint instead"
        ) from None
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "extra": extra,
        **{
            k: json.dumps(record[k], sort_keys=True)
            for k in (*REQUIRED, CHECKSUM, "wordnet_ids", "temperature", "head", "thresholds", "class_temperatures")
            if k != "state_dict" and k in record
        },
    }
    # safetensors refuses tensors that share memory; a plain copy of each is cheap at this size
    data = save({k: v.clone() for k, v in record["state_dict"].items()}, metadata=metadata)
    with atomic_write(path, "wb") as fh:
        fh.write(_sorted_header(data))


def _sorted_header(data: bytes) -> bytes:
    """The same file with its JSON header's keys sorted: safetensors writes the metadata in hash-map
    order, which changes from one process to the next. Tensor offsets count from the end of the
    header, so re-serialising it (padded to 8 bytes, as safetensors does) moves no data."""
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + data[8 + size :]


def is_checkpoint_record(obj: Any) -> bool:
    """Whether a loaded ``.pt`` object (or safetensors metadata) is one of ours."""
    return isinstance(obj, Mapping) and obj.get("format") == FORMAT


def read_checkpoint(path) -> dict:
    """A project checkpoint as the dict :func:`save_checkpoint` wrote (``.pt`` or ``.safetensors``).

    ``preprocess`` comes back as a dict (``Preprocess.from_dict`` rebuilds it). Raises
    :class:`UserError` for missing, corrupt, hostile or foreign files.
    """
    path = Path(path)
    check_file(path)
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        tensors, metadata = read_safetensors(path)
        return checkpoint_from_safetensors(tensors, metadata, str(path))
    if path.suffix.lower() not in TORCH_SUFFIXES:
        raise UserError(f"{path}: not a checkpoint file; expected .pt, .pth or .safetensors")
    return validate_record(read_torch(path), str(path))


def checkpoint_from_safetensors(tensors: dict, metadata: Mapping[str, str], source: str) -> dict:
    """Rebuild the checkpoint record from a ``.safetensors`` file's tensors and metadata."""
    if metadata.get("format") != FORMAT:
        raise UserError(
            f"{source}: not an mnv3 checkpoint (no mnv3 metadata); load it with --weights "
            "or turn it into one with `mnv3 convert`"
        )
    try:
        record = {k: json.loads(v) for k, v in metadata.items() if k not in ("format", "format_version")}
        record.update(format=FORMAT, format_version=int(metadata.get("format_version", "0")))
    except ValueError as exc:
        raise UserError(f"{source}: corrupt mnv3 metadata ({exc})") from None
    return validate_record(record | {"state_dict": tensors}, source)


def validate_record(obj: Any, source: str) -> dict:
    """Check a checkpoint record's fields so later code can trust them."""
    if not is_checkpoint_record(obj):
        raise UserError(
            f"{source}: not an mnv3 checkpoint (a bare state dict or another tool's file); "
            "load it with --weights or turn it into one with `mnv3 convert`"
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(
            f"{source}: checkpoint format version {version!r} is newer than this mnv3 "
            f"understands ({FORMAT_VERSION}); upgrade mnv3"
        )
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        raise UserError(f"{source}: incomplete mnv3 checkpoint, missing {', '.join(missing)}")
    names, n = obj["class_names"], obj["num_classes"]
    if not isinstance(n, int) or not isinstance(names, list) or len(names) != n:
        raise UserError(
            f"{source}: corrupt mnv3 checkpoint: {n!r} classes but "
            f"{len(names) if isinstance(names, list) else 'no'} class names"
        )
    if not isinstance(obj["arch"], dict) or not isinstance(obj["state_dict"], Mapping):
        raise UserError(f"{source}: corrupt mnv3 checkpoint: arch or state_dict is not a dict")
    temperature = obj.get("temperature", 1.0)  # absent unless calibrated
    if type(temperature) not in (int, float) or not 0 < temperature < float("inf"):
        raise UserError(f"{source}: corrupt mnv3 checkpoint: bad temperature {temperature!r}")
    try:
        Preprocess.from_dict(obj["preprocess"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{source}: corrupt mnv3 checkpoint: bad preprocess {obj['preprocess']!r}") from None
    try:  # the card's bounds (registry.card): the one check every card passes, whatever its file
        card_from_record(obj)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source}: corrupt mnv3 checkpoint: {exc}") from None
    if obj.get(CHECKSUM) is not None and _checksum(obj["state_dict"]) != obj[CHECKSUM]:
        raise UserError(
            f"{source}: corrupt mnv3 checkpoint (checksum mismatch): its weights changed "
            "after it was written; use another copy"
        )
    if obj.get(EXTRA_CHECKSUM) is not None and _extra_checksum(obj.get("extra")) != obj[EXTRA_CHECKSUM]:
        raise UserError(
            f"{source}: corrupt mnv3 checkpoint (training-state checksum mismatch): its optimizer, "
            "scheduler, EMA or position changed after it was written; use another copy"
        )
    return dict(obj) | {"extra": dict(obj.get("extra") or {}), "wordnet_ids": obj.get("wordnet_ids")}


def _checksum(state: Mapping) -> str | None:
    """:func:`tensors_sha256` of a file's state dict; None when it holds something else than tensors."""
    try:
        return tensors_sha256(state)
    except (AttributeError, TypeError, RuntimeError):
        return None


def _extra_checksum(extra: Any) -> str | None:
    try:
        return extra_sha256(extra) if isinstance(extra, Mapping) else None
    except (TypeError, ValueError, RuntimeError):
        return None


def card_from_record(record: Mapping, source: str = "", sha256: str | None = None) -> ModelCard:
    """The :class:`ModelCard` a (validated) checkpoint record describes, read from ``source``."""
    return ModelCard(
        record["model_name"],
        record["class_names"],
        Preprocess.from_dict(record["preprocess"]),
        record.get("wordnet_ids"),
        source,
        sha256,
        record["arch"],
        record.get("temperature", 1.0),
        head=str(record.get("head", "softmax")),
        thresholds=record.get("thresholds"),
        class_temperatures=record.get("class_temperatures"),
    )
