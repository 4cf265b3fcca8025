"""What tests share besides fixtures: where the repository and ../shared are, the environment of a
CLI subprocess. Imported by conftest.py and by test modules (``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MNV3_SHARED", ROOT.parent / "shared"))


def require_shared(*parts: str) -> Path:
    """Path under ../shared; skip when absent, but fail when MNV3_REQUIRE_SHARED=1 (CI)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing (../shared holds the real weights and data)"
        if os.environ.get("MNV3_REQUIRE_SHARED") == "1":
            pytest.fail(message + " and MNV3_REQUIRE_SHARED=1", pytrace=False)
        pytest.skip(message)
    return path


# Runs the CLI and prints, as its last stdout line, every torch/torchvision/timm module it imported.
IMPORT_GUARD = (
    "import sys\nfrom mnv3cli.cli.app import main\ntry:\n    main()\nfinally:\n"
    "    print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'timm')))"
)


def cli_env(extra: dict | None = None) -> dict:
    """The environment of a ``python -m mnv3cli`` subprocess: this checkout first on the path, no
    network, a wide terminal unless the test says otherwise."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MNV3_OFFLINE"] = "1"  # tests never touch the network
    env.setdefault("COLUMNS", "200")
    env.update(extra or {})
    return env


def wide_lines(text: str, folders=(), columns: int = 80) -> list[str]:
    """The lines of ``text`` wider than ``columns`` once the test's own folders (long temporary
    paths a user would not have) are written ``T``: what a message costs at 80 columns."""
    shorter = text
    for folder in sorted({str(f) for f in folders}, key=len, reverse=True):
        shorter = shorter.replace(folder, "T")
    return [line for line in shorter.splitlines() if len(line) > columns]


def default_signals() -> None:
    """``preexec_fn`` of every child process a test starts: SIGINT, SIGTERM and SIGHUP at their
    defaults whatever the test run inherited. ``python -m pytest`` started under ``nohup ... &``
    ignores SIGINT (and SIGHUP), an ignored signal stays ignored across exec, and a Python child
    then installs no KeyboardInterrupt handler: a test's Ctrl-C would do nothing."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


@contextlib.contextmanager
def started(args, **popen_kwargs) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen(args, ...)`` with :func:`default_signals`, stopped when the block ends
    whatever happened in it (a failed assertion included): killed if still running (its whole
    session when ``start_new_session``), waited for, its pipes closed. No test leaves a process."""
    proc = subprocess.Popen(args, preexec_fn=default_signals, **popen_kwargs)
    try:
        yield proc
    finally:
        stop(proc, group=popen_kwargs.get("start_new_session", False))


def stop(proc: subprocess.Popen, group: bool = False) -> None:
    """Kill ``proc`` (and its process group, for a child started in a session of its own) unless it
    has ended, then reap it and close its pipes."""
    if proc.poll() is None or group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
    with proc:  # closes stdin/stdout/stderr and waits
        pass


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb_bytes(side: int = 100_000) -> bytes:
    """A tiny valid-looking PNG whose header declares ``side`` x ``side`` pixels (10 G here)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def assert_one_user_error(result, *needles: str) -> None:
    """Exit 2 and exactly one "mnv3: error: ..." line holding every needle, no traceback."""
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mnv3: ")]
    assert len(errors) == 1 and errors[0].startswith("mnv3: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def flip_a_weight_bit(path: Path, model) -> None:
    """Flip one bit in the middle of the largest tensor's stored bytes (found by content, so the
    test needs no knowledge of either container's layout)."""
    import torch

    state = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    largest = max(state.values(), key=torch.Tensor.numel).contiguous()
    data = bytearray(path.read_bytes())
    start = data.find(largest.numpy().tobytes())
    assert start > 0
    data[start + largest.numel() * 2] ^= 0x04  # a low mantissa bit: the value stays finite
    path.write_bytes(bytes(data))


SHAPES = {"blue_triangle": (50, 70, 210), "green_square": (40, 180, 60), "red_circle": (200, 40, 40)}


def make_shapes(root: Path, per_class: tuple[int, int] = (24, 8), size: int = 48, seed: int = 0) -> Path:
    """ImageFolder ``root/{train,val}/<class>``: a circle, square or triangle of the class's colour
    (jittered) at a random place and size on a random grey background."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val"), per_class, strict=False):
        for name, colour in SHAPES.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(90, 170, 3)))
                r = int(rng.integers(size // 5, size // 3))
                cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
                fill = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in colour)
                draw = ImageDraw.Draw(img)
                if name == "red_circle":
                    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
                elif name == "green_square":
                    draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
                else:
                    draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
                img.save(folder / f"{i:03d}.png")
    return root


EXAMPLES = ROOT / "examples"
# The true class of each photo in examples/ (scikit-image's chelsea and coffee, CC0).
EXAMPLE_WNIDS = {"chelsea.jpg": "n02124075", "coffee.jpg": "n07920052"}  # Egyptian cat, espresso


def make_imagenet_examples(root: Path, classes: int = 24) -> Path:
    """An ImageNet-labelled folder like ../shared's dev set (``root/<wnid>/<wnid>_<name>.JPEG``, one
    image per class) made from examples/ alone: ``classes`` folders, the first WordNet ids plus
    the two photos' own, each holding a different crop (and every other one a mirror) of one of the
    photos. Only the two true classes are right: for tests that need labelled images that decode
    and classify, not an accuracy."""
    from PIL import Image, ImageOps

    from mnv3cli.registry.imagenet import class_names, wordnet_ids

    photos = {name: Image.open(EXAMPLES / name).convert("RGB") for name in sorted(EXAMPLE_WNIDS)}
    wnids = [w for w in wordnet_ids() if w not in EXAMPLE_WNIDS.values()][: classes - 2]
    for i, wnid in enumerate(sorted([*wnids, *EXAMPLE_WNIDS.values()])):
        owner = [n for n, w in EXAMPLE_WNIDS.items() if w == wnid]
        image = photos[owner[0] if owner else sorted(photos)[i % 2]]
        scale = 0.7 + 0.3 * ((i * 7) % 10) / 10  # side of the crop, as a fraction of the photo's
        w, h = image.size
        cw, ch = int(w * scale), int(h * scale)
        left, top = (w - cw) * ((i * 3) % 5) // 4, (h - ch) * ((i * 5) % 3) // 2
        variant = image.crop((left, top, left + cw, top + ch))
        if i % 2:
            variant = ImageOps.mirror(variant)
        (root / wnid).mkdir(parents=True)
        name = class_names()[wordnet_ids().index(wnid)].replace(" ", "_")
        variant.save(root / wnid / f"{wnid}_{name}.JPEG", quality=90)
    return root


@contextlib.contextmanager
def subprocess_warnings() -> Iterator[None]:
    """Python warnings as a fresh ``python -m mnv3cli`` shows them: on the (captured) stderr, under
    the interpreter's default filters, not into pytest's record, so that a test of "one error line"
    in-process still sees a stray warning as a second line."""
    import sys
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")  # first, as in Python
        warnings.showwarning = show
        yield


def invoke(*args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``mnv3 ARGS`` in this process (Click's CliRunner), as a CompletedProcess like ``run_cli``'s:
    for tests about what a command computes, not about the process (its exit on a signal, its
    imports, its streams' encoding). Each saves the 2-5 s a subprocess spends importing torch on a
    loaded 2-core CI machine. Offline and wide, as :func:`cli_env`; ``env`` and ``cwd`` hold for the
    call only. An exception the command let escape is raised here: it would be a traceback."""
    from click.testing import CliRunner

    from mnv3cli.cli.app import cli

    argv = list(map(str, args))
    env = {"MNV3_OFFLINE": "1", "COLUMNS": os.environ.get("COLUMNS", "200"), **(env or {})}
    before = os.getcwd()
    try:
        os.chdir(cwd or before)
        with subprocess_warnings():
            result = CliRunner().invoke(cli, argv, prog_name="mnv3", env=env)
    finally:
        os.chdir(before)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["mnv3", *argv], result.exit_code, result.stdout, result.stderr)
