"""Many small files and one huge row group: plan time, pass time, memory.

Builds (in a temporary folder)

* a lake of ``--files`` tiny Parquet files (``--rows-per-file`` rows each),
  and times, side by side in one run, best of ``--repeat``: listing and
  planning it (one footer read per file), a bare pyarrow read of every file
  (the floor of a pass), one E-step pass in-process and one on a 2-worker
  ``LocalCluster`` (one task per file: the scheduler's per-task cost shows);
* one file holding a single row group of ``--big-rows`` rows, and fits it on a
  single worker with ``memory_limit=--memory-limit``, printing the worker's
  peak RSS against the decoded size of the chunk.

    PYTHONPATH=. python benchmarks/bench_reliability.py --files 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from streammix import DaskEngine, MixtureOfLinearRegressions, ParquetSource  # noqa: E402
from streammix.algorithms.tasks import EStepTask  # noqa: E402
from streammix.core.params import MixtureParams  # noqa: E402
from streammix.core.stats import SuffStats  # noqa: E402
from streammix.engines.dask_graph import small_chunk_run  # noqa: E402
from streammix.engines.inprocess import InProcessEngine  # noqa: E402


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    z = rng.random(n) < 0.5
    y = np.where(z, -2.0 + x, 2.0 - x) + 0.5 * rng.normal(size=n)
    return x, y


def rss_mib(field="VmHWM"):
    """VmHWM (peak) or VmRSS of this process in MiB (ru_maxrss would survive exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return rss_mib("VmRSS")


def many_files(args, folder):
    x, y = make_data(args.files * args.rows_per_file, 1)
    for k in range(args.files):
        sl = slice(k * args.rows_per_file, (k + 1) * args.rows_per_file)
        pq.write_table(pa.table({"x": x[sl], "y": y[sl]}),
                       os.path.join(folder, f"p{k:05d}.parquet"))
    t_plan, source = best(lambda: ParquetSource(folder, target="y", features=["x"]),
                          args.repeat)
    files = source.files

    def bare():
        return sum(pq.read_table(f, columns=["x", "y"]).num_rows for f in files)

    t_bare, n = best(bare, args.repeat)
    params = MixtureParams(np.array([0.5, 0.5]), np.array([[-2.0, 1.0], [2.0, -1.0]]),
                           np.array([0.25, 0.25]))
    task, zero = EStepTask(params, True), SuffStats.zeros(2, 2)
    t_in, stats = best(lambda: InProcessEngine().map_reduce(source, task, zero), args.repeat)
    assert stats.n_rows == n
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        engine = DaskEngine(client)
        t_dask, on_cluster = best(lambda: engine.map_reduce(source, task, zero), args.repeat)
    assert on_cluster.n_rows == n
    print(f"{args.files} files x {args.rows_per_file} rows")
    print(f"  list + plan (footers)     {t_plan:8.3f} s")
    print(f"  bare pyarrow read         {t_bare:8.3f} s   1.00 x")
    print(f"  E-step pass, in-process   {t_in:8.3f} s   {t_in / t_bare:5.2f} x")
    print(f"  E-step pass, 2 workers    {t_dask:8.3f} s   {t_dask / t_bare:5.2f} x "
          f"({1e3 * t_dask / args.files:.2f} ms per file; "
          f"{small_chunk_run(source.plan(), 2)} files per task)")


def huge_row_group(args, folder):
    from distributed import Client, LocalCluster
    n = args.big_rows
    x, y = make_data(n, 2)
    path = os.path.join(folder, "one.parquet")
    pq.write_table(pa.table({"x": x, "y": y}), path, row_group_size=n)
    source = ParquetSource(path, target="y", features=["x"])
    with LocalCluster(n_workers=1, threads_per_worker=1, memory_limit=args.memory_limit,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        before = list(client.run(reset_peak).values())[0]
        start = time.perf_counter()
        model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-2,
                                           engine=DaskEngine(client)).fit(source)
        seconds = time.perf_counter() - start
        peak = list(client.run(rss_mib).values())[0]
    print(f"one row group of {n} rows ({n * 2 * 8 / 2**20:.0f} MiB decoded), worker "
          f"memory_limit {args.memory_limit}")
    print(f"  fit: {model.n_iter_} iterations in {seconds:.1f} s; worker peak RSS "
          f"{peak:.0f} MiB (before the fit {before:.0f} MiB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rows-per-file", type=int, default=10)
    parser.add_argument("--big-rows", type=int, default=5_000_000)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.makedirs(os.path.join(folder, "many"))
        many_files(args, os.path.join(folder, "many"))
        huge_row_group(args, folder)


if __name__ == "__main__":
    main()
