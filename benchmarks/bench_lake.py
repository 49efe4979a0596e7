"""One EM pass over a Parquet lake, against a bare pyarrow scan of the same columns.

Builds a lake (default 4M rows, d = 10 coefficients with the intercept,
m = 4 components, row groups of 131072 rows), then times side by side:

* a bare pyarrow scan: every row group read (one thread) into a float64
  numpy matrix, the floor for any pass;
* the same with pyarrow's multi-threaded dataset scanner, and with the
  chunks read one per thread by a pool of one thread per CPU (as the
  in-process engine reads them);
* one streammix EM iteration (E-step pass + M-step) in-process, on one
  thread (its peak memory is the one reported) and with the default threads;
* one iteration on a 2-worker LocalCluster, without and with ``cache``
  (with ``cache`` the first pass reads and keeps the chunks, later ones
  only compute);

and prints the peak RSS of this process and of the workers, and every time
as a ratio to the single-threaded scan.  Timings on a shared machine are
noisy: each is the best of ``--repeat`` runs.

    python benchmarks/bench_lake.py --rows 1000000
    python benchmarks/bench_lake.py --rows 40000000 --dir /big/disk/lake
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from streammix import DaskEngine, ParquetSource  # noqa: E402
from streammix.algorithms.tasks import EStepTask  # noqa: E402
from streammix.core.mstep import MStepOptions, mstep  # noqa: E402
from streammix.core.params import MixtureParams  # noqa: E402
from streammix.core.stats import SuffStats  # noqa: E402
from streammix.engines.inprocess import InProcessEngine, default_threads  # noqa: E402


def truth(d: int, m: int, seed: int = 0) -> MixtureParams:
    rng = np.random.default_rng(seed)
    beta = rng.normal(scale=2.0, size=(m, d))
    return MixtureParams(np.full(m, 1.0 / m), beta, rng.uniform(0.3, 1.0, size=m) ** 2)


def build_lake(path: str, rows: int, params: MixtureParams, row_group: int,
               rows_per_file: int, seed: int = 1) -> None:
    """Write the lake one row group at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    d = params.n_coef - 1
    names = [f"x{k}" for k in range(1, d + 1)]
    os.makedirs(path, exist_ok=True)
    done, file_no = 0, 0
    while done < rows:
        in_file = min(rows_per_file, rows - done)
        writer = None
        written = 0
        while written < in_file:
            n = min(row_group, in_file - written)
            X = rng.normal(size=(n, d))
            z = rng.choice(params.n_components, size=n, p=params.weights)
            beta = params.beta[z]
            y = beta[:, 0] + np.einsum("ij,ij->i", X, beta[:, 1:]) \
                + rng.normal(size=n) * np.sqrt(params.sigma2[z])
            table = pa.table({**{name: X[:, k] for k, name in enumerate(names)}, "y": y})
            if writer is None:
                writer = pq.ParquetWriter(os.path.join(path, f"part-{file_no:04d}.parquet"),
                                          table.schema)
            writer.write_table(table, row_group_size=row_group)
            written += n
        writer.close()
        done += in_file
        file_no += 1


def best_of(repeat: int, fn):
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def scan_numpy(source: ParquetSource) -> int:
    """The floor: read every planned row group's columns into a float64 matrix."""
    cols = source.columns
    total = 0
    for piece in source.plan():
        table = pq.ParquetFile(piece.path).read_row_groups(list(piece.row_groups),
                                                           columns=cols, use_threads=False)
        M = np.empty((table.num_rows, len(cols)))
        for k, name in enumerate(cols):
            M[:, k] = table.column(name).to_numpy()
        total += M.shape[0]
    return total


def scan_pool(source: ParquetSource, threads: int) -> int:
    """:func:`scan_numpy` with the chunks read by ``threads`` threads at a time
    (each read on one thread, as the in-process engine's reads are)."""
    from concurrent.futures import ThreadPoolExecutor
    cols = source.columns

    def read(piece):
        table = pq.ParquetFile(piece.path).read_row_groups(list(piece.row_groups),
                                                           columns=cols, use_threads=False)
        M = np.empty((table.num_rows, len(cols)))
        for k, name in enumerate(cols):
            M[:, k] = table.column(name).to_numpy()
        return M.shape[0]

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(read, source.plan()))


def scan_threaded(path: str, cols: list[str]) -> int:
    total = 0
    for batch in ds.dataset(path, format="parquet").to_batches(columns=cols, use_threads=True):
        M = np.column_stack([batch.column(c).to_numpy() for c in cols])
        total += M.shape[0]
    return total


def em_iteration(engine, source, params, p):
    stats = engine.map_reduce(source, EStepTask(params, True),
                              SuffStats.zeros(params.n_components, p))
    new, _ = mstep(stats, params, MStepOptions(variance_floor=1e-8))
    return stats, new


def peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM), in MiB.

    ``getrusage``'s ``ru_maxrss`` survives ``fork``/``exec``, so a spawned
    worker would report its parent's peak; VmHWM does not.
    """
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss() -> None:
    """Restart the peak-RSS count of this process (Linux: clear_refs 5).

    Memory that an earlier stage freed but the allocators kept (pyarrow's
    pool holds the scans' buffers) is handed back first, so that it is not
    counted as the next stage's peak.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--features", type=int, default=9, help="d without the intercept")
    ap.add_argument("--components", type=int, default=4)
    ap.add_argument("--row-group", type=int, default=131_072)
    ap.add_argument("--rows-per-file", type=int, default=1_048_576)
    ap.add_argument("--chunk-rows", type=int, default=131_072)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", default=None, help="where to build the lake (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the lake afterwards")
    args = ap.parse_args(argv)

    params = truth(args.features + 1, args.components)
    p = params.n_coef
    root = args.dir or tempfile.mkdtemp(prefix="streammix-lake-")
    lake = os.path.join(root, "lake")
    try:
        t0 = time.perf_counter()
        if not os.path.isdir(lake):
            build_lake(lake, args.rows, params, args.row_group, args.rows_per_file)
        size = sum(os.path.getsize(os.path.join(lake, f)) for f in os.listdir(lake))
        print(f"lake: {args.rows:,} rows, d={p} (with intercept), m={args.components}, "
              f"{len(os.listdir(lake))} files, {size / 2**20:.0f} MiB "
              f"(ready in {time.perf_counter() - t0:.1f} s)")
        features = [f"x{k}" for k in range(1, args.features + 1)]
        source = ParquetSource(lake, target="y", features=features, chunk_rows=args.chunk_rows)
        rows, peaks = {}, {}
        # The in-process pass first: the scans' buffers would raise the baseline.
        pa.default_memory_pool().release_unused()
        eng = InProcessEngine(1)
        reset_peak_rss()
        base = peak_rss_mib()
        t_inproc, (stats, _) = best_of(args.repeat, lambda: em_iteration(eng, source, params, p))
        peaks["in-process pass"] = (base, peak_rss_mib())
        t_scan, n = best_of(args.repeat, lambda: scan_numpy(source))
        assert n == args.rows
        rows["pyarrow scan -> numpy, 1 thread"] = t_scan
        rows["pyarrow dataset scan, threads"], _ = best_of(
            args.repeat, lambda: scan_threaded(lake, source.columns))
        t_threaded = rows["pyarrow dataset scan, threads"]
        rows[f"pyarrow scan -> numpy, {default_threads()} threads"], _ = best_of(
            args.repeat, lambda: scan_pool(source, default_threads()))
        rows["streammix EM iteration, in-process"] = t_inproc
        threads = default_threads()
        if threads > 1:
            rows[f"  the same, {threads} threads (default)"], _ = best_of(
                args.repeat, lambda: em_iteration(InProcessEngine(), source, params, p))

        from distributed import Client, LocalCluster
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            dask = DaskEngine(client)
            em_iteration(dask, source, params, p)  # warm-up: imports on the workers
            client.run(reset_peak_rss)
            reset_peak_rss()
            rows["streammix EM iteration, 2 workers"], (dstats, _) = best_of(
                args.repeat, lambda: em_iteration(dask, source, params, p))
            assert dstats.allclose(stats, rtol=0.0)
            workers_plain = client.run(peak_rss_mib)
            client_dask = peak_rss_mib()
            client.run(reset_peak_rss)
            cached = DaskEngine(client, cache=True)
            rows["2 workers + cache, first pass (reads)"], _ = best_of(
                1, lambda: em_iteration(cached, source, params, p))
            rows["2 workers + cache, later passes"], _ = best_of(
                args.repeat, lambda: em_iteration(cached, source, params, p))
            workers_cache = client.run(peak_rss_mib)
            cached.clear_cache()

        width = max(len(k) for k in rows)
        print(f"\n{'':{width}}  {'seconds':>8}  {'x scan':>7}  {'x thr.':>7}  {'Mrows/s':>8}")
        for name, t in rows.items():
            print(f"{name:{width}}  {t:8.3f}  {t / t_scan:7.2f}  {t / t_threaded:7.2f}  "
                  f"{args.rows / t / 1e6:8.2f}")
        print("x scan: time / the one-thread scan; x thr.: time / pyarrow's threaded "
              "dataset scan (all cores both sides)")
        base, top = peaks["in-process pass"]
        print(f"\npeak RSS (MiB): in-process passes {top:.0f} (at start {base:.0f}); "
              f"client during Dask passes {client_dask:.0f}")
        print("  workers, passes without cache: "
              + ", ".join(f"{v:.0f}" for v in workers_plain.values())
              + "; with cache: " + ", ".join(f"{v:.0f}" for v in workers_cache.values()))
        print(f"decoded data: {args.rows * (p + 1) * 8 / 2**20:.0f} MiB as float64 "
              "(X, y, w); the cache holds it on the workers")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
