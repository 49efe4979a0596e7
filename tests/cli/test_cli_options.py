"""``streammix fit``'s model options, model selection, row filters and global options.

Real Parquet lakes (one hive-partitioned by region and year) and the real
program, run in this process through :func:`streammix.cli.main.main`.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.cli import run_main
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.cli.main import main

#: Three well-separated lines: model selection over 1..4 must find k = 3.
THREE = dict(weights=[0.4, 0.35, 0.25], intercepts=[-6.0, 0.0, 6.0],
             coefs=[[2.0], [-1.5], [0.5]], sigmas=[0.5, 0.4, 0.6])


def _write_hive_lake(root):
    """region=a,b hold the three-line mixture; region=c holds other data (one steep line)."""
    X, y, _ = make_mixture(6000, **THREE, seed=3)
    parts = {}
    for i, (region, year) in enumerate([(r, yr) for r in "ab" for yr in (2019, 2021)]):
        rows = slice(1500 * i, 1500 * (i + 1))
        parts[(region, year)] = (X[rows, 0], y[rows])
    rng = np.random.default_rng(9)
    for year in (2019, 2021):
        x = rng.normal(size=1500)
        parts[("c", year)] = (x, 40.0 * x + rng.normal(size=1500))
    for (region, year), (x, yy) in parts.items():
        folder = root / f"region={region}" / f"year={year}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": x, "y": yy}), folder / "part.parquet",
                       row_group_size=500)
    return root


@pytest.fixture(scope="module")
def hive(tmp_path_factory):
    return _write_hive_lake(tmp_path_factory.mktemp("hive") / "lake")


def _fit(capsys, *args):
    code = main(["fit", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_components_range_selects_the_generating_k_prints_the_table_and_saves_it(
        hive, tmp_path, capsys):
    out = tmp_path / "m.json"
    code, stdout, err = _fit(capsys, hive, "--target", "y", "--features", "x",
                             "--components", "1..4", "--filter", "region != 'c'",
                             "--seed", 0, "--in-process", "--out", out, "-q")
    assert code == 0, err
    table = stdout.split("\n\n")[0].splitlines()
    assert table[0].split()[:2] == ["k", "loglik"]
    assert [line.split()[0] for line in table[1:5]] == ["1", "2", "3", "4"]
    assert table[-1] == "chosen by bic: k = 3"
    model = MixtureOfLinearRegressions.load(out)
    assert model.n_components_ == 3
    np.testing.assert_allclose(np.sort(model.intercept_), [-6.0, 0.0, 6.0], atol=0.15)
    assert "Mixture of 3 linear regressions" in stdout
    # the same choice by another criterion, and a list of candidates
    code, stdout, _ = _fit(capsys, hive, "--target", "y", "--features", "x",
                           "--components", "2,3", "--criterion", "aic", "--filter",
                           "region != 'c'", "--seed", 0, "--in-process", "--out", out, "-q")
    assert code == 0 and "chosen by aic: k = 3" in stdout


def test_filter_skips_partitions_and_fits_only_the_matching_rows(hive, tmp_path, capsys):
    text = "region in ('a', 'b') and year >= 2020"
    source = ParquetSource(hive, target="y", features=["x"], filters=text)
    paths = sorted({piece.path for piece in source.plan()})
    assert [p.split("/lake/")[1] for p in paths] == [
        "region=a/year=2021/part.parquet", "region=b/year=2021/part.parquet"]
    assert source.n_rows == 3000  # the other four files are not planned

    out = tmp_path / "m.json"
    code, _, err = _fit(capsys, hive, "--target", "y", "--features", "x", "--components", 3,
                        "--filter", text, "--seed", 0, "--in-process", "--out", out, "-q")
    assert code == 0, err
    by_cli = MixtureOfLinearRegressions.load(out)
    direct = MixtureOfLinearRegressions(3, random_state=0).fit(
        ParquetSource(hive, target="y", features=["x"], filters=text, chunk_rows=131_072))
    assert by_cli.params_ == direct.params_
    assert by_cli.n_rows_ == 3000
    assert json.loads(out.read_text())["data"]["filter"] == text
    info = main(["info", str(out)])
    assert info == 0 and f"lake where {text}: target 'y'" in capsys.readouterr().out


@pytest.mark.parametrize("bad, message", [
    ("year >", "expected a value (a number, 'text', true or false), found the end"),
    ("year 2020", "expected a comparison (==, !=, <, <=, >, >=, in, not in), found '2020' "
                  "at column 6"),
    ("region in ('a' 'b')", "expected ',' or ')', found \"'b'\" at column 16"),
])
def test_a_bad_filter_is_a_usage_error_saying_where(hive, tmp_path, capsys, bad, message):
    code, _, err = _fit(capsys, hive, "--target", "y", "--features", "x", "--components", 2,
                        "--filter", bad, "--in-process", "--out", tmp_path / "m.json")
    assert code == 2
    assert f"argument --filter: filter {bad!r}: {message}" in err
    assert not (tmp_path / "m.json").exists()


def test_model_options_reach_the_model(hive, tmp_path, capsys):
    out = tmp_path / "m.json"
    common = [hive, "--target", "y", "--features", "x", "--filter", "region != 'c'",
              "--in-process", "--out", out, "-q", "--seed", 1]
    code, _, err = _fit(capsys, *common, "--components", 3, "--noise", "fixed",
                        "--sigma", 0.5, "--init", "random", "--no-intercept",
                        "--df-correction", "--min-weight", 0.01, "--max-iter", 50)
    assert code == 0, err
    params = MixtureOfLinearRegressions.load(out).get_params()
    assert params["noise"] == "fixed" and params["sigma"] == 0.5
    assert params["init"] == "random" and params["fit_intercept"] is False
    assert params["df_correction"] is True and params["min_weight"] == 0.01
    assert params["max_iter"] == 50
    model = MixtureOfLinearRegressions.load(out)
    np.testing.assert_array_equal(model.sigma_, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(model.intercept_, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("args, message", [
    (["--components", 2, "--noise", "fixed"], "--noise fixed needs --sigma S"),
    (["--components", 2, "--sigma", 1.0], "--sigma needs --noise fixed"),
    (["--components", "1..3", "--checkpoint", "ck"],
     "--checkpoint works with one number of components"),
])
def test_inconsistent_options_exit_1_with_one_line(hive, tmp_path, capsys, args, message):
    code, _, err = _fit(capsys, hive, "--target", "y", "--features", "x", "--in-process",
                        "--out", tmp_path / "m.json", *args)
    assert code == 1 and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("spec", ["0..3", "3..1", "two", "1,,2"])
def test_a_bad_components_spec_is_a_usage_error(hive, tmp_path, capsys, spec):
    code, _, err = _fit(capsys, hive, "--target", "y", "--features", "x", "--components",
                        spec, "--in-process", "--out", tmp_path / "m.json")
    assert code == 2 and "argument --components/-k" in err


def test_global_options_after_the_subcommand_and_info_speaks_to_a_cli_user(hive, tmp_path):
    out = tmp_path / "m.json"
    fit = ["fit", hive, "--target", "y", "--features", "x", "--components", "2",
           "--in-process", "--out", out, "--max-iter", "5"]
    after = run_main(*fit, "-q")
    before = run_main("-q", *fit)
    assert after.returncode == before.returncode == 0, after.stderr
    assert after.stderr == before.stderr == ""  # quiet: no progress, no warnings
    verbose = run_main(*fit, "-v")
    assert " INFO streammix" in verbose.stderr

    info = run_main("info", out)
    assert info.returncode == 0
    assert "standard errors: not computed (fit again with 'streammix fit ... --se' to have " \
           "them)" in info.stdout
    assert "compute_se" not in info.stdout


def test_plot_reads_what_fit_reads_and_exits_1_on_a_data_error(hive, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model = tmp_path / "m.json"
    code, _, err = _fit(capsys, hive, "--target", "y", "--features", "x", "--components", 3,
                        "--filter", "region != 'c'", "--seed", 0, "--in-process",
                        "--out", model, "-q")
    assert code == 0, err
    glob = f"{hive}/region=a/*/*.parquet"
    png = tmp_path / "fit.png"
    assert main(["plot", str(model), glob, "--target", "y", "--features", "x",
                 "--filter", "year == 2021", "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    # a NaN: named (exit 1), or left out with --on-invalid drop
    dirty = tmp_path / "dirty"
    dirty.mkdir()
    x = np.linspace(-1, 1, 50)
    y = 2 * x
    y[7] = np.nan
    pq.write_table(pa.table({"x": x, "y": y}), dirty / "part.parquet")
    capsys.readouterr()
    assert main(["plot", str(model), str(dirty), "--target", "y", "--out", str(png)]) == 1
    assert "part.parquet: column 'y' has 1 NaN value" in capsys.readouterr().err
    assert main(["plot", str(model), str(dirty), "--target", "y", "--on-invalid", "drop",
                 "--out", str(png)]) == 0


def test_predict_keeps_row_id_beside_other_columns_when_rows_are_dropped(tmp_path, capsys):
    x = np.linspace(-1, 1, 200)
    y = np.where(np.arange(200) % 2, 2 * x, -x) + 0.1
    y[7] = np.nan
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": x, "y": y, "id": np.arange(200) * 10}), data)
    model = tmp_path / "m.json"
    code, _, err = _fit(capsys, data, "--target", "y", "--features", "x", "-k", 2,
                        "--on-invalid", "drop", "--in-process", "--out", model, "-q")
    assert code == 0, err
    out = tmp_path / "pred"
    assert main(["predict", str(model), str(data), "--on-invalid", "drop",
                 "--keep", "id,row_id", "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.column_names[:3] == ["id", "row_id", "mean"]
    row_id = np.asarray(table.column("row_id"))
    assert table.num_rows == 199 and 7 not in row_id
    np.testing.assert_array_equal(np.asarray(table.column("id")), row_id * 10)
