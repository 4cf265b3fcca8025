"""The backend registry: every registered backend against PyTorch, and a backend added from outside.

timm's habit: one test runs over every registry entry, so a new backend is tested the moment it is
registered (docs/backends.md, "Adding a backend"). The toy backend below is registered from this file
only, and must appear in every command's choices and run under ``profile`` with no other edit.
"""

from __future__ import annotations

import copy
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from mnv3cli.cli.app import cli
from mnv3cli.errors import UserError
from mnv3cli.inference.backend_registry import (
    BackendEntry,
    OpenOptions,
    backend_names,
    get_backend,
    list_backends,
    register_backend,
    unregister_backend,
)
from mnv3cli.inference.verify import TOLERANCE

ROWS = [(entry.name, row) for entry in list_backends() for row in entry.rows]


@pytest.fixture(scope="module")
def loaded(bundled_weights):
    from mnv3cli.weights.loader import load_model

    return load_model(str(bundled_weights))


@pytest.fixture(scope="module")
def images(loaded, imagenet_examples) -> np.ndarray:
    """Eight real dev images (eight classes), preprocessed as predict does."""
    from mnv3cli.data import iter_batches

    paths = [str(next(iter(sorted(d.glob("*.JPEG"))))) for d in sorted(imagenet_examples.iterdir())[:8]]
    (batch,) = list(iter_batches(paths, loaded.card.preprocess, batch_size=8))
    assert not batch.errors
    return batch.images


@pytest.fixture(scope="module")
def graph(loaded, tmp_path_factory) -> Path:
    """The model as the ONNX graph the cache would hold: what a graph backend runs."""
    from mnv3cli.inference.export import export_onnx

    path = tmp_path_factory.mktemp("graph") / "model.onnx"
    return export_onnx(loaded.model, path, input_size=loaded.card.preprocess.input_size)


@pytest.mark.parametrize("name, row", ROWS, ids=[row for _, row in ROWS])
def test_every_registered_backend_gives_pytorchs_logits(name, row, loaded, images, graph):
    """Each backend (each profile row of it) on the same images: logits within the export tolerance
    of eager PyTorch, and the same top-1 class for every image."""
    import torch

    entry = get_backend(name)
    why = entry.unavailable("cpu")
    if why is not None:
        pytest.skip(f"{name}: {why}")
    with torch.inference_mode():
        expected = loaded.model.eval()(torch.from_numpy(images)).numpy()
    options = OpenOptions(device="cpu", variant=row if row != name else None)
    backend = entry.open(copy.deepcopy(loaded.model) if entry.kind == "model" else graph, options)
    logits = np.asarray(backend(images), dtype=np.float32)
    assert logits.shape == expected.shape
    assert np.abs(logits - expected).max() <= TOLERANCE
    assert (logits.argmax(1) == expected.argmax(1)).all()
    assert backend.name == name


@pytest.mark.parametrize("entry", [e for e in list_backends() if e.export], ids=lambda e: e.name)
def test_every_export_format_is_opened_by_its_backend(entry, loaded, images, tmp_path):
    """What ``mnv3 export --format`` writes, its backend reads back (with the card, for exported
    weights) and runs like PyTorch: the verification ``export`` prints."""
    from mnv3cli.inference.export import export_verified

    if entry.unavailable() is not None:
        pytest.skip(f"{entry.name}: {entry.unavailable()}")
    path = tmp_path / f"model{entry.export.suffix}"
    difference = export_verified(loaded.model, path, loaded.card.preprocess, entry.export.name, card=loaded.card)
    assert difference <= TOLERANCE
    if entry.open_exported is not None:
        backend, card = entry.open_exported(path, OpenOptions(device="cpu"))
        assert card.class_names == loaded.card.class_names and backend.input_shape[-1] == 224


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(UserError, match=r"--backend tensorrt: unknown backend; choose one of: auto, torch"):
        get_backend("tensorrt")


# ------------------------------------------------------------------------------- a backend from outside


class ToyBackend:
    """ONNX Runtime under another name: enough to prove the plumbing, nothing of its own to test."""

    def __init__(self, path, options: OpenOptions) -> None:
        from mnv3cli.inference.onnx_backend import OnnxBackend

        self.inner = OnnxBackend(path, threads=options.threads, device="cpu")
        self.input_shape = self.inner.input_shape
        self.name = "toy"

    def __call__(self, batch):
        return self.inner(batch)


@pytest.fixture
def toy():
    entry = register_backend(BackendEntry(name="toy", title="Toy", open=ToyBackend, module="onnxruntime"))
    try:
        yield entry
    finally:
        unregister_backend("toy")


def _choices(command: str, flag: str) -> tuple[str, ...]:
    params = cli.get_command(click.Context(cli), command).params
    return tuple(next(p for p in params if flag in p.opts).type.choices)


def test_a_backend_registered_from_a_test_appears_in_every_command(toy):
    for command in ("predict", "evaluate", "profile"):
        assert "toy" in _choices(command, "--backend"), command
    assert backend_names()[-1] == "toy"


def test_a_registered_backend_is_gone_once_unregistered(toy):
    unregister_backend("toy")
    try:
        assert "toy" not in _choices("predict", "--backend")
        with pytest.raises(UserError, match="unknown backend"):
            get_backend("toy")
    finally:
        register_backend(toy)  # the fixture removes it again


def test_a_name_cannot_be_registered_twice(toy):
    with pytest.raises(ValueError, match="already registered: toy"):
        register_backend(toy)
    with pytest.raises(ValueError, match="eager"):
        register_backend(BackendEntry(name="other", title="Other", open=ToyBackend, timings=("eager",)))


def test_profile_times_a_registered_backend_without_other_edits(toy, one_thread):
    """profile exports the model to ONNX once and times the toy on it, as it does ONNX Runtime."""
    import json

    result = CliRunner().invoke(
        cli,
        ["profile", "--size", "small", "-r", "64", "--backend", "toy", "--runs", "2", "--warmup", "0", "--json"],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [s["backend"] for s in record["latency"]] == ["toy"]


def test_auto_never_picks_a_backend_registered_without_a_rank(toy):
    from mnv3cli.inference.backend_registry import choose_backend

    assert choose_backend("auto", "cpu") != "toy"
    assert choose_backend("toy", "cpu") == "toy"
    with pytest.raises(UserError, match="--device mps: the toy backend runs on the CPU"):
        choose_backend("toy", "mps")


def test_exported_files_are_known_by_their_registered_suffix(tmp_path):
    from mnv3cli.inference.exported import is_exported

    suffixes = {s for e in list_backends() for s in e.files}
    assert {".onnx", ".xml"} <= suffixes
    assert all(is_exported(tmp_path / f"x{s}") for s in suffixes)
    assert not is_exported(tmp_path / "x.pt") and not is_exported(Path("weights.safetensors"))
