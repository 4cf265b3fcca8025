"""What tests share besides fixtures: where the repository and ../shared are, the environment of a
CLI subprocess. Imported by conftest.py and by test modules (``from helpers import ...``)."""

from __future__ import annotations

import os
import struct
import zlib
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


def cli_env(extra: dict | None = None) -> dict:
    """The environment of a ``python -m mnv3cli`` subprocess: this checkout first on the path, no
    network, a wide terminal unless the test says otherwise."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MNV3_OFFLINE"] = "1"  # tests never touch the network
    env.setdefault("COLUMNS", "200")
    env.update(extra or {})
    return env


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb_bytes(side: int = 100_000) -> bytes:
    """A tiny valid-looking PNG whose header declares ``side`` x ``side`` pixels (10 G here)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))
