"""The bad-input matrix: every kind of bad data x {in-process, Dask, online}.

Each case writes a small lake (three good files, with one bad thing added)
and states what each way of fitting must do with it: a clear ``DataError``
whose message names the file, the column and what is wrong, or a fit whose
parameters are finite.  A failed fit leaves the estimator unfitted (so there
is nothing to save half-way).  More detailed single-mode checks live in
tests/data/test_parquet.py, tests/data/test_streams.py and tests/estimator/test_degenerate.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture

from streammix import DaskEngine, DataError, MixtureOfLinearRegressions, ParquetSource
from streammix.data.streams import FolderStream
from streammix.engines.inprocess import InProcessEngine

FEATURES = ["x1", "x2"]
MODES = ["in-process", "dask", "online"]
N_GOOD = 600


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def good_table(n, seed):
    X, y, _ = make_mixture(n, [0.5, 0.5], [-2.0, 2.0], [[1.0, -1.0], [-1.0, 1.0]],
                           [0.5, 0.5], seed=seed)
    return pa.table({"x1": X[:, 0], "x2": X[:, 1], "y": y, "w": np.ones(n)})


def write_good(folder):
    folder.mkdir()
    for k in range(3):
        pq.write_table(good_table(N_GOOD // 3, seed=k), str(folder / f"a-{k}.parquet"),
                       row_group_size=100)


def with_value(column, row, value):
    def make(folder):
        table = good_table(50, seed=9)
        values = table.column(column).to_pylist()
        values[row] = value
        table = table.set_column(table.schema.get_field_index(column), column,
                                 pa.array(values, pa.float64()))
        pq.write_table(table, str(folder / "z-bad.parquet"))
    return make


def truncated(folder):
    good = folder / "a-1.parquet"
    data = good.read_bytes()
    (folder / "z-bad.parquet").write_bytes(data[: len(data) // 2])


def zero_bytes(folder):
    (folder / "z-bad.parquet").write_bytes(b"")


def not_parquet(folder):
    (folder / "z-notes.csv").write_text("x1,x2,y\n1,2,3\n")


def missing_column(folder):
    pq.write_table(good_table(50, seed=9).drop(["x2"]), str(folder / "z-bad.parquet"))


def type_mismatch(folder):
    table = good_table(50, seed=9)
    table = table.set_column(1, "x2", pa.array([str(v) for v in table.column("x2").to_pylist()]))
    pq.write_table(table, str(folder / "z-bad.parquet"))


def all_null(folder):
    table = good_table(50, seed=9)
    table = table.set_column(2, "y", pa.nulls(50, pa.float64()))
    pq.write_table(table, str(folder / "z-bad.parquet"))


def tiny_file(folder):
    pq.write_table(good_table(1, seed=9), str(folder / "z-tiny.parquet"))


def duplicate_file(folder):
    pq.write_table(pq.read_table(str(folder / "a-0.parquet")), str(folder / "z-copy.parquet"),
                   row_group_size=100)


def rewrite_all(change):
    def make(folder):
        for path in sorted(folder.glob("*.parquet")):
            table = pq.read_table(str(path))
            pq.write_table(change(table), str(path), row_group_size=100)
    return make


collinear = rewrite_all(lambda t: t.set_column(1, "x2", pa.compute.multiply(t.column("x1"), 2.0)))
constant_y = rewrite_all(lambda t: t.set_column(2, "y", pa.array(np.full(t.num_rows, 5.0))))


def error(*parts):
    return ("error", parts)


FIT = ("fit", None)

# case -> (make, {mode: expectation}); "all" stands for every mode not listed.
CASES = {
    "truncated file": (truncated, {
        "all": error("z-bad.parquet", "not a readable Parquet file"),
        "online": error("z-bad.parquet", "unreadable Parquet file")}),
    "zero-byte file": (zero_bytes, {
        "all": error("z-bad.parquet", "is empty (0 bytes)"),
        "online": error("z-bad.parquet", "unreadable Parquet file")}),
    "non-Parquet file in the folder": (not_parquet, {
        # a .csv name beside .parquet ones: the lake's format is ambiguous, refused
        "all": error("z-notes.csv", "holds files of several formats"),
        "online": FIT}),  # the folder stream reads *.parquet names only
    "missing column": (missing_column, {
        "all": error("z-bad.parquet", "column 'x2' is missing"),
        "online": error("z-bad.parquet", "missing column(s) ['x2']")}),
    "type mismatch between files": (type_mismatch, {
        "all": error("z-bad.parquet", "column 'x2' has type string",
                     "it is double in"),
        "online": error("z-bad.parquet", "column 'x2' has type string, expected a number")}),
    "all-null chunk": (all_null, {
        "all": error("z-bad.parquet", "column 'y' has 50 null", "first at row 0")}),
    "NaN in the target": (with_value("y", 7, float("nan")), {
        "all": error("z-bad.parquet", "'y' has 1 NaN value", "first at row 7")}),
    "+inf in a feature": (with_value("x1", 3, float("inf")), {
        "all": error("z-bad.parquet", "'x1' has 1 infinite value", "first at row 3")}),
    "-inf in a feature": (with_value("x2", 4, float("-inf")), {
        "all": error("z-bad.parquet", "'x2' has 1 infinite value", "first at row 4")}),
    "null in a feature": (with_value("x2", 5, None), {
        "all": error("z-bad.parquet", "'x2' has 1 null value", "first at row 5")}),
    "NaN weight": (with_value("w", 6, float("nan")), {
        "all": error("z-bad.parquet", "'w' has 1 NaN value", "first at row 6"),
        "online": error("z-bad.parquet", "sample_weight has 1 NaN value", "first at row 6")}),
    "negative weight": (with_value("w", 8, -1.0), {
        "all": error("z-bad.parquet", "'w' has 1 negative value", "first at row 8"),
        "online": error("z-bad.parquet", "sample_weight has 1 negative value",
                        "first at row 8")}),
    "chunk with fewer rows than components": (tiny_file, {"all": FIT}),
    "duplicate rows": (duplicate_file, {"all": FIT}),
    "perfectly collinear features": (collinear, {"all": FIT}),
    "constant target": (constant_y, {"all": FIT}),
}
EXTRA_ROWS = {"chunk with fewer rows than components": 1, "duplicate rows": N_GOOD // 3}


def fit(folder, mode, client):
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-3, max_iter=30)
    if mode == "online":
        stream = FolderStream(folder, target="y", features=FEATURES, weight="w",
                              on_error="stop")
        for batch in stream:
            model.partial_fit(batch.X, batch.y, batch.w, features=FEATURES,
                              batch_id=(batch.key, batch.first_row))
        return model
    source = ParquetSource(str(folder), target="y", features=FEATURES, weight="w",
                           chunk_rows=100)
    engine = DaskEngine(client, retries=0) if mode == "dask" else InProcessEngine(retries=0)
    model.set_params(engine=engine)
    return model.fit(source)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_matrix(case, mode, tmp_path, request):
    make, expected = CASES[case]
    kind, parts = expected.get(mode, expected.get("all"))
    folder = tmp_path / "lake"
    write_good(folder)
    make(folder)
    client = request.getfixturevalue("client") if mode == "dask" else None
    if kind == "error":
        model = MixtureOfLinearRegressions(2)
        with pytest.raises(DataError) as info:
            model = fit(folder, mode, client)
        message = str(info.value)
        for part in parts:
            assert part in message, message
        assert not hasattr(model, "params_")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # collapse, convergence or rank warnings are fine
        model = fit(folder, mode, client)
    params = model.params_
    for value in (params.weights, params.beta, params.sigma2, [model.loglik_]):
        assert np.all(np.isfinite(value)), (case, mode, params)
    assert np.all(params.sigma2 > 0)
    if mode != "online":
        assert model.n_rows_ == N_GOOD + EXTRA_ROWS.get(case, 0)
