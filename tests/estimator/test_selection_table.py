"""The selection table: what it shows is what it chooses from (issue 11, item 4)."""

from __future__ import annotations

import re
import warnings

import pytest
from support.mixtures import make_mixture

from streammix import select_components
from streammix.estimator.selection import format_table


def _rows(text):
    """(k label, bic, status) of each printed row."""
    lines = text.splitlines()
    header = lines[0].split()
    out = []
    for line in lines[1:]:
        parts = line.split()
        if not parts or not re.fullmatch(r"\d+(->\d+)?", parts[0]):
            continue
        status = parts[len(header)] if len(parts) > len(header) else ""
        out.append((parts[0], float(parts[header.index("bic")]), status))
    return out


@pytest.fixture(scope="module")
def two_lines():
    X, y, _ = make_mixture(300, [0.5, 0.5], [-4, 4], [[1], [-1]], [1, 1], seed=3)
    return X, y


def test_chosen_k_is_the_best_eligible_row_of_the_printed_table(two_lines):
    X, y = two_lines
    # min_weight 0.3 with "drop": the k = 3 and 4 fits lose components
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_components(X, y, k=range(1, 5), min_weight=0.3, on_collapse="drop",
                                   random_state=0)
    text = str(result)
    rows = _rows(text)
    assert [r[0].split("->")[0] for r in rows] == ["1", "2", "3", "4"]
    collapsed = [r for r in rows if "->" in r[0]]
    assert collapsed, text  # the test needs a k that collapsed
    assert all(r[2] == "collapsed" for r in collapsed)
    for row, printed in zip(result.table, rows, strict=True):
        assert row["collapsed"] == ("->" in printed[0])
        assert row["eligible"] == (not row["collapsed"])
        if row["collapsed"]:
            assert printed[0] == f"{row['k']}->{row['n_components_fitted']}"
            assert result.models[row["k"]].n_components_ == row["n_components_fitted"] < row["k"]
    eligible = [r for r in rows if "->" not in r[0]]
    best = min(eligible, key=lambda r: r[1])
    assert text.splitlines()[-1] == f"chosen by bic: k = {result.best_k}"
    assert best[0] == str(result.best_k) and best[2] == "*"
    assert result.best_k == 2 and result.model.n_components_ == 2
    assert re.search(r"k = \d: the fit kept \d component\(s\)", text)


def test_table_prints_enough_digits_to_tell_rows_apart():
    base = {"n_parameters": 5, "aic": 0.0, "icl": 0.0, "icl_bic": 0.0, "converged": True,
            "n_iter": 3, "dominated": False, "collapsed": False, "eligible": True}
    table = [{**base, "k": 1, "n_components_fitted": 1, "loglik": -61728394.1, "bic": 123456789.25},
             {**base, "k": 2, "n_components_fitted": 2, "loglik": -61728394.0, "bic": 123456789.75}]
    text = format_table(table, "bic", 1)
    bics = [line.split()[4] for line in text.splitlines()[1:3]]
    assert bics == ["123456789.250", "123456789.750"]


def test_frame_has_the_fitted_components(two_lines):
    pd = pytest.importorskip("pandas")
    X, y = two_lines
    result = select_components(X, y, k=[1, 2], random_state=0)
    frame = result.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["n_components_fitted"]) == [1, 2]
    assert not frame["collapsed"].any() and frame["eligible"].all()
