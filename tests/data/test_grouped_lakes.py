"""Grouped lakes (``ParquetSource(..., groups="id")``): every group whole in one map task.

The reference is the in-memory grouped fit of the same rows
(``fit(X, y, groups=ids)``) from the same starting values; the lake's groups
span row groups and files, one group is scattered over the first and last
file, so the plan must join chunks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.grouped import INIT
from support.grouped import grouped_frame as _frame

from streammix import DaskEngine, DataError, MixtureOfLinearRegressions, ParquetSource


def _lake(df: pd.DataFrame, folder, n_files=4, row_group_size=90) -> pd.DataFrame:
    """Files cut through groups, row groups too; group g005 also in the last file."""
    scattered = df[df.id == "g005"]
    rest = df[df.id != "g005"]
    parts = np.array_split(np.arange(len(rest)), n_files)
    frames = [rest.iloc[p] for p in parts]
    frames[0] = pd.concat([frames[0], scattered.iloc[:3]])
    frames[-1] = pd.concat([frames[-1], scattered.iloc[3:]])
    for i, part in enumerate(frames):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=row_group_size)
    return pd.concat(frames)


def _model(**kw) -> MixtureOfLinearRegressions:
    return MixtureOfLinearRegressions(2, init=INIT, tol=1e-10, max_iter=500, **kw)


def _memory(ordered: pd.DataFrame) -> MixtureOfLinearRegressions:
    return _model().fit(ordered[["x"]].to_numpy(), ordered.y.to_numpy(),
                        groups=ordered.id.to_numpy())


def test_groups_spanning_files_are_planned_whole_and_fit_as_in_memory(tmp_path):
    ordered = _lake(_frame(), tmp_path)
    source = ParquetSource(tmp_path, target="y", features=["x"], groups="id", chunk_rows=100)
    # row groups cut groups, so chunks chain into connected components by shared groups;
    # those above the bound (8 x 100 rows) are split by home chunk (keep is set)
    view = source.grouped_view()
    tasks = view.plan()
    assert len(tasks) == len(source.plan()) == 16
    assert sum(t.keep is not None and len(t.pieces) >= 2 for t in tasks) >= 10
    seen: dict = {}
    n_rows = 0
    for i, task in enumerate(tasks):
        groups = view.read_with_ids(task).groups
        n_rows += groups.size
        for gid in np.unique(groups):
            assert seen.setdefault(gid, i) == i  # every group in one task only
    assert len(seen) == 120 and n_rows == len(ordered)  # every row once
    spread = tasks[seen["g005"]]  # the scattered group joined the first and last files
    assert {p.path.rsplit("/", 1)[1] for p in spread.pieces} >= {"part-0.parquet",
                                                                 "part-3.parquet"}
    wide = ParquetSource(tmp_path, target="y", features=["x"], groups="id", chunk_rows=100,
                         max_task_rows=1500)
    joined = wide.grouped_view().plan()  # components within the bound: read at once
    assert [len(t.pieces) for t in joined] == [1, 14, 1]
    assert all(t.keep is None for t in joined)
    memory = _memory(ordered)
    lake = _model().fit(source)
    at_once = _model().fit(wide)
    np.testing.assert_allclose(at_once.coef_, memory.coef_, rtol=0, atol=1e-10)
    assert lake.n_groups_ == memory.n_groups_ == 120
    assert lake.n_iter_ == memory.n_iter_ >= 3
    np.testing.assert_allclose(lake.coef_, memory.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lake.intercept_, memory.intercept_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(lake.weights_, memory.weights_, rtol=0, atol=1e-10)
    assert lake.loglik_ == pytest.approx(memory.loglik_, rel=1e-10)
    # a row-wise fit of the same lake is another model: the groups mattered
    rows = _model().fit(ParquetSource(tmp_path, target="y", features=["x"], chunk_rows=100))
    assert abs(rows.loglik_ - lake.loglik_) > 1.0


def test_grouped_lake_on_a_two_worker_cluster_equals_the_in_memory_fit(tmp_path,
                                                                     two_worker_client):
    from distributed import get_task_stream

    ordered = _lake(_frame(), tmp_path)
    memory = _memory(ordered)
    source = ParquetSource(tmp_path, target="y", features=["x"], groups="id", chunk_rows=100)
    client = two_worker_client
    with get_task_stream(client) as stream:
        # cache=True: the workers keep the tasks' chunks, keyed by their descriptors
        fitted = _model(engine=DaskEngine(client, cache=True)).fit(source)
    workers = {t["worker"] for t in stream.data}
    assert len(stream.data) > len(source.plan())
    assert workers <= set(client.scheduler_info()["workers"]) and workers
    np.testing.assert_allclose(fitted.coef_, memory.coef_, rtol=0, atol=1e-10)
    assert fitted.loglik_ == pytest.approx(memory.loglik_, rel=1e-10)


def test_a_too_spread_group_is_refused_naming_it_and_its_files(tmp_path):
    df = _frame()
    first = df.id.str[1:].astype(int)
    for i in range(4):  # files of whole groups, but g005 in the first, third and fourth
        part = df[(first // 30 == i) & (df.id != "g005")]
        if i != 1:
            part = pd.concat([part, df[df.id == "g005"].iloc[i::4]])
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False),
                       tmp_path / f"part-{i}.parquet")
    source = ParquetSource(tmp_path, target="y", features=["x"], groups="id", max_task_rows=400)
    assert max(p.n_rows for p in source.plan()) < 400
    with pytest.raises(DataError, match=r"group 'g005' \(column 'id'\) is too spread out: it "
                       r"has rows in 3 chunks of \S*part-0\.parquet, \S*part-2\.parquet, "
                       r"\S*part-3\.parquet; .* hold \d+ rows, more than max_task_rows=400\. "
                       r"Rewrite the lake by group \(streammix regroup"):
        _model().fit(source)


def test_a_null_group_id_is_named_with_file_and_column(tmp_path):
    df = _frame(n_groups=20)
    df.loc[7, "id"] = None
    pq.write_table(pa.Table.from_pandas(df.iloc[:100], preserve_index=False),
                   tmp_path / "a.parquet")
    pq.write_table(pa.Table.from_pandas(df.iloc[100:], preserve_index=False),
                   tmp_path / "b.parquet")
    source = ParquetSource(tmp_path, target="y", features=["x"], groups="id")
    with pytest.raises(DataError, match=r"a\.parquet: column 'id' has 1 null group id, "
                                        r"first at row 7"):
        _model().fit(source)


def test_filters_and_a_hive_partition_as_the_group_column(tmp_path):
    df = _frame()
    df["region"] = df.id.str[1:].astype(int) % 3
    for region, part in df.groupby("region"):
        folder = tmp_path / f"region={region}"
        folder.mkdir()
        for i, rows in enumerate(np.array_split(np.arange(len(part)), 2)):
            pq.write_table(pa.Table.from_pandas(part.iloc[rows].drop(columns="region"),
                                                preserve_index=False),
                           folder / f"p{i}.parquet", row_group_size=50)
    by_region = ParquetSource(tmp_path, target="y", features=["x"], groups="region",
                              max_task_rows=10**6)
    tasks = by_region.grouped_view().plan()
    assert [len({p.path.rsplit("/", 2)[1] for p in t.pieces}) for t in tasks] == [1, 1, 1]
    assert sum(len(t.pieces) for t in tasks) == len(by_region.plan())
    kept = df[df.x < 5]  # the filter's rows only: groups and their sizes change
    lake = _model().fit(ParquetSource(tmp_path, target="y", features=["x"], groups="id",
                                      filters="x < 5", chunk_rows=60))
    memory = _model().fit(kept[["x"]].to_numpy(), kept.y.to_numpy(), groups=kept.id.to_numpy())
    assert lake.n_rows_ == len(kept) and lake.n_groups_ == memory.n_groups_
    np.testing.assert_allclose(lake.coef_, memory.coef_, rtol=0, atol=1e-10)
    assert lake.loglik_ == pytest.approx(memory.loglik_, rel=1e-10)
