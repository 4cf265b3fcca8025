"""Calibration measures and temperature fitting, checked against values worked out by hand or by
brute force (a grid search over the temperature)."""

from __future__ import annotations

import numpy as np
import pytest

from mnv3cli.evaluation.calibration import (
    accuracy_coverage,
    brier_terms,
    expected_calibration_error,
    fit_temperature,
    nll_at,
    reliability_bins,
)


def test_ece_is_the_count_weighted_gap_per_bin():
    # bin [0.9, 0.933): 10 images at 0.92, 9 right -> gap 0.02; bin [0.6, 0.667): 10 at 0.62, 3 right -> 0.32
    conf = np.array([0.92] * 10 + [0.62] * 10)
    correct = np.array([1] * 9 + [0] + [1] * 3 + [0] * 7)
    assert expected_calibration_error(conf, correct) == pytest.approx((10 * 0.02 + 10 * 0.32) / 20)
    assert expected_calibration_error(np.array([0.8] * 5), np.array([1, 1, 1, 1, 0])) == pytest.approx(0.0)


def test_bins_are_15_equal_widths_and_one_goes_in_the_last():
    bins = reliability_bins(np.array([0.0, 0.5, 1.0]), np.array([0, 1, 1]))
    assert len(bins) == 15 and bins[0].lower == 0 and bins[-1].upper == 1
    assert [b.count for b in bins if b.count] == [1, 1, 1]
    assert bins[-1].count == 1 and bins[-1].accuracy == 1.0 and bins[7].confidence == 0.5


def test_accuracy_against_coverage_answers_the_most_confident_first():
    conf = np.array([0.9, 0.2, 0.8, 0.3, 0.7, 0.6, 0.95, 0.1, 0.5, 0.4])
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1, 0])
    points = {p.coverage: p for p in accuracy_coverage(conf, correct)}
    assert points[20].images == 2 and points[20].top1 == 100.0 and points[20].threshold == 0.9
    assert points[50].top1 == pytest.approx(80.0)  # 0.95 0.9 0.8 0.7(wrong) 0.6
    assert points[100].top1 == pytest.approx(60.0) and points[100].threshold == 0.1


def test_brier_is_zero_when_certain_and_right_and_one_minus_one_over_c_when_uniform():
    sure = np.array([[50.0, 0.0, 0.0]])
    assert brier_terms(sure, np.array([0]))[0] == pytest.approx(0.0, abs=1e-12)
    assert brier_terms(sure, np.array([1]))[0] == pytest.approx(2.0)
    assert brier_terms(np.zeros((1, 4)), np.array([2]))[0] == pytest.approx(1 - 1 / 4)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fitted_temperature_minimises_the_nll_and_recovers_a_known_one(true_temperature):
    """Labels drawn from softmax(z); logits shown to the fit are z * T, so the best T is about T."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2.0, size=(4000, 10))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(10, p=row) for row in p])
    logits = z * true_temperature
    fitted = fit_temperature(logits, targets)
    assert fitted == pytest.approx(true_temperature, rel=0.08)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2000))
    best = grid[np.argmin([nll_at(logits, targets, t) for t in grid])]
    assert nll_at(logits, targets, fitted) <= nll_at(logits, targets, best) + 1e-6
    assert (np.argmax(logits / fitted, axis=1) == np.argmax(logits, axis=1)).all()  # top-1 never changes


def test_fit_stays_within_bounds_when_the_data_push_beyond():
    logits = np.array([[10.0, 0.0], [0.0, 10.0]])
    assert fit_temperature(logits, np.array([0, 1])) == 0.05  # always right: sharper is always better
    assert fit_temperature(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([0, 1])) == 20.0  # a coin toss


def test_accuracy_against_coverage_keeps_one_point_per_number_of_images():
    """Of 2 images, 60 to 100 % all answer both: one point (100 %), not five identical rows."""
    points = accuracy_coverage(np.array([0.9, 0.4]), np.array([1, 0]))
    assert [(p.coverage, p.images) for p in points] == [(50, 1), (100, 2)]
    assert [p.top1 for p in points] == [100.0, 50.0]
    assert len(accuracy_coverage(np.linspace(0, 1, 10), np.ones(10))) == 10  # 10 images: every coverage
