"""--class-weights balanced, --sampler balanced and train's manifest splits, on hand-checkable inputs."""

from __future__ import annotations

from collections import Counter

import pytest

from mnv3cli.errors import UserError
from mnv3cli.training.config import TrainConfig
from mnv3cli.training.imbalance import (
    BalancedEpochSampler,
    balanced_class_weights,
    balanced_order,
    balanced_sample_weights,
    epoch_sampler,
)
from mnv3cli.training.manifest_data import manifest_splits

SAMPLES = [("a", 0)] * 9 + [("b", 1)] * 3 + [("c", 2)] * 0


def test_class_weights_are_inverse_frequency_as_scikit_learn_defines_them():
    weights = balanced_class_weights(SAMPLES, 3).tolist()
    assert weights == pytest.approx([12 / (2 * 9), 12 / (2 * 3), 0.0])  # a class without images: 0
    utils = pytest.importorskip("sklearn.utils")
    import numpy as np

    targets = [t for _, t in SAMPLES]
    expected = utils.compute_class_weight("balanced", classes=np.array([0, 1]), y=targets)
    assert weights[:2] == pytest.approx(expected.tolist())


def test_balanced_order_draws_classes_equally_and_is_seeded():
    samples = [("a", 0)] * 90 + [("b", 1)] * 10
    weights = balanced_sample_weights(samples)
    order = balanced_order(weights, seed=3, epoch=0)
    assert len(order) == 100 and order == balanced_order(weights, seed=3, epoch=0)
    assert order != balanced_order(weights, seed=3, epoch=1)
    drawn = Counter(samples[i][1] for epoch in range(20) for i in balanced_order(weights, seed=3, epoch=epoch))
    assert 0.45 < drawn[1] / 2000 < 0.55  # a plain shuffle gives class 1 a tenth


def test_balanced_order_shards_like_a_shuffle():
    weights = [1.0] * 7
    shards = [balanced_order(weights, seed=0, epoch=2, rank=r, world=2) for r in range(2)]
    assert [len(s) for s in shards] == [4, 4]  # ceil(7 / 2) each, as DistributedSampler gives
    whole = balanced_order(weights, seed=0, epoch=2, world=2)
    assert whole == shards[0]


def test_epoch_sampler_follows_the_config_and_resumes_mid_epoch():
    samples = [("a", 0)] * 6 + [("b", 1)] * 2
    sampler = epoch_sampler(samples, TrainConfig(sampler="balanced", seed=1), epoch=0, rank=0, world=1, start=3)
    full = epoch_sampler(samples, TrainConfig(sampler="balanced", seed=1), epoch=0, rank=0, world=1, start=0)
    assert isinstance(sampler, BalancedEpochSampler) and sampler.indices == full.indices[3:]
    assert list(sampler)[0] == (0, full.indices[3])
    plain = epoch_sampler(samples, TrainConfig(), epoch=0, rank=0, world=1, start=0)
    assert not isinstance(plain, BalancedEpochSampler) and sorted(plain.indices) == list(range(8))


def test_config_checks_the_choices():
    with pytest.raises(UserError, match="--class-weights: 'inverse' is not one of none, balanced"):
        TrainConfig(class_weights="inverse").validate()
    with pytest.raises(UserError, match="--class-weights: not with --mixup"):
        TrainConfig(class_weights="balanced", mixup=0.2).validate()
    assert TrainConfig(sampler="balanced", mixup=0.2).validate().sampler == "balanced"


@pytest.fixture
def images(tmp_path):
    for name in ("a1", "a2", "a3", "b1", "b2", "v1", "v2"):
        (tmp_path / f"{name}.jpg").write_bytes(b"x")
    return tmp_path


def test_manifest_splits_from_the_split_column(images):
    (images / "m.csv").write_text(
        "path,label,split\na1.jpg,ant,train\nb1.jpg,bee,train\na2.jpg,ant,train\n"
        "v1.jpg,ant,val\nv2.jpg,bee,val\nb2.jpg,bee,test\nnone.jpg,bee,train\n"
    )
    splits = manifest_splits(images / "m.csv", None, None, 0)
    assert splits.class_names == ["ant", "bee"]
    assert [(p.rsplit("/", 1)[1], t) for p, t in splits.train] == [("a1.jpg", 0), ("b1.jpg", 1), ("a2.jpg", 0)]
    assert [p.rsplit("/", 1)[1] for p, _ in splits.val] == ["v1.jpg", "v2.jpg"]  # test rows: never read
    assert len(splits.problems) == 1 and splits.problems[0].endswith(":8: no such image 'none.jpg'")
    with pytest.raises(UserError, match="--val-split 0.2: not used when validation data"):
        manifest_splits(images / "m.csv", None, 0.2, 0)


def test_manifest_without_splits_needs_val_or_val_split(images):
    (images / "m.csv").write_text("path,label\na1.jpg,ant\na2.jpg,ant\nb1.jpg,bee\nb2.jpg,bee\n")
    with pytest.raises(UserError, match="no validation data"):
        manifest_splits(images / "m.csv", None, None, 0)
    splits = manifest_splits(images / "m.csv", None, 0.5, 0)
    assert len(splits.train) == 2 and len(splits.val) == 2 and {t for _, t in splits.val} == {0, 1}
    (images / "classes.txt").write_text("bee\nant\n")
    ordered = manifest_splits(images / "m.csv", None, 0.5, 0, classes_file=str(images / "classes.txt"))
    assert ordered.class_names == ["bee", "ant"]
