"""The one list of inference backends: every ``--backend`` choice, file suffix and export format.

Each engine (PyTorch, ONNX Runtime, OpenVINO) is one :class:`BackendEntry`, registered with
:func:`register_backend` in :mod:`.backend_entries`; ``open_runtime``, exported-file loading,
``export`` and its verification, int8 and ``profile`` all look entries up here, and the CLI builds its
``--backend``/``--format`` choices from :func:`backend_names` each time they are read. So a new
backend is one entry (and its test), and a backend registered at run time (a test's toy) shows up in
every command. Nothing here imports an engine: availability is ``importlib.util.find_spec``, so
``mnv3 --help`` and a warm ``predict`` stay free of torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from ..errors import UserError


@dataclass(frozen=True)
class OpenOptions:
    """How to run: where, with how many threads, at which precision, with which compiled-graph cache.

    ``pipelined``: decoding threads share the cores (an engine should not busy-wait on them);
    ``variant``: one of the entry's ``timings`` (profile's rows, e.g. torch's ``channels_last``)."""

    device: str = "auto"
    threads: int | None = None
    pipelined: bool = False
    precision: str = "f32"
    cache_dir: Path | None = None
    variant: str | None = None


@dataclass(frozen=True)
class ExportFormat:
    """A file ``mnv3 export --format NAME`` writes and the entry that runs it to verify it.

    ``write(model, path, input_size=, opset=, card=)`` writes it; ``load(path)`` turns it into what the
    entry's ``open`` takes (default: the path itself); ``from_onnx(graph, path, card)`` writes an
    ``onnx.ModelProto`` (int8's quantized graph) in this format, where the format can hold one."""

    name: str
    suffix: str
    description: str  # for "wrote FILE (DESCRIPTION, ...)"; may use {opset}
    write: Callable[..., Any]
    load: Callable[[Path], Any] | None = None
    from_onnx: Callable[[Any, Path, Any], None] | None = None
    companions: tuple[str, ...] = ()  # suffixes of files written beside it (IR's .bin)
    opset: bool = True  # whether --opset applies
    title: str = ""  # what the file is, in a few words: "OpenVINO IR"


@dataclass(frozen=True)
class BackendEntry:
    """One engine. ``open(target, options)`` returns a :class:`~.backends.Backend`: ``target`` is the
    torch model (``kind="model"``) or the path of an ONNX graph or of one of its own ``files``
    (``kind="graph"``: the ONNX cache and exports feed it). ``open_exported(path, options)`` returns
    ``(backend, card)`` for an exported file; ``read_card(path)`` the card without compiling."""

    name: str
    title: str  # how people call it: "ONNX Runtime"
    open: Callable[[Any, OpenOptions], Any]
    kind: str = "graph"
    module: str | None = None  # whose presence makes it available (find_spec: imports nothing)
    install: str = ""
    files: dict[str, str] = field(default_factory=dict)  # suffix it opens natively -> what it is
    reads: tuple[str, ...] = ()  # suffixes it runs besides its own files (OpenVINO reads .onnx)
    open_exported: Callable[[Path, OpenOptions], tuple[Any, Any]] | None = None
    read_card: Callable[[Path], Any] | None = None
    precisions: tuple[str, ...] = ("f32",)
    devices: tuple[str, ...] = ("cpu",)  # device kinds; "auto" is always accepted
    check_device: Callable[[str], None] | None = None  # finer checks (ONNX Runtime's CUDA build)
    auto: int | None = None  # rank in --backend auto's preference, lowest first; None: only by name
    timings: tuple[str, ...] = ()  # profile's rows for it [default: its name]
    export: ExportFormat | None = None
    quantizes: bool = False  # export --int8 writes its format

    @property
    def rows(self) -> tuple[str, ...]:
        return self.timings or (self.name,)

    def opens(self, suffix: str) -> bool:
        return suffix.lower() in self.files or suffix.lower() in self.reads

    def unavailable(self, device: str | None = None) -> str | None:
        """None when it is installed (and can serve ``device``, when given), else why not."""
        if self.module is not None and find_spec(self.module) is None:
            return f"{self.title} is not installed ({self.install})"
        if device is None:
            return None
        kind = (device or "auto").split(":", 1)[0]
        if kind != "auto" and kind not in self.devices:
            others = [e.name for e in _REGISTRY.values() if kind in e.devices and e is not self]
            where = " or ".join(d.upper() if d != "mps" else "Apple MPS" for d in self.devices)
            instead = f"; use --backend {' or '.join(others)}" if others else ""
            return f"--device {device}: the {self.name} backend runs on the {where}{instead}"
        try:
            if self.check_device is not None:
                self.check_device(device)
        except UserError as exc:
            return str(exc)
        return None

    def require(self, device: str | None = None) -> BackendEntry:
        """Itself, or a :class:`UserError` saying why it cannot run (on ``device``)."""
        why = self.unavailable()
        if why is not None:
            raise UserError(f"--backend {self.name}: {why}")
        why = self.unavailable(device)
        if why is not None:
            raise UserError(why)
        return self


_REGISTRY: dict[str, BackendEntry] = {}


def register_backend(entry: BackendEntry) -> BackendEntry:
    """Add ``entry`` (timm's ``register_model``, as a call: an entry is data, not a function)."""
    taken = {r for e in _REGISTRY.values() for r in e.rows} | set(_REGISTRY) | {"auto"}
    clash = ({entry.name} | set(entry.timings)) & taken
    if clash:
        raise ValueError(f"backend name(s) already registered: {', '.join(sorted(clash))}")
    _REGISTRY[entry.name] = entry
    return entry


def unregister_backend(name: str) -> None:
    """Remove an entry (tests that register a toy backend clean up with this)."""
    del _REGISTRY[name]


def list_backends() -> list[BackendEntry]:
    return list(_REGISTRY.values())


def backend_names() -> tuple[str, ...]:
    """``--backend`` choices of predict and evaluate: ``auto`` and every registered backend."""
    return ("auto", *_REGISTRY)


def profile_choices() -> tuple[str, ...]:
    """``profile --backend`` choices: those of predict, then every timing row not already named."""
    rows = [r for e in _REGISTRY.values() for r in e.rows if r not in _REGISTRY]
    return (*backend_names(), *rows)


def timing_rows() -> tuple[str, ...]:
    """Every row profile can time, in registry order (torch's variants first)."""
    return tuple(r for e in _REGISTRY.values() for r in e.rows)


def get_backend(name: str, flag: str = "--backend") -> BackendEntry:
    """The entry named ``name`` (or owning the timing row ``name``); a helpful error otherwise."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    for entry in _REGISTRY.values():
        if name in entry.timings:
            return entry
    raise UserError(f"{flag} {name}: unknown backend; choose one of: {', '.join(backend_names())}")


def choose_backend(backend: str = "auto", device: str = "auto") -> str:
    """The backend for a ``--backend``/``--device`` pair: a named one if it can run there, else for
    ``auto`` the first by ``auto`` rank that is installed and serves ``device``."""
    if backend != "auto":
        entry = get_backend(backend)
        if entry.kind == "graph":  # a graph engine's device check comes before exporting
            return entry.require(device).name
        return entry.require().name
    ranked = sorted((e for e in _REGISTRY.values() if e.auto is not None), key=lambda e: e.auto or 0)
    for entry in ranked:
        if entry.unavailable(device) is None:
            return entry.name
    raise UserError(f"--device {device}: no installed backend runs there")


def native_backend(path: Path) -> BackendEntry:
    """The entry whose own format ``path`` is (by suffix), as Ultralytics' AutoBackend picks."""
    for entry in _REGISTRY.values():
        if path.suffix.lower() in entry.files:
            return entry
    raise UserError(f"--weights {path}: not an exported file ({', '.join(exported_suffixes())})")


def exported_suffixes() -> tuple[str, ...]:
    return tuple(s for e in _REGISTRY.values() for s in e.files)


def describe_file(path: Path) -> str:
    return native_backend(path).files[path.suffix.lower()]


def export_formats() -> dict[str, tuple[BackendEntry, ExportFormat]]:
    """``--format`` name -> (the entry that runs it, the format)."""
    return {e.export.name: (e, e.export) for e in _REGISTRY.values() if e.export is not None}


def get_export_format(name: str) -> tuple[BackendEntry, ExportFormat]:
    formats = export_formats()
    if name not in formats:
        raise UserError(f"--format {name}: unknown format; choose one of: {', '.join(formats)}")
    return formats[name]


from . import backend_entries  # noqa: E402,F401  registers the built-in backends
