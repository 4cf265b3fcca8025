"""Read untrusted weight files safely and turn every way they can be broken into one clear error.

PyTorch files are unpickled with ``weights_only=True`` only: a pickle that would import and call
something (a whole pickled model, or an attack) is refused before anything runs, and there is no
fallback to the unsafe loader. ``.safetensors`` cannot carry code at all. torch is imported only
when a file gets that far, so a missing, empty or misnamed file is reported at once.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:
    import torch

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
SAFETENSORS_SUFFIX = ".safetensors"
TFLITE_SUFFIX = ".tflite"
SUFFIXES = (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX, TFLITE_SUFFIX)

# Keys under which training scripts nest the weights (timm, torchvision references, Lightning-style).
STATE_DICT_KEYS = ("state_dict", "model", "model_ema", "state_dict_ema")


def check_file(path: Path) -> None:
    """Fail early, with the path in the message, on what no reader could make sense of."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a weights file")
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(
            f"{path}: unsupported weights file type {path.suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty")


def read_torch(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into a :class:`UserError`."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol warnings from torch are noise to a user
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, OSError ...
        unsafe = refused_global(path, str(exc))
        if unsafe:
            raise UserError(
                f"{path}: refused: loading it would import and run {unsafe!r}; "
                "only tensors and plain containers are accepted (if you trust the file, "
                "re-save its state_dict)"
            ) from None
        raise UserError(
            f"{path}: not a readable PyTorch file (empty, truncated or corrupt: {type(exc).__name__})"
        ) from None


# torch words a refused global differently by version and pickle protocol
_REFUSED = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def refused_global(path: Path, message: str) -> str | None:
    """The first import (``module.name``) in the pickle that the safe loader does not allow, or None.

    torch names it in its error for most files, but not for every pickle protocol (a plain protocol-4
    pickle fails on an earlier opcode), so the pickle's opcodes are read as well: one message for
    every refused global, whichever way torch failed.
    """
    found = _REFUSED.search(message)
    if found:
        return found.group(1)
    try:
        data = _pickle_bytes(path)
        return next((g for g in _pickle_globals(data) if g not in _allowed_globals()), None)
    except Exception:  # not a pickle at all: the caller reports a corrupt file
        return None


def _pickle_bytes(path: Path) -> bytes:
    """The pickle inside a ``torch.save`` zip archive (``<name>/data.pkl``), or the file itself."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            member = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return archive.read(member) if member else b""
    return path.read_bytes()


def _pickle_globals(data: bytes) -> list[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL in a pickle, read without executing it."""
    import pickletools

    names: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # a truncated pickle: what was read so far still counts
        pass
    return names


def _allowed_globals() -> set[str]:
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except Exception:  # a torch without this private helper: allow only what state dicts use
        allowed = set()
    return allowed | {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"}


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity, naming the first bad tensor: such a model answers
    "nan %" for every image, which is worse than no answer."""
    import torch

    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(f"{source}: tensor {name!r} holds {bad} NaN or infinite value(s); the weights are corrupt")


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and the string metadata of a ``.safetensors`` file."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = fh.metadata() or {}
            return {k: fh.get_tensor(k) for k in fh.keys()}, dict(metadata)
    except Exception as exc:  # SafetensorError (header/size problems), OSError
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None


def find_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded file: bare, or nested under one of :data:`STATE_DICT_KEYS`."""
    import torch

    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                return find_state_dict(obj[key], source)
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise UserError(
        f"{source}: holds no state dict (a {type(obj).__name__} without tensors, and none "
        f"under {', '.join(STATE_DICT_KEYS)})"
    )
