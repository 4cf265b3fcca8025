"""What tests share besides fixtures: where the repository and ../shared are, the environment of a
CLI subprocess. Imported by conftest.py and by test modules (``from helpers import ...``)."""

from __future__ import annotations

import os
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
