"""CSV and JSON-lines lakes (local folders and s3:// on a moto server) and in-memory tables."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture
from support.servers import moto_endpoint

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource
from streammix.estimator.prediction import write_predictions

FEATURES = ["x1", "x2"]
REGIONS = ["eu", "us"]


def _tables():
    X, y, _ = make_mixture(2400, [0.6, 0.4], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=8)
    rng = np.random.default_rng(2)
    for k in range(4):  # region=eu/part-0, part-1, region=us/part-0, part-1
        s = slice(600 * k, 600 * (k + 1))
        yield (REGIONS[k // 2], k % 2, pa.table({
            "x1": X[s, 0], "x2": X[s, 1], "y": y[s], "id": np.arange(s.start, s.stop),
            "kind": rng.choice(["a", "b", "c"], 600)}))


def _write_jsonl(table: pa.Table, path, opener=open):
    with opener(path, "wt") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps(row) + "\n")


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    """The same hive lake as Parquet, CSV and JSON lines (one file of each gzipped), and CSV
    named .txt."""
    root = tmp_path_factory.mktemp("text")
    for region, part, table in _tables():
        for kind in ("parquet", "csv", "json", "txt"):
            folder = root / kind / f"region={region}"
            folder.mkdir(parents=True, exist_ok=True)
            if kind == "parquet":
                pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=200)
            elif kind == "csv" and region == "us" and part == 1:
                with pa.CompressedOutputStream(str(folder / "part-1.csv.gz"), "gzip") as out:
                    pacsv.write_csv(table, out)
            elif kind in ("csv", "txt"):
                pacsv.write_csv(table, folder / f"part-{part}.{kind}")
            elif region == "us" and part == 1:
                _write_jsonl(table, folder / f"part-{part}.jsonl.gz", gzip.open)
            else:
                _write_jsonl(table, folder / f"part-{part}.jsonl")
    return root


def fit(source):
    return MixtureOfLinearRegressions(2, random_state=0, tol=1e-8).fit(source)


def assert_same_fit(a, b):
    np.testing.assert_allclose(a.params_.beta, b.params_.beta, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(a.params_.sigma2, b.params_.sigma2, rtol=1e-10)
    np.testing.assert_allclose(a.params_.weights, b.params_.weights, rtol=1e-10)
    assert a.n_rows_ == b.n_rows_ and abs(a.loglik_ - b.loglik_) < 1e-8


def test_csv_and_json_lakes_fit_like_the_parquet_lake(lakes):
    parquet = ParquetSource(lakes / "parquet", target="y", features=FEATURES,
                            filters="region == 'eu' or id >= 0")
    reference = fit(parquet)
    for kind, given in (("csv", None), ("json", None), ("txt", "csv")):
        source = ParquetSource(lakes / kind, target="y", features=FEATURES, format=given,
                               filters="region == 'eu' or id >= 0")
        assert source.format == ("csv" if kind == "txt" else kind)
        assert source.n_files == 4 and len(source.plan()) == 4 and source.n_rows == 2400
        assert source.partition_names == ("region",)
        assert [p.first_row for p in source.plan()] == [0, 0, 0, 0]
        assert_same_fit(fit(source), reference)
    # filters on a hive column and a file column, row by row
    flt = "region == 'us' and x1 > 0"
    a = fit(ParquetSource(lakes / "parquet", target="y", features=FEATURES, filters=flt))
    b = fit(ParquetSource(lakes / "json", target="y", features=FEATURES, filters=flt))
    assert_same_fit(a, b)
    assert a.n_rows_ < 1200


def test_a_formula_with_a_categorical_reads_a_csv_lake(lakes):
    formula = "y ~ x1 + x2 + C(kind)"
    a = fit(ParquetSource(lakes / "parquet", formula=formula))
    b = fit(ParquetSource(lakes / "csv", formula=formula))
    assert_same_fit(a, b)
    assert b.feature_names_in_.tolist() == a.feature_names_in_.tolist()


@pytest.fixture
def broken(lakes, tmp_path):
    def copy(kind):
        shutil.copytree(lakes / kind, tmp_path / kind)
        return tmp_path / kind
    return copy


def test_a_value_that_is_not_a_number_names_file_column_row_and_value(broken):
    csv = broken("csv")
    path = csv / "region=us" / "part-0.csv"
    lines = path.read_text().splitlines()
    fields = lines[1 + 417].split(",")
    fields[1] = '"n/a?"'
    lines[1 + 417] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"^{path}: column 'x2' has a value that is not a "
                                        r"number, 'n/a\?', at row 417$"):
        ParquetSource(csv, target="y", features=FEATURES)
    js = broken("json")
    path = js / "region=eu" / "part-1.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[598]["y"] = "12.5"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"^{path}: column 'y' has a value that is not a "
                                        r"number, '12\.5', at row 598$"):
        ParquetSource(js, target="y", features=FEATURES)


def test_missing_columns_and_empty_fields_are_named_like_parquet(broken):
    csv = broken("csv")
    path = csv / "region=eu" / "part-1.csv"
    pacsv.write_csv(pacsv.read_csv(path).drop_columns(["x1"]), path)
    with pytest.raises(DataError, match=rf"^{path}: column 'x1' is missing \(the file has "
                                        r"columns x2, y, id, kind\)$"):
        ParquetSource(csv, target="y", features=FEATURES)
    js = broken("json")
    path = js / "region=eu" / "part-0.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    del rows[33]["x2"]  # a key missing in one record: a null there
    rows[40]["x2"] = None
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = ParquetSource(js, target="y", features=FEATURES)
    with pytest.raises(DataError, match=rf"^{path}: column 'x2' has 2 null values, first at "
                                        r"row 33$"):
        fit(source)
    dropped = ParquetSource(js, target="y", features=FEATURES, on_invalid="drop")
    assert dropped.count_invalid().n_rows == 2 and fit(dropped).n_rows_ == 2398
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "x2"}) + "\n"
                            for r in rows))
    with pytest.raises(DataError, match=rf"^{path}: column 'x2' is missing; no record has a "
                                        "value for it"):
        ParquetSource(js, target="y", features=FEATURES)


def test_a_folder_of_several_formats_is_refused(broken, lakes):
    csv = broken("csv")
    shutil.copy(lakes / "parquet" / "region=eu" / "part-0.parquet", csv / "region=eu")
    with pytest.raises(DataError, match=r"holds files of several formats \(part-0\.csv \(csv\), "
                                        r"part-0\.parquet \(parquet\)\)"):
        ParquetSource(csv, target="y", features=FEATURES)
    with pytest.raises(ValueError, match="format must be one of"):
        ParquetSource(csv, target="y", features=FEATURES, format="xlsx")


def test_predictions_of_a_csv_lake_are_those_of_the_parquet_lake(lakes, tmp_path):
    model = fit(ParquetSource(lakes / "parquet", target="y", features=FEATURES))
    here = write_predictions(model, ParquetSource(lakes / "parquet", target="y",
                                                  features=FEATURES), tmp_path / "p",
                             keep=["id", "region"])
    there = write_predictions(model, ParquetSource(lakes / "csv", target="y",
                                                   features=FEATURES), tmp_path / "c",
                              keep=["id", "region"])
    assert there.files == here.files == ("region=eu/part-0.parquet", "region=eu/part-1.parquet",
                                         "region=us/part-0.parquet", "region=us/part-1.parquet")
    for name in here.files:
        assert pq.read_table(tmp_path / "c" / name).equals(pq.read_table(tmp_path / "p" / name))


def test_a_csv_lake_in_a_bucket_fits_like_the_local_one(lakes):
    import s3fs
    with pytest.MonkeyPatch.context() as mp, moto_endpoint() as url:
        for name, value in (("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s"),
                            ("AWS_DEFAULT_REGION", "us-east-1")):
            mp.setenv(name, value)
        options = {"client_kwargs": {"endpoint_url": url}}
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        fs.mkdir("text-lakes")
        fs.put(str(lakes / "json"), "text-lakes/json", recursive=True)
        source = ParquetSource("s3://text-lakes/json", target="y", features=FEATURES,
                               storage_options=options)
        assert source.format == "json" and source.n_rows == 2400
        remote = fit(source)
        with pytest.raises(DataError, match=r"^s3://text-lakes/json/region=eu/part-0\.jsonl: "
                                            r"column 'x9' is missing"):
            ParquetSource("s3://text-lakes/json", target="y", features=["x1", "x9"],
                          storage_options=options)
    assert_same_fit(remote, fit(ParquetSource(lakes / "json", target="y", features=FEATURES)))


def test_the_program_fits_a_folder_of_csv_files(lakes, tmp_path, capsys):
    from streammix.cli.main import main

    common = ["--target", "y", "--features", "x1,x2", "-k", "2", "--seed", "0", "-q"]
    assert main(["fit", str(lakes / "parquet"), *common, "--out", str(tmp_path / "p.json")]) == 0
    assert main(["fit", str(lakes / "txt"), "--format", "csv", *common,
                 "--out", str(tmp_path / "t.json")]) == 0
    got = json.loads((tmp_path / "t.json").read_text())["fitted"]["params"]
    want = json.loads((tmp_path / "p.json").read_text())["fitted"]["params"]
    np.testing.assert_allclose(np.array(got["beta"]), np.array(want["beta"]), rtol=1e-10)
    capsys.readouterr()
    assert main(["fit", str(lakes / "txt"), *common, "--out", str(tmp_path / "x.json")]) == 1
    assert "is not a readable Parquet file" in capsys.readouterr().err  # .txt: Parquet unless told


def test_polars_and_arrow_tables_are_taken_by_name(lakes):
    pl = pytest.importorskip("polars")
    table = pa.concat_tables(t for _, _, t in _tables()).select(["x2", "y", "x1"])
    frame = pl.from_arrow(table)
    reference = fit(ParquetSource(lakes / "parquet", target="y", features=["x2", "x1"]))
    for data in (frame, table):
        fitted = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8).fit(data, target="y")
        assert fitted.feature_names_in_.tolist() == ["x2", "x1"]
        assert_same_fit(fitted, reference)
        X = data.select(["x1", "x2"])  # another order: taken by name
        np.testing.assert_array_equal(fitted.predict(X), fitted.predict(
            table.select(["x2", "x1"])))
        assert fitted.score(X, table["y"].to_numpy()) == pytest.approx(
            fitted.score(table.select(["x2", "x1"]), table["y"].to_numpy()), rel=1e-12)
        with pytest.raises(DataError, match="missing:\n- x2"):
            fitted.predict(data.select(["x1"]))
    series_fit = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8).fit(
        frame.select(["x2", "x1"]), frame["y"])
    assert_same_fit(series_fit, reference)


def test_the_program_predicts_a_json_lake_like_its_parquet_lake(lakes, tmp_path, capsys):
    from streammix.cli.main import main

    assert main(["fit", str(lakes / "parquet"), "--target", "y", "--features", "x1,x2", "-k",
                 "2", "--seed", "0", "-q", "--out", str(tmp_path / "m.json")]) == 0
    for kind in ("parquet", "json"):
        assert main(["predict", str(tmp_path / "m.json"), str(lakes / kind), "--keep",
                     "id,region", "--out", str(tmp_path / kind)]) == 0, capsys.readouterr().err
    names = sorted(str(p.relative_to(tmp_path / "json")) for p in (tmp_path / "json").rglob("*"))
    assert names == ["region=eu", "region=eu/part-0.parquet", "region=eu/part-1.parquet",
                     "region=us", "region=us/part-0.parquet", "region=us/part-1.parquet"]
    for name in names[1:3] + names[4:]:
        got, want = pq.read_table(tmp_path / "json" / name), pq.read_table(tmp_path / "parquet"
                                                                           / name)
        assert got.column_names == ["id", "region", "mean", "component", "loglik", "prob_1",
                                    "prob_2"]
        assert got.equals(want)


def test_a_text_file_changed_after_planning_stops_the_fit(broken):
    from streammix import SourceChangedError

    csv = broken("csv")
    source = ParquetSource(csv, target="y", features=FEATURES)
    path = csv / "region=eu" / "part-1.csv"
    path.write_text(path.read_text() + "0.5,0.5,0.5,9999,a\n")  # a row appended
    with pytest.raises(SourceChangedError, match=rf"^{path} changed while the fit was reading "
                                                 r"it \(size \d+ then, \d+ bytes now"):
        fit(source)
    path.unlink()
    with pytest.raises(SourceChangedError, match=r"part-1\.csv changed while the fit was "
                                                 r"reading it \(it no longer exists\)"):
        fit(source)
