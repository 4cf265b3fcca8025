"""Multi-label models: the card's head and thresholds (bounds, checkpoint round trip) and the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from mnv3cli.errors import UserError
from mnv3cli.evaluation.multilabel import average_precision, best_f1_thresholds, multilabel_metrics, sigmoid
from mnv3cli.registry import ModelCard, Preprocess

NAMES = ("birds", "dogs", "food")


def card(**kw) -> ModelCard:
    return ModelCard("mobilenetv3_small_100", NAMES, Preprocess(), **kw)


def test_default_card_is_single_label():
    c = card()
    assert c.head == "softmax" and not c.multi_label and c.thresholds is None
    assert ModelCard.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    "thresholds",
    [[0.5, 0.5], [0.5, 0.5, float("nan")], [0.5, 0.5, 1.5], [0.5, -0.1, 0.5], [0.5, True, 0.5], "0.5", [0.5, "a", 0.5]],
)
def test_hostile_thresholds_are_refused(thresholds):
    with pytest.raises(ValueError):
        ModelCard.from_dict(card(head="sigmoid").to_dict() | {"thresholds": thresholds})


def test_unknown_head_and_thresholds_on_softmax_are_refused():
    with pytest.raises(ValueError, match="head"):
        card(head="tanh")
    with pytest.raises(ValueError, match="sigmoid"):
        card(thresholds=(0.5, 0.5, 0.5))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_keeps_head_and_thresholds(tmp_path, suffix):
    from mnv3cli.factory import create_model
    from mnv3cli.weights.checkpoint import save_checkpoint
    from mnv3cli.weights.loader import load_model

    model = create_model("mobilenetv3_small_100", num_classes=3)
    c = card(head="sigmoid", thresholds=(0.25, 0.5, 0.75), arch=dict(model.config))
    save_checkpoint(tmp_path / f"m{suffix}", model, card=c)
    loaded = load_model(tmp_path / f"m{suffix}").card
    assert loaded.head == "sigmoid" and loaded.thresholds == (0.25, 0.5, 0.75)


def test_checkpoint_with_bad_thresholds_is_a_user_error(tmp_path):
    import torch

    from mnv3cli.factory import create_model
    from mnv3cli.weights.checkpoint import read_checkpoint, save_checkpoint

    model = create_model("mobilenetv3_small_100", num_classes=3)
    save_checkpoint(tmp_path / "m.pt", model, card=card(head="sigmoid", arch=dict(model.config)))
    record = torch.load(tmp_path / "m.pt", weights_only=True) | {"thresholds": [0.5, 0.5, float("inf")]}
    torch.save(record, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="threshold"):
        read_checkpoint(tmp_path / "bad.pt")


def test_single_label_checkpoint_bytes_unchanged(tmp_path):
    """No head/threshold keys in a softmax checkpoint: its bytes are those of earlier versions."""
    import torch

    from mnv3cli.factory import create_model
    from mnv3cli.weights.checkpoint import save_checkpoint

    model = create_model("mobilenetv3_small_100", num_classes=3)
    save_checkpoint(tmp_path / "m.pt", model, card=card(arch=dict(model.config)))
    record = torch.load(tmp_path / "m.pt", weights_only=True)
    assert "head" not in record and "thresholds" not in record


def _random_case(seed=0, n=60, classes=4):
    rng = np.random.default_rng(seed)
    targets = rng.random((n, classes)) < 0.4
    scores = np.round(targets * 0.3 + rng.random((n, classes)), 2)  # rounded: ties happen
    return scores, targets


def test_average_precision_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    scores, targets = _random_case()
    for c in range(scores.shape[1]):
        assert average_precision(scores[:, c], targets[:, c]) == pytest.approx(
            metrics.average_precision_score(targets[:, c], scores[:, c])
        )
    result = multilabel_metrics(scores, targets, [0.5] * 4, list("abcd"))
    assert result.map == pytest.approx(metrics.average_precision_score(targets, scores, average="macro"))
    assert result.micro_f1 == pytest.approx(metrics.f1_score(targets, scores >= 0.5, average="micro"))
    assert result.macro_f1 == pytest.approx(metrics.f1_score(targets, scores >= 0.5, average="macro"))


def test_average_precision_by_hand():
    # ranked: +, -, +  -> precision at the positives 1 and 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1])) == pytest.approx(5 / 6)
    assert average_precision(np.array([0.9, 0.8]), np.array([0, 0])) is None


def test_f1_optimal_thresholds_separate_a_separable_class():
    probs = np.array([[0.9, 0.2], [0.8, 0.6], [0.3, 0.7], [0.1, 0.1]])
    targets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=bool)
    t = best_f1_thresholds(probs, targets)
    assert 0.3 < t[0] <= 0.8 and 0.2 < t[1] <= 0.6
    assert ((probs >= np.array(t)) == targets).all()


def test_sigmoid_is_stable():
    assert sigmoid(np.array([[-1000.0, 0.0, 1000.0]])).tolist() == [[0.0, 0.5, 1.0]]


def test_class_temperatures_are_bounded_and_sigmoid_only():
    with pytest.raises(ValueError, match="temperature"):
        card(head="sigmoid", class_temperatures=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="sigmoid"):
        card(class_temperatures=(1.0, 1.0, 1.0))
    c = card(head="sigmoid", class_temperatures=(0.5, 1.0, 2.0))
    assert ModelCard.from_dict(c.to_dict()) == c
    assert c.with_classes(["a"]).class_temperatures is None


def test_fitted_temperature_recovers_the_true_one():
    from mnv3cli.evaluation.multilabel import fit_class_temperatures

    rng = np.random.default_rng(1)
    z = rng.normal(0, 4, size=(20000, 2))
    truth = np.stack([rng.random(20000) < sigmoid(z[:, 0] / 2.0), rng.random(20000) < sigmoid(z[:, 1] / 0.5)], axis=1)
    t = fit_class_temperatures(z, truth)
    assert t[0] == pytest.approx(2.0, rel=0.1) and t[1] == pytest.approx(0.5, rel=0.1)
    assert fit_class_temperatures(z, np.ones_like(truth)) == (1.0, 1.0)  # nothing to fit against


def test_carried_thresholds_keep_every_decision():
    from mnv3cli.evaluation.multilabel import carry_thresholds

    rng = np.random.default_rng(2)
    z = rng.normal(0, 3, size=(500, 3))
    thresholds, temperatures = (0.2, 0.5, 0.9), (0.3, 1.0, 4.0)
    moved = carry_thresholds(thresholds, temperatures)
    before = sigmoid(z) >= np.array(thresholds)
    after = sigmoid(z / np.array(temperatures)) >= np.array(moved)
    assert (before == after).mean() > 0.998  # equal up to a logit on the boundary itself
    assert moved[1] == pytest.approx(0.5)


def test_mixup_is_refused_for_multi_label():
    from mnv3cli.training.config import TrainConfig

    with pytest.raises(UserError, match="--mixup"):
        TrainConfig(multi_label=True, mixup=0.2).validate()
    with pytest.raises(UserError, match="--loss"):
        TrainConfig(loss="focal").validate()


def test_manifest_splits_give_multi_hot_targets(tmp_path):
    from PIL import Image

    from mnv3cli.training.manifest_data import manifest_splits

    for name in "abcd":
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.png")
    rows = [("a", ["dog", "cat"], "train"), ("b", ["cat"], "train"), ("c", ["dog"], "val"), ("d", ["cat"], "val")]
    (tmp_path / "m.jsonl").write_text(
        "".join(f'{{"path": "{p}.png", "labels": {labels}, "split": "{s}"}}\n' for p, labels, s in rows).replace(
            "'", '"'
        )
    )
    splits = manifest_splits(tmp_path / "m.jsonl", None, None, 0)
    assert splits.multi_label and splits.class_names == ["dog", "cat"]
    assert [t for _, t in splits.train] == [(1.0, 1.0), (0.0, 1.0)]
    assert [t for _, t in splits.val] == [(1.0, 0.0), (0.0, 1.0)]


def test_csv_records_carry_the_labels_column():
    from mnv3cli.prediction.predict import InputResult, Label
    from mnv3cli.prediction.records import CsvRows, JsonLines

    result = InputResult("x.jpg", (Label(1, "dogs", 0.9),), labels=(Label(1, "dogs", 0.9), Label(0, "cats", 0.6)))
    fmt = CsvRows(1, labels=True)
    assert fmt.columns[:2] == ["path", "labels"]
    assert fmt.line(result).decode().startswith("x.jpg,dogs;cats,dogs,1,0.9,")
    assert JsonLines(1, labels=True).fits(result.to_dict()) and not JsonLines(1).fits(result.to_dict())
