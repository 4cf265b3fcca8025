"""What a bug report needs, gathered in one place: ``mnv3 doctor``.

Most reports of "it is slow" or "it crashed" turn on things the reporter does not think to say:
which ONNX Runtime, whether OpenVINO is installed (and why a backend is not offered), whether the
CPU has AVX-512, VNNI or AMX (int8 and bf16 speed depend on them), how many cores the process may
use, where the ONNX cache is and how big it has grown, and whether torch even imports. Versions come
from the installed packages' metadata (nothing is imported for them); torch is imported once, in a
child process, because importing it takes seconds and a broken install can take the interpreter
down with it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..errors import UserError
from .backend_registry import list_backends
from .onnx_backend import usable_cores
from .onnx_cache import cache_root

# distribution names whose versions matter to a report, in the order they are shown
PACKAGES = ("mnv3cli", "torch", "torchvision", "timm", "onnxruntime", "openvino", "numpy", "pillow", "click")
# /proc/cpuinfo flag -> what it is called in the report (the instructions the engines use)
CPU_FLAGS = {
    "avx2": "AVX2",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_tile": "AMX",
    "amx_bf16": "AMX BF16",
    "amx_int8": "AMX INT8",
}
SECRET_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD")  # variables a report must never print
TORCH_PROBE = (
    "import torch; print(torch.__version__); print(torch.backends.cpu.get_cpu_capability()); "
    "print(torch.get_num_threads()); print(torch.cuda.is_available())"
)


@dataclass(frozen=True)
class BackendStatus:
    name: str
    title: str
    available: bool
    why_not: str | None  # the registry's own reason (``pip install ...``) when not available


@dataclass(frozen=True)
class TorchStatus:
    importable: bool | None  # None: not checked (``mnv3 doctor --no-torch``)
    error: str | None = None  # the last line of what importing it printed, when it failed
    cpu_capability: str | None = None  # torch.backends.cpu.get_cpu_capability(): "AVX512", ...
    threads: int | None = None
    cuda: bool | None = None


@dataclass(frozen=True)
class CacheStatus:
    path: str
    exists: bool
    entries: int = 0
    bytes: int = 0
    error: str | None = None  # no usable location (HOME unset and no MNV3_CACHE)


@dataclass(frozen=True)
class Report:
    """Everything ``mnv3 doctor`` prints; :meth:`to_dict` is its ``--json``."""

    python: str
    platform: str
    versions: dict[str, str | None]  # None: not installed
    backends: list[BackendStatus]
    cpu_flags: dict[str, bool] | None  # None: no /proc/cpuinfo (macOS, Windows)
    cpus: int | None
    usable_cpus: int  # the cores this process may run on (affinity, containers' cpusets)
    torch: TorchStatus
    cache: CacheStatus
    environment: dict[str, str] = field(default_factory=dict)  # MNV3_* and the threads/caches ones set

    def to_dict(self) -> dict:
        return asdict(self)


def installed_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, bool] | None:
    """The report's CPU features, from the first ``flags`` line of ``/proc/cpuinfo`` (Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return {label: flag in flags for flag, label in CPU_FLAGS.items()}
    return None


def probe_torch(timeout: float = 300) -> TorchStatus:
    """Import torch in a child process: its version, CPU capability, threads and CUDA."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return TorchStatus(False, f"{type(exc).__name__}: {exc}")
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) < 4:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return TorchStatus(False, tail)
    return TorchStatus(True, None, lines[1], int(lines[2]), lines[3] == "True")


def cache_status() -> CacheStatus:
    """Where the ONNX cache is, how many entries it holds and their size on disk."""
    try:
        root = cache_root()
    except UserError as exc:
        return CacheStatus("", False, error=str(exc))
    if not root.is_dir():
        return CacheStatus(str(root), False)
    entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    return CacheStatus(str(root), True, len(entries), size)


def _environment() -> dict[str, str]:
    """The variables that change what mnv3 does; secrets (``MNV3_API_KEY``) only as "(set)"."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XDG_CACHE_HOME", "TORCH_HOME", "CUDA_VISIBLE_DEVICES")
    shown = {k: v for k, v in sorted(os.environ.items()) if k.startswith("MNV3_") or k in names}
    return {k: "(set)" if any(s in k for s in SECRET_PARTS) else v for k, v in shown.items()}


def diagnose(import_torch: bool = True) -> Report:
    """The report; ``import_torch=False`` skips the child process (seconds) and says so."""
    backends = [BackendStatus(e.name, e.title, e.unavailable() is None, e.unavailable()) for e in list_backends()]
    torch = probe_torch() if import_torch else TorchStatus(None)
    return Report(
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=platform.platform(),
        versions={name: installed_version(name) for name in PACKAGES},
        backends=backends,
        cpu_flags=cpu_flags(),
        cpus=os.cpu_count(),
        usable_cpus=usable_cores(),
        torch=torch,
        cache=cache_status(),
        environment=_environment(),
    )
