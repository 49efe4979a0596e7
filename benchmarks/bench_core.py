"""Per-iteration speed of streammix's batch EM, side by side with flexmix and mixtools.

Part 1 (issue 2 target: >= 50x faster per iteration than flexmix):
n = 200k rows, d = 5 including the intercept, m = 3.  streammix runs ITERS EM
iterations (E-step pass + M-step) in-process, on one thread (the figure the
ratios to R use) and with the default threads; R's flexmix and mixtools run
the same number of iterations on the same rows through ``benchmarks/r_peer.R``
(one thread).

Part 2: E-step throughput (rows/s) at n = 1M, d = 10 including the intercept,
m = 4, printed beside a plain pyarrow read of the same columns from Parquet.

Run:  python benchmarks/bench_core.py [--rows 200000] [--iters 10] [--repeats 3] [--no-r]
Timings on a shared machine are noisy: the script reports medians and ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix import InProcessEngine, MixtureParams, SuffStats
from streammix.algorithms.tasks import EStepTask
from streammix.core.mstep import MStepOptions, mstep
from streammix.data.arrays import ArraySource
from streammix.engines.inprocess import default_threads

HERE = Path(__file__).parent


def make_data(n, d, m, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    z = rng.choice(m, size=n)
    coef = rng.normal(scale=2.0, size=(m, d))
    intercept = np.linspace(-3, 3, m)
    y = (X * coef[z]).sum(1) + intercept[z] + rng.normal(size=n)
    return X, y


def streammix_seconds_per_iteration(X, y, m, iters, chunk_rows, n_threads=1):
    source = ArraySource(X, y, chunk_rows=chunk_rows)
    engine = InProcessEngine(n_threads)
    p = X.shape[1] + 1
    rng = np.random.default_rng(1)
    params = MixtureParams(np.full(m, 1 / m), rng.normal(size=(m, p)), np.full(m, 4.0))
    options = MStepOptions(variance_floor=1e-6)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        stats = engine.map_reduce(source, EStepTask(params, True), SuffStats.zeros(m, p))
        params, _ = mstep(stats, params, options)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def r_seconds_per_iteration(X, y, m, iters, workdir):
    if shutil.which("Rscript") is None:
        return None
    csv = Path(workdir) / "core.csv"
    header = "y," + ",".join(f"x{k + 1}" for k in range(X.shape[1]))
    np.savetxt(csv, np.column_stack([y, X]), delimiter=",", header=header, comments="",
               fmt="%.17g")
    out = subprocess.run(["Rscript", str(HERE / "r_peer.R"), str(csv), str(m), str(iters)],
                         capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        name, secs, n_iter = line.split()
        result[name] = float(secs)
    return result


def estep_throughput(n, d, m, repeats, workdir, n_threads=1):
    X, y = make_data(n, d - 1, m, seed=7)
    path = Path(workdir) / "estep.parquet"
    names = [f"x{k + 1}" for k in range(d - 1)]
    table = pa.table({"y": y, **{nm: X[:, k] for k, nm in enumerate(names)}})
    pq.write_table(table, path, row_group_size=131_072)
    del table
    read_times, estep_times = [], []
    p = d
    rng = np.random.default_rng(3)
    params = MixtureParams(np.full(m, 1 / m), rng.normal(size=(m, p)), np.full(m, 2.0))
    source = ArraySource(X, y)
    engine = InProcessEngine(n_threads)
    for _ in range(repeats):
        t0 = time.perf_counter()
        t = pq.read_table(path, columns=["y", *names], use_threads=False)
        cols = [t.column(c).to_numpy() for c in ["y", *names]]
        np.column_stack(cols[1:])
        read_times.append(time.perf_counter() - t0)
        del t, cols
        t0 = time.perf_counter()
        engine.map_reduce(source, EStepTask(params, True), SuffStats.zeros(m, p))
        estep_times.append(time.perf_counter() - t0)
    return n / statistics.median(estep_times), n / statistics.median(read_times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--no-r", action="store_true", help="skip the R peers")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        X, y = make_data(args.rows, 4, 3, seed=2026)
        threads = default_threads()
        sm = [streammix_seconds_per_iteration(X, y, 3, args.iters, args.chunk_rows)
              for _ in range(args.repeats)]
        sm_med = statistics.median(sm)
        smt = [streammix_seconds_per_iteration(X, y, 3, args.iters, args.chunk_rows, threads)
               for _ in range(args.repeats)]
        smt_med = statistics.median(smt)
        print(f"part 1: n={args.rows}, d=5 incl. intercept, m=3, {args.iters} iterations")
        print(f"  streammix, 1 thread  {sm_med * 1e3:9.2f} ms/iteration (median of "
              f"{args.repeats} runs: " + ", ".join(f"{s * 1e3:.2f}" for s in sm) + ")")
        print(f"  streammix, {threads} threads {smt_med * 1e3:8.2f} ms/iteration (the default "
              "InProcessEngine)")
        peers = None if args.no_r else r_seconds_per_iteration(X, y, 3, args.iters, workdir)
        if peers is None:
            print("  (R peers skipped: no Rscript or --no-r)")
        else:
            for name, secs in peers.items():
                print(f"  {name:<10} {secs * 1e3:9.2f} ms/iteration   "
                      f"streammix is {secs / sm_med:6.1f}x faster on 1 thread, "
                      f"{secs / smt_med:6.1f}x on {threads}")
        rate, read_rate = estep_throughput(1_000_000, 10, 4, args.repeats, workdir)
        print("part 2: n=1M, d=10 incl. intercept, m=4")
        print(f"  streammix E-step, 1 thread {rate / 1e6:8.2f} M rows/s")
        print(f"  pyarrow Parquet read       {read_rate / 1e6:8.2f} M rows/s   "
              f"(E-step / read = {rate / read_rate:.2f}; both on one thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
