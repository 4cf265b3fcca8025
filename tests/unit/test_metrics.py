"""The metrics' arithmetic, on inputs small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mnv3cli.evaluation.metrics import (
    ClassificationMeter,
    log_softmax,
    softmax,
    topk_indices,
)


def test_topk_ties_go_to_the_lower_index():
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    assert topk_indices(scores, 2).tolist() == [[1, 2], [0, 1]]
    assert topk_indices(scores, 5)[0].tolist() == [1, 2, 4, 0, 3]


def test_topk_ranks_nan_last_and_keeps_k_per_row():
    scores = np.array([[np.nan, 1.0, np.nan, 2.0]])
    assert topk_indices(scores, 3).tolist() == [[3, 1, 0]]


def test_log_softmax_is_stable_for_large_logits():
    logits = np.array([[1000.0, 999.0, -1000.0]], dtype=np.float32)
    got = log_softmax(logits)
    assert np.isfinite(got).all()
    assert got[0, 0] == pytest.approx(-np.log1p(np.exp(-1.0)), abs=1e-5)
    assert softmax(logits).sum() == pytest.approx(1.0, abs=1e-6)


def test_loss_is_the_mean_cross_entropy():
    meter = ClassificationMeter(3)
    meter.update(np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])), np.array([0, 2]))
    assert meter.mean_loss == pytest.approx((np.log(2) + np.log(10)) / 2, rel=1e-5)


def test_top5_counts_a_target_ranked_fifth_but_not_sixth():
    logits = np.array([[6, 5, 4, 3, 2, 1, 0]] * 2, dtype=np.float32)
    meter = ClassificationMeter(7)
    meter.update(logits, np.array([4, 5]))  # ranked 5th and 6th
    assert meter.correct_top5 == 1 and meter.top5 == 50.0 and meter.top1 == 0.0


def test_macro_and_weighted_averages_differ_by_support():
    meter = ClassificationMeter(2)
    eye = np.eye(2, dtype=np.float32) * 10
    # class 0: 3 images, all right; class 1: 1 image, predicted 0 -> recall 100 % and 0 %
    meter.update(eye[[0, 0, 0, 0]], np.array([0, 0, 0, 1]))
    averages = meter.averages([0, 1])
    assert averages["macro"]["recall"] == pytest.approx(50.0)
    assert averages["weighted"]["recall"] == pytest.approx(75.0)
    assert meter.per_class([0])[0].precision == pytest.approx(75.0)


def test_shards_merge_to_the_one_process_numbers():
    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(20, 6)).astype(np.float32), rng.integers(0, 6, 20)
    whole = ClassificationMeter(6)
    whole.update(logits, targets)
    parts = [ClassificationMeter(6) for _ in range(2)]
    parts[0].update(logits[:7], targets[:7])
    parts[1].update(logits[7:], targets[7:])
    merged = ClassificationMeter(6)
    merged.merge_arrays(parts[0].state_arrays() + parts[1].state_arrays())
    assert (merged.confusion == whole.confusion).all() and merged.correct_top5 == whole.correct_top5
    assert merged.mean_loss == pytest.approx(whole.mean_loss)


def test_most_confused_lists_off_diagonal_cells_largest_first():
    meter = ClassificationMeter(3)
    eye = np.eye(3, dtype=np.float32)
    meter.update(eye[[1, 1, 2, 0, 0]], np.array([0, 0, 0, 0, 1]))
    assert meter.most_confused() == [(0, 1, 2), (0, 2, 1), (1, 0, 1)]


def test_log_softmax_shifts_each_row_by_its_own_maximum():
    """A global shift underflows a row far below the others to log(0) = -inf."""
    got = log_softmax(np.array([[1000.0, 999.0], [-1000.0, -1001.0]], dtype=np.float32))
    assert np.isfinite(got).all() and np.allclose(got[0], got[1])


def test_topk_equals_a_stable_full_sort_on_many_classes():
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=(16, 1000)), 1)  # many ties
    for k in (1, 2, 5, 7):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        assert (topk_indices(scores, k) == expected).all(), k


def test_batches_accumulate():
    eye = np.eye(3, dtype=np.float32) * 5
    one, two = ClassificationMeter(3), ClassificationMeter(3)
    one.update(eye[[0, 1, 2, 0]], np.array([0, 1, 0, 0]))
    two.update(eye[[0, 1]], np.array([0, 1]))
    two.update(eye[[2, 0]], np.array([0, 0]))
    assert (one.confusion == two.confusion).all() and one.count == two.count == 4
    assert two.correct_top5 == 4 and two.loss_sum == pytest.approx(one.loss_sum)
    assert two.confusion.dtype.kind == "i"


def test_per_class_scores_by_hand():
    meter = ClassificationMeter(4)
    # truth 0 -> 0, 0, 1; truth 1 -> 1; truth 2 -> 1; class 3 never seen
    meter.update(np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 1]] * 9, np.array([0, 0, 0, 1, 2]))
    scores = meter.per_class()
    assert list(scores) == [0, 1, 2]  # seen as truth or prediction only
    zero, one, two = scores[0], scores[1], scores[2]
    assert (zero.precision, zero.support) == (100.0, 3) and zero.recall == pytest.approx(200 / 3)
    assert zero.f1 == pytest.approx(80.0)
    assert one.precision == pytest.approx(100 / 3) and one.recall == 100.0 and one.f1 == pytest.approx(50.0)
    assert (two.precision, two.recall, two.f1, two.support) == (0.0, 0.0, 0.0, 1)
    only_predicted = ClassificationMeter(3)
    only_predicted.update(np.eye(3, dtype=np.float32)[[2]], np.array([0]))
    assert list(only_predicted.per_class()) == [0, 2]
    assert (only_predicted.per_class()[2].recall, only_predicted.per_class()[2].support) == (0.0, 0)


def test_averages_cover_exactly_the_classes_asked_for():
    meter = ClassificationMeter(3)
    meter.update(np.eye(3, dtype=np.float32)[[0, 1, 1]] * 9, np.array([0, 1, 2]))
    assert meter.averages([0])["macro"]["recall"] == pytest.approx(100.0)  # one class: itself
    assert meter.averages([0, 1])["macro"]["recall"] == pytest.approx(100.0)
    assert meter.averages([0, 1, 2])["macro"]["recall"] == pytest.approx(200 / 3)


def test_merged_confusion_stays_integer():
    meter = ClassificationMeter(2)
    meter.update(np.eye(2, dtype=np.float32)[[0, 1]], np.array([0, 0]))
    meter.merge_arrays(meter.state_arrays())
    assert meter.confusion.dtype.kind == "i" and meter.confusion.tolist() == [[1, 1], [0, 0]]
