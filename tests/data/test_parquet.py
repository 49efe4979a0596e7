"""ParquetSource on real Parquet files: planning, reading, invariance and bad input."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource
from streammix.algorithms.tasks import EStepTask
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats
from streammix.engines.inprocess import InProcessEngine

FEATURES = ["x1", "x2"]


def write_lake(root, X, y, w=None, *, n_files=3, row_group_size=250, hive=None):
    """Split rows over ``n_files`` files (in hive folders ``hive=<k>`` if given)."""
    os.makedirs(root, exist_ok=True)
    bounds = np.linspace(0, len(y), n_files + 1).astype(int)
    paths = []
    for k in range(n_files):
        sl = slice(bounds[k], bounds[k + 1])
        cols = {"x1": X[sl, 0], "x2": X[sl, 1], "y": y[sl]}
        if w is not None:
            cols["w"] = w[sl]
        folder = root if hive is None else os.path.join(root, f"{hive}={2020 + k}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"part-{k}.parquet")
        pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(3000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=3)
    return X, y


@pytest.fixture(scope="module")
def lake(tmp_path_factory, data):
    root = str(tmp_path_factory.mktemp("lake"))
    paths = write_lake(root, *data)
    return root, paths


def fit(source, **kw):
    kw.setdefault("random_state", 0)
    kw.setdefault("tol", 1e-9)
    return MixtureOfLinearRegressions(2, **kw).fit(source)


def assert_same_fit(a, b, rtol=1e-10):
    np.testing.assert_allclose(a.params_.beta, b.params_.beta, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(a.params_.sigma2, b.params_.sigma2, rtol=rtol)
    np.testing.assert_allclose(a.params_.weights, b.params_.weights, rtol=rtol)
    assert a.loglik_ == pytest.approx(b.loglik_, rel=rtol)


def test_plan_groups_consecutive_row_groups_and_reads_every_row_once(lake, data):
    root, paths = lake
    X, y = data
    src = ParquetSource(root, target="y", features=FEATURES, chunk_rows=600)
    plan = src.plan()
    assert plan == sorted(plan) and src.n_files == 3 and src.n_rows == 3000
    # Files of 1000 rows in row groups of 250: chunks of two row groups (500 rows) each.
    assert [p.row_groups for p in plan[:2]] == [(0, 1), (2, 3)]
    assert [p.first_row for p in plan[:2]] == [0, 500]
    assert all(len(pickle.dumps(p)) < 300 for p in plan)
    chunks = [src.read(p) for p in plan]
    np.testing.assert_array_equal(np.concatenate([c.X for c in chunks]), X)
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), y)
    assert all(c.row_ids is None and c.origin.startswith("part-") for c in chunks)
    assert chunks[2].origin == "part-1.parquet" and chunks[2].first_row == 0
    # A row group larger than chunk_rows is a chunk of its own.
    small = ParquetSource(root, target="y", features=FEATURES, chunk_rows=10)
    assert len(small.plan()) == 12 and all(len(p.row_groups) == 1 for p in small.plan())
    # The pickled source that travels to the tasks carries no plan.
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone.read(plan[3]).X, chunks[3].X)


def test_fit_is_the_same_for_any_chunking_listing_order_and_path_form(lake, data):
    root, paths = lake
    base = fit(ParquetSource(root, target="y", features=FEATURES, chunk_rows=100))
    shuffled = list(paths)
    random.Random(1).shuffle(shuffled)
    for source in [
        ParquetSource(root, target="y", features=FEATURES, chunk_rows=1_000_000),
        ParquetSource(shuffled, target="y", features=FEATURES, chunk_rows=333),
        ParquetSource(os.path.join(root, "part-*.parquet"), target="y", features=FEATURES),
        ParquetSource("file://" + root, target="y", features=FEATURES, chunk_rows=700),
    ]:
        assert_same_fit(fit(source), base)
    threaded = fit(ParquetSource(root, target="y", features=FEATURES, chunk_rows=100),
                   engine=InProcessEngine(n_threads=3))
    assert_same_fit(threaded, base, rtol=0)
    # The same data in memory, from the same starting values, gives the same fit.
    X, y = data
    start = {"weights": base.weights_, "coef": base.coef_ + 0.1,
             "intercept": base.intercept_ - 0.1, "sigma": base.sigma_}
    from_file = fit(ParquetSource(root, target="y", features=FEATURES), init=start)
    in_memory = MixtureOfLinearRegressions(2, init=start, tol=1e-9).fit(X, y)
    assert_same_fit(from_file, in_memory, rtol=1e-9)
    assert from_file.n_rows_ == 3000 and list(from_file.feature_names_in_) == FEATURES


def test_pass_statistics_match_in_memory_arrays(lake, data):
    root, _ = lake
    X, y = data
    params = MixtureParams(np.array([0.5, 0.5]), np.array([[-3.0, 2.0, -1.0], [3.0, -1.0, 0.5]]),
                           np.array([1.0, 0.5]))
    task = EStepTask(params, True)
    zero = SuffStats.zeros(2, 3)
    src = ParquetSource(root, target="y", features=FEATURES, chunk_rows=400)
    got = InProcessEngine().map_reduce(src, task, zero)
    from streammix.data.arrays import ArraySource
    want = InProcessEngine().map_reduce(ArraySource(X, y, chunk_rows=400), task, zero)
    assert got.allclose(want, rtol=1e-12) and got.n_rows == 3000


def test_hive_partitions_as_features_and_filters(tmp_path, data):
    X, y = data
    root = str(tmp_path / "hive")
    write_lake(root, X, y, hive="year")
    src = ParquetSource(root, target="y", features=["x1", "x2", "year"])
    assert src.partition_names == ("year",)
    chunk = src.read(src.plan()[-1])
    assert np.all(chunk.X[:, 2] == 2022) and chunk.origin == "year=2022/part-2.parquet"
    # A filter on the partition column skips the other files when planning.
    flt = ParquetSource(root, target="y", features=FEATURES,
                        filters=[("year", ">=", 2021), ("x1", "<", 0.5)])
    assert {p.partition for p in flt.plan()} == {(("year", 2021),), (("year", 2022),)}
    rows = np.concatenate([flt.read(p).y for p in flt.plan()])
    keep = (np.arange(3000) >= 1000) & (X[:, 0] < 0.5)
    np.testing.assert_array_equal(rows, y[keep])
    chunk = flt.read(flt.plan()[0])
    assert chunk.row_ids is not None
    np.testing.assert_array_equal(chunk.row_ids, np.flatnonzero(X[1000:2000, 0] < 0.5)[
        :chunk.n_rows])


def test_filter_statistics_prune_row_groups(tmp_path):
    x = np.arange(1000, dtype=float)
    path = str(tmp_path / "sorted.parquet")
    pq.write_table(pa.table({"x1": x, "y": 2 * x}), path, row_group_size=100)
    src = ParquetSource(path, target="y", features=["x1"], filters=[("x1", ">=", 750.0)],
                        chunk_rows=1)
    assert [p.row_groups for p in src.plan()] == [(7,), (8,), (9,)]
    chunk = src.read(src.plan()[0])
    assert chunk.first_row == 700 and chunk.row_ids[0] == 750 and chunk.n_rows == 50


def test_empty_files_and_zero_row_row_groups_add_nothing(tmp_path, lake):
    root, paths = lake
    extra = tmp_path / "with_empty"
    extra.mkdir()
    for p in paths:
        table = pq.read_table(p)
        with pq.ParquetWriter(str(extra / os.path.basename(p)), table.schema) as writer:
            writer.write_table(table.slice(0, 400))
            writer.write_table(table.slice(0, 0))  # a zero-row row group
            writer.write_table(table.slice(400))
    pq.write_table(pq.read_table(paths[0]).slice(0, 0), str(extra / "part-9.parquet"))
    src = ParquetSource(str(extra), target="y", features=FEATURES, chunk_rows=100)
    assert src.n_files == 4 and all(p.n_rows > 0 for p in src.plan())
    assert_same_fit(fit(src), fit(ParquetSource(root, target="y", features=FEATURES)))


def test_integer_columns_are_read_as_float(tmp_path):
    rng = np.random.default_rng(0)
    a = pa.table({"x1": rng.integers(-5, 5, 200), "y": rng.normal(size=200)})
    b = pa.table({"x1": rng.normal(size=200).astype(np.float32), "y": rng.normal(size=200)})
    pq.write_table(a, str(tmp_path / "a.parquet"))
    pq.write_table(b, str(tmp_path / "b.parquet"))
    src = ParquetSource(str(tmp_path), target="y", features=["x1"])
    X = np.concatenate([src.read(p).X for p in src.plan()])
    np.testing.assert_array_equal(X[:200, 0], a["x1"].to_numpy().astype(float))
    np.testing.assert_array_equal(X[200:, 0], b["x1"].to_numpy().astype(float))


# ----------------------------------------------------------------- bad input
def _table(n=40, **overrides):
    rng = np.random.default_rng(5)
    cols = {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "y": rng.normal(size=n),
            "w": np.ones(n)}
    cols.update(overrides)
    return pa.table(cols)


def test_corrupt_and_zero_byte_files_are_named(tmp_path):
    pq.write_table(_table(), str(tmp_path / "part-0.parquet"))
    (tmp_path / "part-1.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"part-1\.parquet: is empty \(0 bytes\)"):
        ParquetSource(str(tmp_path), target="y", features=FEATURES)
    (tmp_path / "part-1.parquet").write_bytes(b"PAR1 this is not parquet at all PAR1")
    with pytest.raises(DataError, match=r"part-1\.parquet: is not a readable Parquet file"):
        ParquetSource(str(tmp_path), target="y", features=FEATURES)


def test_missing_column_and_type_mismatch_are_named(tmp_path):
    pq.write_table(_table(), str(tmp_path / "part-0.parquet"))
    pq.write_table(_table().drop(["x2"]), str(tmp_path / "part-1.parquet"))
    with pytest.raises(DataError, match=r"part-1\.parquet: column 'x2' is missing"):
        ParquetSource(str(tmp_path), target="y", features=FEATURES)
    strings = pa.array([f"{v:.3f}" for v in np.arange(40.0)])
    pq.write_table(_table(x2=strings), str(tmp_path / "part-1.parquet"))
    with pytest.raises(DataError, match=r"part-1\.parquet: column 'x2' has type string, "
                                        r"which cannot be read as float64.*double in .*part-0"):
        ParquetSource(str(tmp_path), target="y", features=FEATURES)


def test_nulls_nan_and_inf_raise_with_file_column_count_and_row(tmp_path):
    y = pa.array([float(i) if i not in (17, 30) else None for i in range(40)])
    pq.write_table(_table(), str(tmp_path / "part-0.parquet"))
    pq.write_table(_table(y=y), str(tmp_path / "part-3.parquet"), row_group_size=10)
    src = ParquetSource(str(tmp_path), target="y", features=FEATURES, weight="w")
    with pytest.raises(DataError, match=r"part-3\.parquet: column 'y' has 2 null values, "
                                        r"first at row 17$"):
        fit(src)
    x1 = np.arange(40.0)
    x1[[3, 5]] = np.nan
    x1[9] = np.inf
    pq.write_table(_table(x1=x1), str(tmp_path / "part-3.parquet"), row_group_size=10)
    src = ParquetSource(str(tmp_path), target="y", features=FEATURES, weight="w")  # re-planned
    with pytest.raises(DataError, match=r"part-3\.parquet: column 'x1' has 2 NaN values and "
                                        r"1 infinite value, first at row 3"):
        src.read(src.plan()[-1])
    w = np.ones(40)
    w[33] = -1.0
    pq.write_table(_table(w=w), str(tmp_path / "part-3.parquet"), row_group_size=10)
    src = ParquetSource(str(tmp_path), target="y", features=FEATURES, weight="w")
    with pytest.raises(DataError, match=r"part-3\.parquet: column 'w' has 1 negative value, "
                                        r"first at row 33"):
        src.read(src.plan()[-1])


def test_huge_finite_values_are_read_not_taken_for_infinities(tmp_path):
    # The clean-column check sums the column; a sum that overflows must not
    # make finite values look bad.
    x1 = np.arange(40.0)
    x1[[4, 5, 6]] = 1.7e308
    pq.write_table(_table(x1=x1), str(tmp_path / "part-0.parquet"))
    src = ParquetSource(str(tmp_path), target="y", features=FEATURES, weight="w")
    chunk = src.read(src.plan()[0])
    np.testing.assert_array_equal(chunk.X[:, 0], x1)
    x1[20] = -np.inf
    pq.write_table(_table(x1=x1), str(tmp_path / "part-0.parquet"))
    src = ParquetSource(str(tmp_path), target="y", features=FEATURES, weight="w")
    with pytest.raises(DataError, match=r"column 'x1' has 1 infinite value, first at row 20"):
        src.read(src.plan()[0])


def test_drop_policy_drops_counts_and_keeps_row_identity(tmp_path, data):
    X, y = data
    bad_y = y.copy()
    bad_rows = [5, 17, 1203, 2999]
    bad_y[bad_rows[:2]] = np.nan
    X_bad = X.copy()
    X_bad[bad_rows[2], 1] = np.inf
    dirty = str(tmp_path / "dirty")
    paths = write_lake(dirty, X_bad, bad_y)
    table = pq.read_table(paths[2])
    ys = table["y"].to_pylist()
    ys[-1] = None  # row 2999 overall, row 999 of part-2
    pq.write_table(table.set_column(2, "y", pa.array(ys)), paths[2], row_group_size=250)
    # The same rows with weight 0 (and finite values) are a reference fit.
    w = np.ones(3000)
    w[bad_rows] = 0.0
    clean_y = np.where(np.isfinite(bad_y), bad_y, 0.0)
    X_clean = np.where(np.isfinite(X_bad), X_bad, 0.0)
    clean = str(tmp_path / "clean")
    write_lake(clean, X_clean, clean_y, w)

    strict = ParquetSource(dirty, target="y", features=FEATURES)
    with pytest.raises(DataError, match=r"part-0\.parquet: column 'y' has 2 NaN values, "
                                        r"first at row 5"):
        fit(strict)
    src = ParquetSource(dirty, target="y", features=FEATURES, on_invalid="drop", chunk_rows=300)
    counts = src.count_invalid()
    assert counts.n_rows == 4
    assert counts.by_column == {"y": 3, "x2": 1}
    assert counts.by_file == {paths[0]: 2, paths[1]: 1, paths[2]: 1}
    dropped = fit(src)
    reference = fit(ParquetSource(clean, target="y", features=FEATURES, weight="w"))
    assert_same_fit(dropped, reference)
    assert dropped.n_rows_ == 2996 and dropped.sum_weights_ == 2996


def test_missing_paths_and_empty_folders_are_clear(tmp_path):
    with pytest.raises(DataError, match=r"nope\.parquet does not exist"):
        ParquetSource(str(tmp_path / "nope.parquet"), target="y", features=FEATURES)
    with pytest.raises(DataError, match=r"does not exist"):
        ParquetSource("file://" + str(tmp_path / "no" / "lake"), target="y", features=FEATURES)
    (tmp_path / "empty" / "_temporary").mkdir(parents=True)
    (tmp_path / "empty" / "_SUCCESS").write_text("")
    with pytest.raises(DataError, match=r"empty: the folder holds no Parquet files"):
        ParquetSource(str(tmp_path / "empty"), target="y", features=FEATURES)
    with pytest.raises(DataError, match=r"no files match"):
        ParquetSource(str(tmp_path / "*.parquet"), target="y", features=FEATURES)
    with pytest.raises(ValueError, match="on_invalid must be one of"):
        ParquetSource(str(tmp_path), target="y", features=FEATURES, on_invalid="ignore")


def test_repr_and_describe_hide_secrets(lake):
    root, _ = lake
    src = ParquetSource(root, target="y", features=FEATURES)
    src.storage_options = {"key": "AKIASECRETKEY", "secret": "hunter2-secret"}
    src.path_or_url = "s3://user:pa55word@bucket/lake"
    for text in (repr(src), src.describe(), str(src)):
        assert "hunter2" not in text and "AKIASECRET" not in text and "pa55word" not in text
    assert "s3://***@bucket/lake" in src.describe() and "values hidden" in src.describe()
    assert "2 keys hidden" in repr(src)
