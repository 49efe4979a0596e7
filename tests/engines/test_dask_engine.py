"""DaskEngine and DaskSource on a real LocalCluster with worker processes."""

from __future__ import annotations

import functools
import operator
import os
import shutil
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import assert_same_fit, make_mixture
from support.servers import scheduler_tasks

from streammix import DaskEngine, DaskSource, DataError, MixtureOfLinearRegressions, ParquetSource
from streammix.algorithms.tasks import EStepTask
from streammix.core.params import MixtureParams
from streammix.core.reduce import tree_sum
from streammix.core.stats import SuffStats
from streammix.engines.dask_graph import (
    FUSED_LEVELS,
    counter_tree,
    reduction,
    run_length,
    small_chunk_run,
)
from streammix.engines.inprocess import InProcessEngine
from streammix.engines.resolve import resolve_engine
from streammix.exceptions import NoClientError

FEATURES = ["x1", "x2"]


class Expr:
    """Records the shape of a sum: ``Expr('a') + Expr('b') == Expr('(a+b)')``."""

    def __init__(self, text):
        self.text = text

    def __add__(self, other):
        return Expr(f"({self.text}+{other.text})")


def test_no_client_is_a_clear_error():
    # Runs before the cluster fixture of this module exists.
    with pytest.raises(NoClientError, match="never starts a cluster"):
        DaskEngine().get_client()


@pytest.mark.parametrize("n", list(range(1, 34)))
def test_counter_tree_has_the_shape_of_tree_sum(n):
    values = [Expr(str(i)) for i in range(n)]
    want = tree_sum(values, None).text
    got = counter_tree(values, None, 2, lambda group: group[0] + group[1]).text
    assert got == want
    # Wider fan-in: every value once, in plan order.
    wide = counter_tree(values, None, 4, lambda g: Expr("[" + ",".join(v.text for v in g) + "]"))
    assert [int(t) for t in wide.text.replace("[", ",").replace("]", ",").split(",") if t] \
        == list(range(n))


def test_runs_of_aligned_chunks_keep_the_shape_of_tree_sum():
    # Cached passes sum aligned runs of 2**k chunks in one task: the counter
    # tree over the runs' tree_sum must be the tree_sum over all chunks.
    for n in range(1, 130):
        values = [Expr(str(i)) for i in range(n)]
        want = tree_sum(values, None).text
        for g in (2, 4, 8, 16):
            runs = [tree_sum(values[i:i + g], None) for i in range(0, n, g)]
            assert counter_tree(runs, None, 2, lambda v: v[0] + v[1]).text == want, (n, g)


def _evaluate(graph, expr):
    """A task of a Dask graph as Dask runs it: nested tuples, keys replaced by their values."""
    if isinstance(expr, tuple):
        return expr[0](*(_evaluate(graph, arg) for arg in expr[1:]))
    if isinstance(expr, str) and expr in graph:
        return _evaluate(graph, graph[expr])
    return expr


@pytest.mark.parametrize("split_every", [2, 3])
def test_the_fused_reduction_sums_in_the_tree_of_a_task_per_sum(split_every):
    for n in range(1, 80):
        leaves = [f"map-{i}" for i in range(n)]
        graph = {key: Expr(str(i)) for i, key in enumerate(leaves)}
        top = reduction(graph, "t", leaves, split_every)
        assert top not in leaves  # the total is a task of its own
        if split_every == 2:
            want = tree_sum([Expr(str(i)) for i in range(n)], None).text
        else:
            want = counter_tree([Expr(str(i)) for i in range(n)], None, 3,
                                lambda g: functools.reduce(operator.add, g)).text
        assert _evaluate(graph, top).text == want, n
        sums = len(graph) - n
        assert sums <= max(1, -(-n // split_every ** FUSED_LEVELS) * 2), (n, sums)


def test_run_length_leaves_about_four_tasks_per_thread():
    assert run_length(31, 2) == 4 and run_length(8, 2) == 1 and run_length(1, 1) == 1
    for n, threads in [(1000, 2), (1000, 16), (37, 1), (64, 0)]:
        g = run_length(n, threads)
        assert g & (g - 1) == 0 and -(-n // g) >= 4 * max(1, threads)
        assert g == 1 or -(-n // (2 * g)) < 4 * max(1, threads)


def test_a_worker_killed_by_a_run_of_chunks_names_the_whole_run():
    from distributed.scheduler import KilledWorker

    from streammix.data.parquet.source import ParquetPiece
    from streammix.engines.dask_engine import _crash_error
    from streammix.exceptions import ChunkCrashError
    plan = [ParquetPiece(f"/lake/f{i}.parquet", (0,), 0, 10) for i in range(8)]
    runs = {"streammix-map-t-0": [0, 1, 2, 3], "streammix-map-t-4": [4], "x": []}
    err = _crash_error(KilledWorker("streammix-map-t-0", None, 2), None, plan, runs, {})
    assert isinstance(err, ChunkCrashError) and err.descriptor is None
    assert err.descriptors == tuple(plan[:4])
    assert "one of 4 consecutive chunks" in str(err) and "f0.parquet" in str(err) \
        and "f3.parquet" in str(err) and "killed 3 worker processes" in str(err)
    one = _crash_error(KilledWorker("streammix-map-t-4", None, 2), None, plan, runs, {})
    assert one.descriptor == plan[4] and one.descriptors == (plan[4],)
    assert "f4.parquet row groups [0]" in str(one)
    read = _crash_error(KilledWorker("streammix-chunk-u-0", None, 0), None, plan, runs,
                        {"streammix-chunk-u-0": plan[6]})
    assert read.descriptor == plan[6] and "killed 1 worker processes" in str(read)


def test_chunks_are_read_in_runs_of_about_half_a_million_rows_large_ones_one_per_task():
    from streammix.data.parquet.source import ParquetPiece
    tiny = [ParquetPiece(f"f{i}", (0,), 0, 10) for i in range(2000)]
    assert small_chunk_run(tiny, 2) == run_length(2000, 2) == 256  # 8 tasks
    big = [ParquetPiece("f", (i,), i * 131072, 131072) for i in range(31)]
    assert small_chunk_run(big, 2) == 4 == run_length(31, 2)  # 4 x 131072 rows >= 2**19
    assert small_chunk_run(big[:8], 2) == 1  # capped: 8 chunks are 4 tasks per thread
    huge = [ParquetPiece("f", (i,), i * 2**20, 2**20) for i in range(64)]
    assert small_chunk_run(huge, 2) == 1
    mid = [ParquetPiece("f", (i,), i * 20000, 20000) for i in range(640)]
    assert small_chunk_run(mid, 2) == 32  # 32 x 20k rows >= 2**19
    assert small_chunk_run(list(range(100)), 2) == 1  # no row counts: one per task


@pytest.fixture(scope="module")
def client(two_workers):
    from distributed import Client
    with Client(two_workers) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(4000, [0.3, 0.7], [-2.0, 2.0], [[1.5, -1.0], [-1.0, 1.0]],
                           [0.8, 0.6], seed=11)
    return X, y


@pytest.fixture(scope="module")
def lake(tmp_path_factory, data):
    X, y = data
    root = tmp_path_factory.mktemp("dask_lake")
    for k in range(4):
        sl = slice(1000 * k, 1000 * (k + 1))
        pq.write_table(pa.table({"x1": X[sl, 0], "x2": X[sl, 1], "y": y[sl]}),
                       str(root / f"part-{k}.parquet"), row_group_size=200)
    return str(root)


def fit(source, engine=None, **kw):
    # Every pass on the cluster costs scheduler round trips: a loose tol keeps
    # the runs short; equal runs still stop at the same iteration.
    return MixtureOfLinearRegressions(2, random_state=0, tol=1e-3, engine=engine,
                                      **kw).fit(source)


def test_pass_is_bit_identical_to_in_process_and_leaves_nothing_behind(client, lake):
    src = ParquetSource(lake, target="y", features=FEATURES, chunk_rows=300)
    params = MixtureParams(np.array([0.4, 0.6]), np.array([[-2.0, 1.0, -1.0], [2.0, -1.0, 1.0]]),
                           np.array([1.0, 0.5]))
    task, zero = EStepTask(params, True), SuffStats.zeros(2, 3)
    want = InProcessEngine().map_reduce(src, task, zero)
    got = DaskEngine(client).map_reduce(src, task, zero)
    for name in ("s0", "s2", "rx", "r0"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.loglik == want.loglik and got.n_rows == 4000
    wide = DaskEngine(client, split_every=5).map_reduce(src, task, zero)
    assert wide.allclose(want, rtol=1e-12)
    assert scheduler_tasks(client) == 0  # every future of the pass was released
    assert DaskEngine(client).map_reduce(ParquetSource(lake, target="y", features=FEATURES,
                                                       filters=[("x1", ">", 99.0)]),
                                         task, zero) is zero


def test_fit_equals_in_process_for_any_workers_and_chunking(client, lake):
    from distributed import Client, LocalCluster
    base = fit(ParquetSource(lake, target="y", features=FEATURES))
    on_two = fit(ParquetSource(lake, target="y", features=FEATURES, chunk_rows=250),
                 DaskEngine(client))
    assert_same_fit(on_two, base)
    assert on_two.converged_ and on_two.n_iter_ == base.n_iter_
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as one:
        on_one = fit(ParquetSource(lake, target="y", features=FEATURES, chunk_rows=450), one)
    assert_same_fit(on_one, base)
    assert scheduler_tasks(client) == 0


def test_cache_keeps_decoded_chunks_on_the_workers(client, lake, tmp_path):
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    src = ParquetSource(str(copy), target="y", features=FEATURES, chunk_rows=500)
    engine = DaskEngine(client, cache=True)
    cached = fit(src, engine)
    assert_same_fit(cached, fit(ParquetSource(lake, target="y", features=FEATURES)))
    assert len(engine._cached) == len(src.plan())
    # With the files gone, a cached pass still runs from worker memory...
    for path in os.listdir(copy):
        os.remove(copy / path)
    again = MixtureOfLinearRegressions(2, init=cached.params_, tol=1e-9, engine=engine).fit(src)
    reference = MixtureOfLinearRegressions(2, init=cached.params_, tol=1e-9).fit(
        ParquetSource(lake, target="y", features=FEATURES))
    assert_same_fit(again, reference)
    # ... and one without the cache has to read them.
    with pytest.raises(DataError, match=r"part-\d\.parquet changed while the fit was reading "
                                        r"it \(it no longer exists\)"):
        DaskEngine(client).map_reduce(src, EStepTask(cached.params_, True),
                                      SuffStats.zeros(2, 3))
    engine.clear_cache()
    assert scheduler_tasks(client) == 0


def test_cached_pass_waits_for_workers_of_an_empty_cluster(lake):
    # An adaptive cluster may have no worker when a pass starts: the chunks
    # are then placed by the scheduler once one arrives.
    import threading

    from distributed import Client, LocalCluster
    src = ParquetSource(lake, target="y", features=FEATURES, chunk_rows=500)
    params = MixtureParams(np.array([0.4, 0.6]), np.array([[-2.0, 1.0, -1.0], [2.0, -1.0, 1.0]]),
                           np.array([1.0, 0.5]))
    task, zero = EStepTask(params, True), SuffStats.zeros(2, 3)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as empty:
        threading.Timer(1.0, lambda: cluster.scale(1)).start()
        got = DaskEngine(empty, cache=True).map_reduce(src, task, zero)
    assert got.allclose(InProcessEngine().map_reduce(src, task, zero), rtol=0.0)


@pytest.mark.parametrize("chunk_rows", [50, 103, 4000])
def test_cached_pass_is_bit_identical_to_in_process(client, lake, chunk_rows):
    # 80 and 39 chunks on 2 threads: runs of 8 and 4 chunks per map task.
    src = ParquetSource(lake, target="y", features=FEATURES, chunk_rows=chunk_rows)
    params = MixtureParams(np.array([0.4, 0.6]), np.array([[-2.0, 1.0, -1.0], [2.0, -1.0, 1.0]]),
                           np.array([1.0, 0.5]))
    task, zero = EStepTask(params, True), SuffStats.zeros(2, 3)
    want = InProcessEngine().map_reduce(src, task, zero)
    engine = DaskEngine(client, cache=True)
    for _ in range(2):  # the pass that reads, then one from worker memory
        got = engine.map_reduce(src, task, zero)
        for name in ("s0", "s2", "rx", "r0"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert got.loglik == want.loglik and got.n_rows == 4000
    engine.clear_cache()
    assert scheduler_tasks(client) == 0


def test_bad_data_on_a_worker_raises_the_same_clear_error(client, tmp_path):
    y = np.arange(50.0)
    y[[7, 9]] = np.nan
    pq.write_table(pa.table({"x1": np.ones(50), "x2": np.ones(50), "y": y}),
                   str(tmp_path / "part-3.parquet"))
    with pytest.raises(DataError, match=r"part-3\.parquet: column 'y' has 2 NaN values, "
                                        r"first at row 7"):
        fit(ParquetSource(str(tmp_path), target="y", features=FEATURES), client)


def test_model_resolves_engines(client):
    assert isinstance(resolve_engine(None), InProcessEngine)
    wrapped = resolve_engine(client)
    assert isinstance(wrapped, DaskEngine) and wrapped.client is client
    engine = DaskEngine(client, cache=True)
    assert resolve_engine(engine) is engine
    with pytest.raises(TypeError, match="engine must be None"):
        resolve_engine("cluster please")
    from sklearn.base import clone
    copy = clone(MixtureOfLinearRegressions(2, engine=engine))
    assert copy.engine is not engine and copy.engine.client is client and copy.engine.cache


def test_dask_dataframe_source_fits_on_the_workers(client, data):
    import dask.dataframe as dd
    import pandas as pd
    X, y = data
    w = np.random.default_rng(2).integers(1, 3, size=len(y)).astype(float)
    frame = pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "y": y, "w": w})
    ddf = client.persist(dd.from_pandas(frame, npartitions=6))  # the data on the workers
    src = DaskSource(ddf, target="y", weight="w")
    assert src.feature_names == FEATURES and src.plan() == list(range(6))
    here = fit(src)
    there = fit(src, DaskEngine(client))
    assert_same_fit(there, here, rtol=0)
    assert there.sum_weights_ == w.sum()
    engine = DaskEngine(client, cache=True)
    assert_same_fit(fit(src, engine), here, rtol=0)
    engine.clear_cache()
    # y given as a collection partitioned like X; the features by position.
    by_series = fit(DaskSource(ddf[FEATURES], ddf["y"], weight=ddf["w"]), client)
    assert_same_fit(by_series, here, rtol=0)
    bad = frame.copy()
    bad.loc[2500, "x2"] = np.nan
    with pytest.raises(DataError, match=r"partition \d: column 'x2' has 1 NaN or null value"):
        fit(DaskSource(dd.from_pandas(bad, npartitions=6), target="y"), client)
    with pytest.raises(DataError, match=r"no column 'z'"):
        DaskSource(ddf, target="z")
    # Release the persisted partitions now: the frames kept by the tracebacks above
    # would hold them until the garbage collector runs (and the next test counts tasks).
    client.cancel(ddf)


def test_dask_array_matches_in_memory_arrays(client, data):
    import dask.array as da
    X, y = data
    Xd = da.from_array(X, chunks=(700, 1))
    yd = da.from_array(y, chunks=1000)  # re-chunked to the rows of X
    on_cluster = MixtureOfLinearRegressions(2, random_state=0, engine=client).fit(Xd, yd)
    in_memory = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=700).fit(X, y)
    assert_same_fit(on_cluster, in_memory, rtol=0)
    assert scheduler_tasks(client) == 0


def test_fit_survives_a_worker_killed_mid_pass(client, lake):
    """Kill a worker process while a pass runs: the fit ends as an undisturbed one."""
    import signal
    import threading
    src = ParquetSource(lake, target="y", features=FEATURES, chunk_rows=1)  # 20 chunks
    undisturbed = fit(src)
    result, errors = {}, []

    def run():
        try:
            result["model"] = fit(src, DaskEngine(client))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    def pass_running(dask_scheduler):
        return any(str(k).startswith("streammix-map") for k in dask_scheduler.tasks)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not client.run_on_scheduler(pass_running) and time.monotonic() < deadline:
        time.sleep(0.005)
    victim = sorted(client.run(os.getpid).items())[0][1]
    assert thread.is_alive()  # the fit is under way
    os.kill(victim, signal.SIGKILL)  # the Nanny restarts the worker
    thread.join(120)
    assert not errors and not thread.is_alive()
    assert_same_fit(result["model"], undisturbed)
    client.wait_for_workers(2, timeout=60)
    assert victim not in client.run(os.getpid).values()


def test_a_client_as_engine_serves_compute_se_and_polish(client, data):
    """The engine given as a bare Client is wrapped for every pass, not only fit's."""
    X, y = data
    on_cluster = MixtureOfLinearRegressions(2, random_state=0, engine=client).fit(X, y)
    local = MixtureOfLinearRegressions(2, random_state=0).fit(X, y)
    on_cluster.compute_se(X, y)
    local.compute_se(X, y)
    np.testing.assert_allclose(on_cluster.vcov_, local.vcov_, rtol=1e-10)
    online = MixtureOfLinearRegressions(2, random_state=0, engine=client)
    for start in range(0, len(y), 1000):
        online.partial_fit(X[start:start + 1000], y[start:start + 1000])
    online.polish(X, y, n_passes=2)
    assert np.isfinite(online.loglik_) and online.n_passes_ >= 1


@pytest.mark.filterwarnings("ignore::streammix.exceptions.ConvergenceWarning")
def test_shared_coefficients_and_grouped_gated_fits_on_the_cluster_equal_in_process(
        client, lake, tmp_path):
    """flexmix's FLXMRglmfix (``fixed``) and grouped classes with a gate and group weights
    (``tests/fixtures/r/grouped_gate.csv``, files cut through groups) on the 2-worker
    cluster: the in-process fit of the same lake, to 1e-10."""
    import pandas as pd
    from support import FIXTURES

    shared = ParquetSource(lake, target="y", features=FEATURES, chunk_rows=300)
    kw = dict(random_state=0, tol=1e-3, fixed=["x2"])  # few passes: round trips cost
    local = MixtureOfLinearRegressions(2, engine=InProcessEngine(), **kw).fit(shared)
    remote = MixtureOfLinearRegressions(2, engine=DaskEngine(client), **kw).fit(shared)
    assert_same_fit(remote, local, rtol=1e-10)
    assert remote.n_iter_ == local.n_iter_
    frame = pd.read_csv(FIXTURES / "r" / "grouped_gate.csv")
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        pq.write_table(pa.Table.from_pandas(frame.iloc[rows], preserve_index=False),
                       tmp_path / f"part-{i}.parquet", row_group_size=520)
    grouped = ParquetSource(tmp_path, target="y", features=["x"], groups="id", weight="w",
                            concomitant=["z1", "z2"], chunk_rows=300)
    kw = dict(random_state=0, n_init=1, tol=1e-12, max_iter=6)  # the same 6 steps
    local = MixtureOfLinearRegressions(2, engine=InProcessEngine(), **kw).fit(grouped)
    remote = MixtureOfLinearRegressions(2, engine=DaskEngine(client), **kw).fit(grouped)
    assert remote.n_iter_ == local.n_iter_ and remote.n_groups_ == 300
    assert remote.loglik_ == pytest.approx(local.loglik_, rel=1e-10)
    for name in ("intercept_", "coef_", "sigma_", "weights_", "concomitant_coef_"):
        np.testing.assert_allclose(getattr(remote, name), getattr(local, name), rtol=0,
                                   atol=1e-10)


def test_passes_whose_results_are_bulky_sum_two_at_a_time(client, lake):
    """A pass-0 sample without a key floor can hold ``size`` rows per chunk: its
    ``+`` tasks take two results each; with a floor (a few rows per chunk) and for
    the E-step they take up to 2**FUSED_LEVELS.  Same profile either way."""
    from streammix.algorithms.start.profile import Profile, ProfileTask
    from streammix.engines.dask_graph import fused_levels

    src = ParquetSource(lake, target="y", features=FEATURES, chunk_rows=64)
    assert fused_levels(ProfileTask(0, 500)) == 1
    assert fused_levels(ProfileTask(0, 500, floor=-0.5)) == FUSED_LEVELS
    assert fused_levels(EStepTask(MixtureParams(np.ones(1), np.zeros((1, 3)), np.ones(1)),
                                  True)) == FUSED_LEVELS
    from distributed import get_task_stream

    zero = Profile.empty(2, 500)
    counts = {}
    for floor in (-np.inf, -0.5):
        task = ProfileTask(0, 500, floor)
        with get_task_stream(client) as stream:
            got = DaskEngine(client).map_reduce(src, task, zero)
        want = InProcessEngine(1).map_reduce(src, task, zero)
        np.testing.assert_array_equal(got.keys, want.keys)
        np.testing.assert_array_equal(got.X, want.X)
        assert got.n_rows == want.n_rows == sum(d.n_rows for d in src.plan())
        keys = [str(r["key"]) for r in stream.data]
        assert {r["worker"] for r in stream.data} <= set(client.nthreads())  # on the workers
        maps = sum("streammix-map" in k for k in keys)
        counts[floor] = (maps, sum("streammix-sum" in k for k in keys))
    maps, sums = counts[-np.inf]
    assert maps > 8 and sums == maps - 1  # a + task per sum: the binary tree
    maps, sums = counts[-0.5]
    assert sums <= -(-maps // 2 ** FUSED_LEVELS) + 2
