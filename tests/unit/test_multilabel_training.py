"""What a multi-label training run does differently from a single-label one before its first step:
crops that keep every labelled object, and a sigmoid head that starts at the labels' frequencies."""

from __future__ import annotations

import contextlib
import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from mnv3cli.registry import Preprocess
from mnv3cli.training.config import TrainConfig
from mnv3cli.training.data import train_transform

COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)], dtype=np.uint8)


def mosaic(size: int = 224) -> Image.Image:
    """A 2x2 mosaic of four flat colours, one a quarter (each stands for a labelled photo)."""
    half = size // 2
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    for i, (y, x) in enumerate([(0, 0), (0, half), (half, 0), (half, half)]):
        pixels[y : y + half, x : x + half] = COLOURS[i]
    return Image.fromarray(pixels)


def quarter_shares(tensor: torch.Tensor, preprocess: Preprocess) -> np.ndarray:
    """The share of the output's pixels nearest to each quarter's colour."""
    mean, std = np.asarray(preprocess.mean)[:, None, None], np.asarray(preprocess.std)[:, None, None]
    pixels = (tensor.numpy() * std + mean).reshape(3, -1).T * 255
    nearest = np.argmin(((pixels[:, None, :] - COLOURS[None].astype(float)) ** 2).sum(-1), axis=1)
    return np.bincount(nearest, minlength=4) / len(nearest)


def test_a_multi_label_runs_train_transform_keeps_every_quarter_of_a_mosaic():
    preprocess = Preprocess()
    cfg = TrainConfig(multi_label=True)
    transform = train_transform(preprocess, crop_scale=cfg.resolved_crop_scale)
    image = mosaic()
    for seed in range(60):
        torch.manual_seed(seed)
        shares = quarter_shares(transform(image), preprocess)
        assert shares.min() > 0.05, f"seed {seed}: a quarter (a label) all but cropped away: {shares}"


def test_crop_scale_defaults_by_head_and_an_explicit_one_wins():
    assert TrainConfig().resolved_crop_scale == 0.25  # single-label runs crop as before
    assert TrainConfig(multi_label=True).resolved_crop_scale == 0.8
    assert TrainConfig(multi_label=True, crop_scale=0.3).resolved_crop_scale == 0.3
    assert TrainConfig(multi_label=True).resolved_dict()["crop_scale"] == 0.8


def test_a_new_sigmoid_head_starts_at_the_labels_frequencies():
    from mnv3cli.training.multilabel import init_prior_head

    head = torch.nn.Linear(64, 3)
    samples = [("a", (1.0, 0.0, 1.0)), ("b", (0.0, 0.0, 1.0)), ("c", (0.0, 0.0, 1.0)), ("d", (0.0, 1.0, 1.0))]
    init_prior_head(head, samples)
    probs = torch.sigmoid(head(torch.randn(256, 64))).mean(0)
    assert probs[:2].tolist() == pytest.approx([0.25, 0.25], abs=0.03)
    assert probs[2].item() > 0.99  # a label every image carries (clipped short of certainty)


def test_a_multi_label_run_is_prepared_with_its_prior_head_and_crop(tmp_path):
    from mnv3cli.training.loop import TrainListener
    from mnv3cli.training.run import prepare

    rows = []
    for i in range(8):
        Image.new("RGB", (32, 32), tuple(int(c) for c in COLOURS[i % 4])).save(tmp_path / f"{i}.png")
        labels = ["dog", "cat"] if i % 4 == 0 else ["cat"]
        rows.append({"path": f"{i}.png", "labels": labels, "split": "train" if i < 6 else "val"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(data=str(tmp_path / "m.jsonl"), output=str(tmp_path / "run"), epochs=1, batch_size=2)
    cfg = TrainConfig(**(cfg.to_dict() | {"workers": 1, "tensorboard": False, "resolution": 32}))
    with contextlib.ExitStack() as held:
        run, _ = prepare(cfg, TrainListener(), torch.device("cpu"), None, threading.Event(), held)
        try:
            bias = run.model.classifier.bias.detach()
            assert torch.sigmoid(bias).tolist() == pytest.approx([2 / 6, 1 - 1e-3], abs=1e-4)  # dog, cat
            crop = next(t for t in run.dataset.transform.transforms if hasattr(t, "scale"))
            assert crop.scale == (0.8, 1.0)
        finally:
            run.loader.close()
