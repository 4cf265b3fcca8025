"""``--tta flip``: the mean of the logits of each image and of its mirror, for any backend."""

from __future__ import annotations

import numpy as np
import pytest

from mnv3cli.inference import FlipTTA, with_tta


class LeftHalf:
    """Logits that see only the left half of the image: mirroring changes them, predictably."""

    name = "left-half"

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        return batch[..., : batch.shape[-1] // 2].mean(axis=(2, 3))


def test_flip_averages_the_image_and_its_mirror_in_one_call():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)
    inner = LeftHalf()
    out = FlipTTA(inner)(batch)
    left = batch[..., :3].mean(axis=(2, 3))
    right = batch[..., 3:].mean(axis=(2, 3))  # the mirror's left half is the image's right half
    np.testing.assert_allclose(out, (left + right) / 2, rtol=1e-6)
    assert inner.calls == [6]  # one batch of 2N: the engine runs once


def test_a_symmetric_image_gives_the_plain_logits_and_none_is_the_backend_itself():
    batch = np.ones((2, 3, 4, 6), np.float32) * np.arange(6, dtype=np.float32)[::-1].clip(0, 2)
    batch = np.concatenate([batch[..., :3], batch[..., :3][..., ::-1]], axis=-1)  # mirror-symmetric
    inner = LeftHalf()
    np.testing.assert_allclose(FlipTTA(inner)(batch), inner(batch), rtol=1e-6)
    assert with_tta(inner, "none") is inner and with_tta(inner, "flip").name == "left-half"
    with pytest.raises(ValueError):
        with_tta(inner, "rotate")
