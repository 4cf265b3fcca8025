"""The one rule for digits (mnv3cli.rounding, docs/conventions.md): what each kind of number keeps."""

from __future__ import annotations

import math

import pytest

from mnv3cli.rounding import (
    format_seconds,
    format_significant,
    loss,
    percent,
    probability,
    significant,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        (4.271830999990925, 4.27),
        (0.0123456, 0.0123),
        (1635.9, 1636.0),
        (12345.678, 12346.0),
        (0.0, 0.0),
        (-3.14159, -3.14),
        (99.96, 100.0),
    ],
)
def test_significant_keeps_3_digits_and_the_integer_part(value, expected):
    assert significant(value) == expected


def test_each_kind_of_number():
    assert percent(74.90000000000052) == 74.9 and percent(88.33333333333334) == 88.33 and percent(None) is None
    assert probability(0.42435699701309204) == 0.424357
    assert loss(0.7280365996062755) == 0.728
    assert math.isnan(significant(math.nan)) and significant(math.inf) == math.inf


@pytest.mark.parametrize("value, text", [(4.2718, "4.27"), (1635.9, "1,636"), (0.000128, "0.000128"), (12.34, "12.3")])
def test_table_text_matches_the_json_digits(value, text):
    assert format_significant(value) == text and float(text.replace(",", "")) == significant(value)


def test_spread_has_the_decimals_of_the_value():
    assert format_significant(31.94, plus_minus=0.6461) == "31.9 ± 0.6"
    assert format_significant(4.2718, plus_minus=0.37) == "4.27 ± 0.37"


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.0421, "42.1 ms"),
        (0.004, "4.00 ms"),
        (0.4867, "487 ms"),
        (0.999, "999 ms"),
        (1.0, "1.00 s"),
        (1.5, "1.50 s"),
        (12.34, "12.3 s"),
        (1234.5, "1,234 s"),
        (0.0, "0 s"),
    ],
)
def test_durations_never_read_zero_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_value_that_is_not_finite_is_shown_as_python_writes_it(value):
    assert format_significant(value) == str(value)
