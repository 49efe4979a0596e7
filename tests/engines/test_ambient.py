"""The ambient Dask client (issue 13, items 1 and 2): with a ``distributed.Client``
running, passes over sources its workers can read run on its cluster; arrays stay in
this process; Dask DataFrames of any partitioning fit on it like in memory."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ROOT
from support.mixtures import assert_same_fit, make_mixture

from streammix import InProcessEngine, MixtureOfLinearRegressions, ParquetSource
from streammix.engines.resolve import resolve_engine

START = {"weights": [0.6, 0.4], "intercept": [-3.0, 3.0], "coef": [[2.0, -1.0], [-1.0, 0.5]],
         "sigma": [1.0, 1.0]}


def model(**kw):
    return MixtureOfLinearRegressions(2, init=START, tol=1e-12, max_iter=2000, **kw)


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(4000, [0.6, 0.4], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=11)
    return X, y


@pytest.fixture(scope="module")
def lake(tmp_path_factory, data):
    X, y = data
    folder = tmp_path_factory.mktemp("ambient") / "lake"
    folder.mkdir()
    for i in range(2):
        s = slice(i * 2000, (i + 1) * 2000)
        pq.write_table(pa.table({"x1": X[s, 0], "x2": X[s, 1], "y": y[s]}),
                       folder / f"part-{i}.parquet", row_group_size=700)
    return folder


@pytest.fixture(scope="module")
def client(two_workers):
    from distributed import Client
    with Client(two_workers) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def cluster_tasks(client, fn):
    from distributed import get_task_stream
    with get_task_stream(client) as stream:
        result = fn()
    return result, [t for t in stream.data if str(t["key"]).find("streammix-map") >= 0]


def test_without_a_client_passes_run_here_and_distributed_is_not_imported(lake):
    code = ("import sys; from streammix import ParquetSource, MixtureOfLinearRegressions; "
            "from streammix.engines.resolve import resolve_engine; "
            f"src = ParquetSource({str(lake)!r}, target='y', features=['x1', 'x2']); "
            "print(type(resolve_engine(None, src)).__name__, 'distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert out.stdout.split() == ["InProcessEngine", "False"], out.stderr


def test_the_ambient_client_runs_passes_over_parquet_on_its_cluster(client, lake, data):
    source = ParquetSource(lake, target="y", features=["x1", "x2"], chunk_rows=700)
    in_process = model(engine=InProcessEngine()).fit(source)
    ambient, tasks = cluster_tasks(client, lambda: model().fit(source))
    assert len(tasks) > 0
    assert {t["worker"] for t in tasks} <= set(client.scheduler_info()["workers"])
    assert_same_fit(ambient, in_process)
    # score and bic pass over the source on the cluster too
    score, tasks = cluster_tasks(client, lambda: ambient.score(source))
    assert tasks and score == pytest.approx(in_process.score(source), rel=1e-12)
    # Arrays live in this process: nothing reaches the cluster.
    X, y = data
    _, tasks = cluster_tasks(client, lambda: model().fit(X, y))
    assert tasks == []
    assert isinstance(resolve_engine(None, None), InProcessEngine)


def test_dask_frames_fit_on_the_cluster_like_in_memory(client, lake, data):
    import dask.dataframe as dd
    X, y = data
    reference = model().fit(X, y)
    ddf = dd.read_parquet(str(lake), split_row_groups=True)
    explicit, tasks = cluster_tasks(client, lambda: model(engine=client).fit(
        ddf[["x1", "x2"]], ddf["y"]))
    assert tasks
    assert_same_fit(explicit, reference)
    ambient, tasks = cluster_tasks(client, lambda: model().fit(ddf, target="y"))
    assert tasks
    assert_same_fit(ambient, reference)
    named = pd.DataFrame(X, columns=["x1", "x2"])  # the fit's names: no FeatureNamesWarning
    np.testing.assert_allclose(ambient.predict(named), reference.predict(X), rtol=1e-10)
