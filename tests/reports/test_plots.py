"""Plots and the ``streammix plot`` command (matplotlib, Agg; real Parquet and CSV files)."""

from __future__ import annotations

import argparse
import os
import stat
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions
from streammix.cli.plot import main, register
from streammix.data.arrays import ArraySource
from streammix.exceptions import DataError
from streammix.reports.plots import plot_bic, plot_fit, plot_loglik, sample_source, save_figure
from streammix.reports.sample import read_sample

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def data():
    X, y, z = make_mixture(3000, [0.45, 0.55], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=9)
    return X, y


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return MixtureOfLinearRegressions(2, random_state=0, tol=1e-6).fit(X, y)


def test_plot_fit_draws_the_fitted_lines(model, data):
    X, y = data
    fig = plot_fit(model, X, y, feature="x1", max_points=500)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "y (target)"
    assert "500 rows shown" in ax.get_title()
    lines = ax.get_lines()
    assert len(lines) == 2 and len(ax.collections) == 2
    assert sum(len(c.get_offsets()) for c in ax.collections) == 500
    # each line is the component mean along x1 with x0 at its mean over the rows shown
    xs = lines[0].get_xdata()
    for j, line in enumerate(lines):
        grid, vals = line.get_xdata(), line.get_ydata()
        slope = np.diff(vals) / np.diff(grid)
        np.testing.assert_allclose(slope, model.coef_[j, 1], rtol=1e-9)
    assert xs.min() >= X[:, 1].min() and xs.max() <= X[:, 1].max()
    # points are coloured by the most likely component: each scatter holds the rows
    # whose posterior is highest for that component
    for j, points in enumerate(c.get_offsets() for c in ax.collections):
        rows = np.flatnonzero(np.isin(X[:, 1], points[:, 0]))
        assert rows.size == len(points)
        assert np.all(model.predict_proba(X[rows], y[rows]).argmax(1) == j)
    with pytest.raises(ValueError, match="unknown feature 'x9'"):
        plot_fit(model, X, y, feature="x9")
    with pytest.raises(ValueError, match="needs 2 features"):
        plot_fit(model, X[:, :1], y)


def test_plot_loglik_and_bic(model):
    fig = plot_loglik(model)
    top, bottom = fig.axes
    np.testing.assert_array_equal(top.get_lines()[0].get_ydata(),
                                  [h["loglik"] for h in model.history_])
    assert top.get_ylabel() == "log-likelihood" and bottom.get_yscale() == "log"
    assert "EM iteration" in bottom.get_xlabel()
    fig = plot_bic({3: 105.0, 1: 120.0, 2: 100.0})
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [1, 2, 3])
    assert "minimum at k = 2" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xlabel() == "number of components k"
    import pandas as pd
    plot_bic(pd.DataFrame({"k": [1, 2], "bic": [3.0, 2.0]}))
    with pytest.raises(ValueError, match="columns 'k' and 'bic'"):
        plot_bic(pd.DataFrame({"k": [1, 2], "aic": [3.0, 2.0]}))
    with pytest.raises(ValueError, match="at least one"):
        plot_bic([])


def test_save_figure_is_atomic_and_readable(model, tmp_path):
    out = tmp_path / "trace.png"
    save_figure(plot_loglik(model), out)
    assert out.read_bytes()[:8] == PNG
    assert stat.S_IMODE(os.stat(out).st_mode) & stat.S_IRGRP  # not left at mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["trace.png"]
    with pytest.raises(ValueError):
        save_figure(plot_loglik(model), tmp_path / "bad.unknownformat")
    assert [p.name for p in tmp_path.iterdir()] == ["trace.png"]  # no temporary left


def test_samples_do_not_depend_on_chunking(data, tmp_path):
    X, y = data
    a = sample_source(ArraySource(X, y, chunk_rows=100), size=200, seed=3)
    b = sample_source(ArraySource(X, y, chunk_rows=2999), size=200, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    table = pa.table({"x0": X[:, 0], "x1": X[:, 1], "y": y})
    path = tmp_path / "d.parquet"
    samples = []
    for rows in (128, 3000):
        pq.write_table(table, path, row_group_size=rows)
        samples.append(read_sample(path, "y", ["x0", "x1"], size=300, seed=1))
    np.testing.assert_array_equal(samples[0][0], samples[1][0])
    assert samples[0][0].shape == (300, 2)
    # every sampled row is a row of the data
    rows = {tuple(r) for r in np.column_stack([X, y])}
    assert all(tuple(r) in rows for r in np.column_stack([samples[0][0], samples[0][1]]))


@pytest.fixture
def files(model, data, tmp_path):
    X, y = data
    model.save(tmp_path / "m2.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        MixtureOfLinearRegressions(1, tol=1e-6).fit(X, y).save(tmp_path / "m1.json")
    lake = tmp_path / "lake"
    lake.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(y)), 3)):
        pq.write_table(pa.table({"a": X[part, 0], "b": X[part, 1], "target": y[part]}),
                       lake / f"part-{i}.parquet", row_group_size=400)
    pacsv.write_csv(pa.table({"x0": X[:, 0], "x1": X[:, 1], "y": y}), tmp_path / "d.csv")
    return tmp_path


def test_cli_draws_the_three_kinds(files, capsys):
    out = files / "fit.png"
    assert main([str(files / "m2.json"), str(files / "lake"), "--target", "target",
                 "--features", "a", "b", "--feature", "b", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG
    assert main([str(files / "m2.json"), str(files / "d.csv"), "--target", "y",
                 "--max-points", "300", "--out", str(files / "csv.png")]) == 0
    assert main([str(files / "m2.json"), "--kind", "loglik",
                 "--out", str(files / "ll.pdf")]) == 0
    assert (files / "ll.pdf").read_bytes()[:4] == b"%PDF"
    assert main([str(files / "m1.json"), str(files / "m2.json"), "--kind", "bic",
                 "--out", str(files / "bic.svg")]) == 0
    assert b"<svg" in (files / "bic.svg").read_bytes()[:500]
    assert "wrote" in capsys.readouterr().out
    # registered on a parent parser, as the main streammix program does
    parser = argparse.ArgumentParser(prog="streammix")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plot", str(files / "m2.json"), "--kind", "loglik",
                              "--out", str(files / "ll2.png")])
    assert args.func(args) == 0 and (files / "ll2.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["{d}/m2.json", "{d}/lake", "--target", "target", "--features", "a,c"],
     r"part-0.parquet: column 'c' is missing \(the file has columns a, b, target\)"),
    (["{d}/m2.json", "{d}/lake", "--features", "a", "b"], "needs --target"),
    (["{d}/m2.json", "{d}/lake", "--target", "target", "--features", "a"],
     "1 feature columns given; the model was fitted on 2"),
    (["{d}/nope.json", "--kind", "loglik"], "nope.json: no such model file"),
    (["{d}/m2.json", "{d}/d.csv", "--target", "y", "--feature", "zz"],
     "--feature 'zz' is not one of"),
    (["{d}/m2.json", "{d}/bad.parquet", "--target", "y"], "bad.parquet: is not a readable Parquet"),
    (["{d}/m2.json", "{d}/nan.parquet", "--target", "y"],
     r"nan.parquet: column 'x1' has 1 NaN value, first at row 7"),
    (["{d}/m2.json", "{d}/m2.json", "--kind", "bic"], "a second model with k = 2"),
])
def test_cli_errors_name_the_problem(files, capsys, argv, message):
    (files / "bad.parquet").write_bytes(b"not parquet at all")
    x1 = np.arange(10.0)
    x1[7] = np.nan
    pq.write_table(pa.table({"x0": np.zeros(10), "x1": x1, "y": np.ones(10)}),
                   files / "nan.parquet")
    out = files / "never.png"
    argv = [a.format(d=files) for a in argv] + ["--out", str(out)]
    assert main(argv) == 1
    import re
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()
    with pytest.raises(DataError, match="missing.parquet does not exist"):
        read_sample(files / "missing.parquet", "y", ["x0"])


def test_plot_fit_lines_through_the_data_for_derived_features(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 10, 400)
    z = rng.random(400) < 0.5
    y = np.where(z, 15 + 10 * x - x**2, 5 * x) + rng.normal(scale=1.0, size=400)
    X = np.column_stack([x, x**2])
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8).fit(X, y)
    fig = plot_fit(model, X, y, feature=0, others="data")
    order = np.argsort(x, kind="stable")
    for j, line in enumerate(fig.axes[0].get_lines()):
        np.testing.assert_array_equal(line.get_xdata(), x[order])
        np.testing.assert_allclose(line.get_ydata(), model.predict_components(X)[order, j])
    assert "fitted means at the rows shown" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="others must be"):
        plot_fit(model, X, y, others="median")
