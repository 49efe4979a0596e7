"""Row filters written as text: the parse, and the rows pyarrow then keeps."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streammix import ParquetSource
from streammix.data.parquet.filter_text import parse_filter


def test_and_binds_tighter_than_or_and_values_keep_their_types():
    assert parse_filter("a = 1 or b != 'x' and `c d` >= -2.5e1") == [
        [("a", "==", 1)], [("b", "!=", "x"), ("c d", ">=", -25.0)]]
    assert parse_filter("r NOT IN ('p', \"q\") AND flag == TRUE") == [
        [("r", "not in", ["p", "q"]), ("flag", "==", True)]]
    assert parse_filter(r"name == 'it\'s'") == [[("name", "==", "it's")]]


@pytest.mark.parametrize("text, message", [
    ("", "filter is empty"),
    ("a == 1 b", "expected 'and', 'or' or the end, found 'b' at column 8"),
    ("a == 1 and", "expected a column name, found the end"),
    ("a ~ 3", "unexpected '~' at column 3"),
    ("a in 1", "expected '(' after 'in', found '1' at column 6"),
    ("a not 1", "expected 'in' after 'not', found '1' at column 7"),
])
def test_errors_say_what_was_expected_and_where(text, message):
    with pytest.raises(ValueError) as info:
        parse_filter(text)
    assert str(info.value).startswith("filter is empty" if not text else f"filter {text!r}: ")
    assert str(info.value).endswith(message)


def test_a_text_filter_keeps_exactly_the_rows_numpy_keeps(tmp_path):
    rng = np.random.default_rng(4)
    n = 5000
    region = rng.choice(np.array(["a", "b", "c"]), n)
    year = rng.integers(2015, 2025, n)
    x = rng.normal(size=n)
    y = 2 * x + rng.normal(size=n)
    pq.write_table(pa.table({"region": region, "year": year, "x": x, "y": y}),
                   tmp_path / "t.parquet", row_group_size=700)
    cases = {
        "region in ('a','b') and year >= 2020": np.isin(region, ["a", "b"]) & (year >= 2020),
        "year < 2017 or x > 1.5": (year < 2017) | (x > 1.5),
        "region not in ('c') and x <= 0 or year == 2024":
            (~np.isin(region, ["c"]) & (x <= 0)) | (year == 2024),
    }
    for text, mask in cases.items():
        source = ParquetSource(tmp_path / "t.parquet", target="y", features=["x"],
                               filters=text)
        got = np.concatenate([source.read(piece).X[:, 0] for piece in source.plan()])
        np.testing.assert_array_equal(np.sort(got), np.sort(x[mask]), err_msg=text)
