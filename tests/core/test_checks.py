"""The finiteness check behind every source's "column 'y' has 1 NaN value, first at
row 7": its fast path (a sum) never hides a bad value and never warns."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from streammix.core.checks import check_finite, describe_bad_values
from streammix.exceptions import DataError


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_finite_values_whose_sum_overflows_are_clean(dtype):
    big = np.finfo(dtype).max
    values = np.array([big, big, -big / 2, big], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from the fast path
        assert describe_bad_values(values, "x") is None


@pytest.mark.parametrize("bad, want", [
    ([np.nan], "1 NaN value"),
    ([np.inf, -np.inf], "2 infinite values"),  # their sum is NaN
    ([np.nan, np.inf], "1 NaN value and 1 infinite value"),
])
def test_every_bad_value_is_found_and_the_first_row_named(bad, want):
    values = np.full(50, 1e308)  # its sum overflows on its own, too
    rows = [7, 20, 33][:len(bad)]
    values[rows] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msg = describe_bad_values(values, "y", row_offset=100)
    assert msg == f"y has {want}, first at row 107"
    with pytest.raises(DataError, match="first at row 107"):
        check_finite(values, "y", row_offset=100)


def test_a_strided_column_and_an_empty_one():
    X = np.ones((9, 3))
    X[4, 1] = np.nan
    assert describe_bad_values(X[:, 0], "a") is None
    assert describe_bad_values(X[:, 1], "b") == "b has 1 NaN value, first at row 4"
    assert describe_bad_values(np.empty(0), "c") is None
