"""``--device`` resolution shared by every command: a name in, a usable ``torch.device`` out.

Asking for hardware that is not there is the user's problem to fix, so it is a
:class:`~mnv3cli.errors.UserError` naming what is missing rather than a crash inside torch later.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from . import DEVICE_CHOICES


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA, then Apple MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind not in DEVICE_CHOICES or kind == "auto" or (index and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"--device {name}: unknown device; choose one of: auto, cpu, cuda, cuda:N, mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserError(f"--device {name}: CUDA is not available ({why})")
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            raise UserError(f"--device {name}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    if kind == "mps" and not _mps_available():
        raise UserError(f"--device {name}: Apple MPS is not available on this machine")
    return torch.device(name)
