"""``mnv3 train``: learning, outputs, exact resume, signals, bad images, freezing, DDP, evaluate parity.

Everything runs on generated images of coloured shapes (3 classes, 32-48 px) with the smallest
registered model, on one thread (torch's thread pool only slows tiny models on a shared 2-core box).
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import SHAPES, make_shapes
from mnv3cli.errors import Interrupted, UserError
from mnv3cli.training.config import TrainConfig
from mnv3cli.training.loop import TrainingDiverged, TrainListener, train
from mnv3cli.weights.checkpoint import read_checkpoint

TINY = {
    "model": "mobilenetv3_small_075",
    "resolution": 32,
    "batch_size": 8,
    "epochs": 2,
    "workers": 1,
    "lr": 5e-3,
    "warmup_epochs": 0,
    "bn_momentum": 0.3,
}


class _StopAt(TrainListener):
    """Requests a stop (as SIGINT does) at a given epoch end or step."""

    def __init__(self, stop: threading.Event, epoch: int | None = None, step: tuple[int, int] | None = None):
        self.stop, self.epoch, self.step = stop, epoch, step

    def on_step(self, p):
        if self.step == (p.epoch, p.step):
            self.stop.set()

    def on_epoch_end(self, r):
        if r.epoch == self.epoch:
            self.stop.set()


def _interrupted_then_resumed(cfg: TrainConfig, **stop_at) -> Path:
    stop = threading.Event()
    with pytest.raises(Interrupted, match=f"mnv3 train --resume -o {cfg.output}"):
        train(cfg, _StopAt(stop, **stop_at), stop=stop)
    assert (Path(cfg.output) / "last.pt").exists()
    train(cfg, resume=cfg.output)
    return Path(cfg.output)


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different


def test_interrupted_and_resumed_run_ends_with_identical_weights(shapes, tmp_path, one_thread):
    """Stopped after epoch 1 or in the middle of epoch 2, then resumed: bit-identical weights, EMA,
    optimizer moments and metrics. The recipe uses every random part (augmentation, mixup, erasing)."""
    recipe = TINY | {
        "ema": True,
        "mixup": 0.4,
        "augment": "trivialaugment",
        "random_erasing": 0.25,
        "data": str(shapes),
        "warmup_epochs": 1,
    }
    straight = train(TrainConfig(**recipe, output=str(tmp_path / "straight")))
    reference = read_checkpoint(straight.last_checkpoint)
    for name, stop_at in (("epoch", {"epoch": 1}), ("step", {"step": (2, 3)})):
        run = _interrupted_then_resumed(TrainConfig(**recipe, output=str(tmp_path / name)), **stop_at)
        resumed = read_checkpoint(run / "last.pt")
        _assert_same_state(reference["state_dict"], resumed["state_dict"])  # the EMA
        _assert_same_state(reference["extra"]["train_state_dict"], resumed["extra"]["train_state_dict"])
        moments = [s["exp_avg"] for s in reference["extra"]["optimizer"]["state"].values()]
        assert all(
            torch.equal(m, s["exp_avg"])
            for m, s in zip(moments, resumed["extra"]["optimizer"]["state"].values(), strict=False)
        )
        strip = [
            {k: v for k, v in row.items() if k not in ("images_per_sec", "seconds")}
            for row in reference["extra"]["history"]
        ]
        assert strip == [
            {k: v for k, v in row.items() if k not in ("images_per_sec", "seconds")}
            for row in resumed["extra"]["history"]
        ], name


def test_resume_is_exact_with_data_loading_workers(shapes, tmp_path, one_thread):
    """With ``-j 2`` each worker process draws augmentation; a resumed run hands batches to workers
    in another order, so the randomness of a sample must depend on (seed, epoch, index) alone."""
    recipe = TINY | {"data": str(shapes), "workers": 2, "epochs": 1, "random_erasing": 0.5, "augment": "trivialaugment"}
    straight = read_checkpoint(train(TrainConfig(**recipe, output=str(tmp_path / "straight"))).last_checkpoint)
    run = _interrupted_then_resumed(TrainConfig(**recipe, output=str(tmp_path / "step")), step=(1, 3))
    _assert_same_state(straight["state_dict"], read_checkpoint(run / "last.pt")["state_dict"])


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(shapes, tmp_path, one_thread):
    cfg = TrainConfig(**TINY, data=str(shapes), output=str(tmp_path / "run"))
    stop = threading.Event()
    with pytest.raises(Interrupted):
        train(cfg, _StopAt(stop, epoch=1), stop=stop)
    good = (tmp_path / "run" / "last.pt").read_bytes()
    # resumed with an absurd learning rate (a new schedule, since the length changed): the weights blow up
    wild = TrainConfig(**TINY | {"data": str(shapes), "output": str(tmp_path / "run"), "lr": 1e30, "epochs": 3})
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf).*last good checkpoint.*is kept"):
        train(wild, resume=tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").read_bytes() == good


def test_a_folder_left_without_a_checkpoint_is_reused_and_one_with_a_checkpoint_is_not(shapes, tmp_path, one_thread):
    """A run killed before its first checkpoint leaves only config.json: a new run with the same
    ``-o`` takes the folder. A folder with last.pt or best.pt still belongs to its run."""
    from mnv3cli.training.run import check_free

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"config": {}}')
    result = train(TrainConfig(**TINY | {"data": str(shapes), "output": str(run), "epochs": 1}))
    assert result.epochs == 1 and (run / "last.pt").exists()
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 1
    for name in ("last.pt", "best.pt"):
        taken = tmp_path / name
        taken.mkdir()
        (taken / name).write_bytes(b"")
        with pytest.raises(UserError, match="already holds a training run"):
            check_free(taken)


def test_unreadable_images_are_skipped_and_counted(shapes, tmp_path, one_thread):
    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    (data / "train" / "red_circle" / "empty.png").write_bytes(b"")
    (data / "train" / "green_square" / "text.jpg").write_text("not an image")
    good = (data / "train" / "red_circle" / "000.png").read_bytes()
    (data / "train" / "red_circle" / "truncated.png").write_bytes(good[: len(good) // 2])
    (data / "val" / "red_circle" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = train(TrainConfig(**TINY | {"data": str(data), "output": str(tmp_path / "run"), "epochs": 1}))
    assert sorted(Path(p).name for p, _ in result.skipped) == ["bad.jpg", "empty.png", "text.jpg", "truncated.png"]
    assert all(reason for _, reason in result.skipped)
    assert result.summary().skipped_images == 4 and len(result.history) == 1


def test_mixup_skips_a_batch_left_with_one_readable_image(tmp_path, one_thread):
    """Mixup pairs images; a batch with a single readable image has no pair and is skipped like an
    empty one (mixing an empty batch used to give a NaN loss and stop the run as diverged)."""
    from mnv3cli.training.data import EpochSampler, find_splits

    data = make_shapes(tmp_path / "data", per_class=(4, 2))
    train_samples = find_splits(data).train
    cfg = TrainConfig(
        **TINY | {"data": str(data), "output": str(tmp_path / "run"), "epochs": 1, "batch_size": 2, "mixup": 0.4}
    )
    first = EpochSampler(len(train_samples), seed=cfg.seed, epoch=0).indices[0]
    Path(train_samples[first][0]).write_bytes(b"not an image")
    result = train(cfg)
    assert [path for path, _ in result.skipped] == [train_samples[first][0]]
    assert np.isfinite(result.history[0]["train_loss"])
    assert read_checkpoint(result.last_checkpoint)["extra"]["num_updates"] == 5  # 6 batches, 1 skipped


def test_val_split_is_stratified_and_seeded(shapes, tmp_path):
    from mnv3cli.training.data import find_splits

    a = find_splits(shapes / "train", val_split=0.25, seed=1)
    assert a.val == find_splits(shapes / "train", val_split=0.25, seed=1).val
    assert a.val != find_splits(shapes / "train", val_split=0.25, seed=2).val
    assert len(a.val) == 18 and len(a.train) == 54 and not set(a.val) & set(a.train)
    assert sorted(t for _, t in a.val) == [0] * 6 + [1] * 6 + [2] * 6
    other = find_splits(shapes, val=shapes / "train")  # --val overrides DIR/val
    assert len(other.val) == 72


@pytest.fixture(scope="module")
def tflite_model(int8_tflite):
    from mnv3cli.weights.loader import load_model

    return load_model(int8_tflite)


def test_unfolding_batchnorm_keeps_the_function(tflite_model, cat_photo, coffee_photo):
    """TFLite weights come with BatchNorm folded away; measuring real statistics must not change
    what the model computes (eval mode), only make train-mode batch statistics meaningful."""
    import copy

    from mnv3cli.data import load_and_preprocess
    from mnv3cli.training.bn_recalibration import has_folded_batchnorm, unfold_batchnorm

    model = copy.deepcopy(tflite_model.model).eval()
    x = torch.from_numpy(
        np.stack([load_and_preprocess(p, tflite_model.card.preprocess) for p in (cat_photo, coffee_photo)])
    )
    with torch.no_grad():
        before = model(x)
    assert has_folded_batchnorm(model)
    assert unfold_batchnorm(model, [x, x.flip(3)]) == 4
    assert not has_folded_batchnorm(model) and not model.training
    with torch.no_grad():
        after = model(x)
        model.train()
        model.dropout.eval()
        in_train_mode = model(torch.cat([x, x.flip(3)]))[:2]  # normalised by these images' statistics
    assert torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(before, in_train_mode, atol=1e-3)  # batch statistics now fit the weights


def test_freeze_trains_only_the_last_stages_of_tflite_weights(shapes, tmp_path, int8_tflite, tflite_model, one_thread):
    from mnv3cli.weights.loader import load_model

    cfg = TrainConfig(
        data=str(shapes),
        output=str(tmp_path / "run"),
        weights=str(int8_tflite),
        freeze=2,
        resolution=64,
        epochs=1,
        batch_size=8,
        workers=1,
    )
    result = train(cfg)
    ckpt = read_checkpoint(result.checkpoint)
    assert ckpt["class_names"] == sorted(SHAPES) and ckpt["num_classes"] == 3
    assert ckpt["arch"]["tf_padding"] is True and ckpt["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert ckpt["state_dict"]["classifier.weight"].shape == (3, 1024)
    before, after = tflite_model.model, load_model(result.checkpoint).model
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32))
    with torch.no_grad():
        frozen_before = before.stages[:4](before.stem(x))
        frozen_after = after.stages[:4](after.stem(x))
        # stem and bneck stages 0-3 are frozen: the same function (their BatchNorm statistics were
        # measured, which moves parameters but not what they compute)
        assert torch.allclose(frozen_before, frozen_after, atol=1e-3)
        assert torch.equal(before.stem.conv.weight, after.stem.conv.weight)
        # the last bneck stage and the head were trained
        assert not torch.equal(before.stages[4][0].expand.conv.weight, after.stages[4][0].expand.conv.weight)
        assert not torch.equal(before.head.conv.weight, after.head.conv.weight)


class _Plan(TrainListener):
    def on_start(self, plan):
        self.plan = plan


@pytest.mark.parametrize("split", ["train", "val"])
def test_a_split_of_unreadable_images_stops_before_training(tmp_path, split):
    """Every training (or validation) image unreadable: one error naming the folder, and no run
    folder made (training on nothing used to report loss 0 and top-1 0 % and write best.pt)."""
    data = make_shapes(tmp_path / "data", per_class=(4, 2))
    for path in (data / split).rglob("*.png"):
        path.write_bytes(b"not an image")
    what, count = ("training", 12) if split == "train" else ("validation", 6)
    with pytest.raises(
        UserError,
        match=rf"^{data / split}: none of its {count} {what} images can be "
        r"read \(e\.g\. .*: not an image Pillow can read\)$",
    ):
        train(TrainConfig(**TINY | {"data": str(data), "output": str(tmp_path / "run")}))
    assert not (tmp_path / "run").exists()


def test_images_that_fail_only_when_decoded_stop_after_the_first_epoch(tmp_path, one_thread):
    """Valid headers, truncated data: not seen before training, but the first epoch finds nothing
    to learn from and stops without writing a checkpoint."""
    data = make_shapes(tmp_path / "data", per_class=(4, 2))
    for path in (data / "train").rglob("*.png"):
        path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(UserError, match=rf"^{data / 'train'}: none of its training images could be decoded"):
        train(TrainConfig(**TINY | {"data": str(data), "output": str(tmp_path / "run"), "epochs": 1}))
    assert not (tmp_path / "run" / "best.pt").exists()


def test_some_unreadable_images_are_announced_before_training(tmp_path, one_thread):
    data = make_shapes(tmp_path / "data", per_class=(4, 2))
    (data / "train" / "red_circle" / "000.png").write_bytes(b"")
    (data / "train" / "green_square" / "001.png").write_text("not an image")
    (data / "val" / "red_circle" / "000.png").write_bytes(b"")
    listener = _Plan()
    result = train(TrainConfig(**TINY | {"data": str(data), "output": str(tmp_path / "run"), "epochs": 1}), listener)
    plan = listener.plan
    assert (plan.train_images, plan.unreadable_train, plan.val_images, plan.unreadable_val) == (10, 2, 5, 1)
    assert plan.unreadable_example.endswith("green_square/001.png: not an image Pillow can read")
    assert len(result.skipped) == 3


def test_epochs_count_from_one_in_every_message(shapes, tmp_path, one_thread):
    """Stopped before any step: no "after epoch 0"; the checkpoint's epoch counts completed epochs
    (the last one's number from 1), the plan's start epoch counts from 1."""
    stop = threading.Event()
    stop.set()
    cfg = TrainConfig(**TINY | {"data": str(shapes), "output": str(tmp_path / "run")})
    with pytest.raises(Interrupted, match=r"^interrupted before the first step; saved "):
        train(cfg, stop=stop)
    assert read_checkpoint(tmp_path / "run" / "last.pt")["extra"]["epoch"] == 0
    listener = _Plan()
    result = train(cfg, listener, resume=cfg.output)
    assert listener.plan.start_epoch == 1 and result.best_epoch in (1, 2)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert read_checkpoint(result.last_checkpoint)["extra"]["epoch"] == 2


def test_train_summary_is_the_json_object_in_its_order(tmp_path):
    """``train --json`` prints ``TrainSummary.to_dict()``: the keys scripts read, in a fixed order,
    numbers rounded, the last epoch's figures from the history (None before any epoch)."""
    from mnv3cli.training.events import TrainResult

    row = {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6, "top1": 81.25, "top5": 99.0, "images_per_sec": 120.0}
    result = TrainResult(
        tmp_path, 81.254999, 2, 2, tmp_path / "best.pt", tmp_path / "last.pt", [row], [("a.jpg", "bad")], 12.3456
    )
    summary = result.summary()
    assert list(summary.to_dict()) == [
        *("best_top1", "best_epoch", "epochs", "checkpoint", "last_checkpoint", "output", "top1", "top5"),
        *("train_loss", "val_loss", "images_per_sec", "skipped_images", "seconds", "calibration"),
        *("stopped_early", "patience"),
    ]
    assert (summary.best_top1, summary.top1, summary.val_loss, summary.skipped_images) == (81.25, 81.25, 0.6, 1)
    assert summary.seconds == 12.3 and summary.checkpoint == str(tmp_path / "best.pt")
    empty = TrainResult(tmp_path, 0.0, 0, 0, tmp_path / "best.pt", tmp_path / "last.pt", [], [], 1.0).summary()
    assert empty.top1 is None and empty.images_per_sec is None and empty.calibration is None
