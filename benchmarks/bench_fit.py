"""Time to solution: a whole default fit from the public API against flexmix.

Part 1 (issue 15, targets 1 and 6): n = 20k, 200k (and 2M with ``--rows``),
d = 5 columns of the design including the intercept, m = 3.  Times, wall
clock, ``MixtureOfLinearRegressions(3).fit(X, y)`` (default settings: the
default engine uses one thread per CPU; and on one thread) and the same
with ``n_init=10``, beside ``flexmix(y ~ ., k = 3)`` and
``stepFlexmix(y ~ ., k = 3, nrep = 10)`` on the same rows (via
``benchmarks/r_fit.R``, one thread, timed inside R), and prints both
log-likelihoods: streammix's should be at least flexmix's.

Part 2 (``--scaling``): default-fit wall time for n = 20k, 200k, 2M at d = 5,
and for d = 5, 20, 50 at n = 1M (streammix only); with ``--lake-rows N``
also a default fit of a Parquet lake of N rows at d = 5 (built in
``--lake-dir``, 1M rows a file, and removed afterwards).

Run:  PYTHONPATH=. python benchmarks/bench_fit.py [--rows 20000 200000]
      [--repeats 3] [--r-nrep-max-rows 200000] [--scaling] [--no-r]
      [--lake-rows 20000000] [--lake-dir /big/disk]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from streammix import InProcessEngine, MixtureOfLinearRegressions
from streammix.engines.inprocess import default_threads

HERE = Path(__file__).parent


def make_data(n: int, d: int, m: int, seed: int):
    """n rows, d - 1 features (the design has d columns with the intercept)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d - 1))
    z = rng.choice(m, size=n)
    coef = rng.normal(scale=2.0, size=(m, d - 1))
    intercept = np.linspace(-3, 3, m)
    y = (X * coef[z]).sum(1) + intercept[z] + rng.normal(size=n)
    return X, y


def time_fit(X, y, repeats: int, **kw):
    times, model = [], None
    for _ in range(repeats):
        model = MixtureOfLinearRegressions(3, random_state=0, **kw)
        start = time.perf_counter()
        model.fit(X, y)
        times.append(time.perf_counter() - start)
    return statistics.median(times), model


def run_r(X, y, nrep: int, workdir: str):
    csv = Path(workdir) / "fit.csv"
    header = "y," + ",".join(f"x{k + 1}" for k in range(X.shape[1]))
    np.savetxt(csv, np.column_stack([y, X]), delimiter=",", header=header, comments="",
               fmt="%.17g")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    out = subprocess.run(["Rscript", str(HERE / "r_fit.R"), str(csv), "3", str(nrep)],
                         capture_output=True, text=True, check=True, env=env).stdout
    result = {}
    for line in out.splitlines():
        name, secs, loglik, k, iters = line.split()
        result[name] = (float(secs), float(loglik), int(k), int(iters))
    return result


def part1(rows, repeats, nrep_max_rows, use_r):
    threads = default_threads()
    print(f"part 1: d=5 incl. intercept, m=3; streammix medians of {repeats} "
          f"(default engine: {threads} threads; and 1 thread); flexmix once, 1 thread")
    with tempfile.TemporaryDirectory() as workdir:
        for n in rows:
            X, y = make_data(n, 5, 3, seed=2026)
            peers = {}
            if use_r:
                peers = run_r(X, y, 10 if n <= nrep_max_rows else 0, workdir)
            print(f"n = {n:,}")
            for label, kw, peer in (("default fit", {}, "flexmix"),
                                    ("n_init=10", {"n_init": 10}, "stepFlexmix")):
                sm, model = time_fit(X, y, repeats, **kw)
                sm1, model1 = time_fit(X, y, repeats, engine=InProcessEngine(1), **kw)
                line = (f"  {label:<12} streammix {sm:8.3f} s (1 thread {sm1:8.3f} s)  "
                        f"loglik {model.loglik_:.4f}")
                if peer in peers:
                    secs, ll, k, iters = peers[peer]
                    line += (f" | {peer} {secs:8.2f} s  loglik {ll:.4f} (k={k}, {iters} it)"
                             f" | ratio {secs / sm:6.1f}x ({secs / sm1:6.1f}x on 1 thread),"
                             f" loglik diff {model.loglik_ - ll:+.4f}")
                print(line)


def part2(repeats, lake_rows=0, lake_dir=None, lake_repeats=None):
    load = os.getloadavg()[0]
    print(f"part 2: default-fit wall time (default engine: {default_threads()} threads), m=3; "
          f"medians of {repeats} (the lake: of {lake_repeats or repeats}); load average "
          f"{load:.1f} on {os.cpu_count()} CPUs at the start", flush=True)
    table = []
    for n, d in [(20_000, 5), (200_000, 5), (2_000_000, 5), (None, 5), (1_000_000, 5),
                 (1_000_000, 20), (1_000_000, 50)]:
        if n is None:  # the lake row, after 2M
            if lake_rows:
                table.append(lake_fit(lake_rows, lake_repeats or repeats, lake_dir))
            continue
        X, y = make_data(n, d, 3, seed=11)
        sm, model = time_fit(X, y, repeats)
        print(f"  n = {n:>9,}  d = {d:>2}:  {sm:8.3f} s  ({model.n_iter_} EM iterations, "
              f"{model.n_passes_} passes)", flush=True)
        table.append((f"{n:,}", d, sm, model.n_iter_, model.n_passes_))
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min), "
          f"{os.getloadavg()[1]:.1f} (5 min)\n")
    print("| n | d (with intercept) | seconds | EM iterations | passes | "
          "seconds per pass and 1M rows |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, d, secs, iters, passes in table:
        rows = int(n.split(" ")[0].replace(",", ""))
        print(f"| {n} | {d} | {secs:.3f} | {iters} | {passes} | "
              f"{secs / max(passes, 1) / rows * 1e6:.3f} |")


def lake_fit(rows: int, repeats: int, lake_dir=None, per_file: int = 1_000_000):
    """A default fit of a Parquet lake of ``rows`` rows (d = 5 with the intercept)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streammix import ParquetSource

    root = tempfile.mkdtemp(prefix="bench_fit_lake_", dir=lake_dir)
    try:
        names = [f"x{k + 1}" for k in range(4)]
        for f, start in enumerate(range(0, rows, per_file)):
            X, y = make_data(min(per_file, rows - start), 5, 3, seed=11)  # same mixture
            cols = {name: X[:, k] for k, name in enumerate(names)} | {"y": y}
            pq.write_table(pa.table(cols), f"{root}/part-{f:04d}.parquet",
                           row_group_size=131_072)
        source = ParquetSource(root, target="y", features=names)
        sm, model = time_fit(source, None, repeats)
        print(f"  n = {rows:>9,}  d =  5:  {sm:8.3f} s  ({model.n_iter_} EM iterations, "
              f"{model.n_passes_} passes; Parquet lake, {-(-rows // per_file)} files)",
              flush=True)
        return f"{rows:,} (Parquet lake)", 5, sm, model.n_iter_, model.n_passes_
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--r-nrep-max-rows", type=int, default=200_000,
                        help="run stepFlexmix(nrep=10) only up to this many rows")
    parser.add_argument("--no-r", action="store_true", help="skip the R peer")
    parser.add_argument("--scaling", action="store_true", help="run part 2 only")
    parser.add_argument("--lake-rows", type=int, default=0,
                        help="with --scaling: also fit a Parquet lake of this many rows")
    parser.add_argument("--lake-dir", default=None, help="where to build that lake")
    parser.add_argument("--lake-repeats", type=int, default=None,
                        help="fits of the lake (default: --repeats)")
    args = parser.parse_args(argv)
    if args.scaling:
        part2(args.repeats, args.lake_rows, args.lake_dir, args.lake_repeats)
        return 0
    use_r = not args.no_r and shutil.which("Rscript") is not None
    if not use_r:
        print("(R peer skipped: no Rscript or --no-r)")
    part1(args.rows, args.repeats, args.r_nrep_max_rows, use_r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
