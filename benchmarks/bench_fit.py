"""Time to solution: a whole default fit from the public API against flexmix.

Part 1 (issue 15, targets 1 and 2): n = 20k, 200k (and 2M with ``--rows``),
d = 5 columns of the design including the intercept, m = 3.  Times, wall
clock, ``MixtureOfLinearRegressions(3).fit(X, y)`` (default settings: the
default engine uses one thread per CPU; and on one thread) and the same
with ``n_init=10``, beside ``flexmix(y ~ ., k = 3)`` and
``stepFlexmix(y ~ ., k = 3, nrep = 10)`` on the same rows (via
``benchmarks/r_fit.R``, timed inside R; R's flexmix is single-threaded, so
its one thread is all it can use).  The machine is shared: streammix's runs
and R's alternate (``--r-repeats`` rounds, stepFlexmix in the first
``--step-repeats``), and the figures are medians; prints both
log-likelihoods (streammix's should be at least flexmix's) and the ratio.
Then the cost of the starting values in passes: a default fit with
``max_iter=0`` (pass 0, the starts on the sample, one E-step pass at the
start) against one E-step pass over the data on the default engine,
alternating, medians of ``--repeats``.

Part 2 (``--scaling``): default-fit wall time for n = 20k, 200k, 2M at d = 5,
and for d = 5, 20, 50 at n = 1M (streammix only); with ``--lake-rows N``
also a default fit of a Parquet lake of N rows at d = 5 (built in
``--lake-dir``, 1M rows a file, and removed afterwards).

Part 3 (``--baseline DIR``): the same fits (default, ``max_iter=0``,
``n_init=10``) by another checkout of streammix (``DIR``, e.g. ``git
worktree add DIR <commit>`` with its kernel built) and by this one, each fit
in a fresh process, the two alternating (``--rounds``), medians of
``--repeats`` fits per process: wall and CPU seconds, old over new, and both
log-likelihoods (the same fit gives the same figure to all digits).

Run:  PYTHONPATH=. python benchmarks/bench_fit.py [--rows 20000 200000]
      [--repeats 3] [--r-repeats 3] [--step-repeats 1] [--r-nrep-max-rows 200000]
      [--scaling] [--no-r]
      [--lake-rows 20000000] [--lake-dir /big/disk] [--scaling --dims 20 50]
      [--baseline DIR --rounds 4]
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
import warnings
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
    if not csv.exists() or csv.stat().st_size == 0:
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


def start_cost(X, y, repeats: int):
    """Median wall time of a default fit with ``max_iter=0``, of one E-step pass over
    the same rows on the default engine, and their ratio (alternating runs)."""
    from streammix import ArraySource
    from streammix.algorithms.restarts import StatsBundle
    from streammix.algorithms.tasks import MultiEStepTask

    source = ArraySource(X, y)
    engine = InProcessEngine()
    params = MixtureOfLinearRegressions(3, random_state=0).fit(X, y).params_
    task = MultiEStepTask((params,), True)
    starts, passes = [], []
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            secs, _ = time_fit(X, y, 1, max_iter=0)
        starts.append(secs)
        begin = time.perf_counter()
        engine.map_reduce(source, task, StatsBundle.zeros((params,)))
        passes.append(time.perf_counter() - begin)
    start, one = statistics.median(starts), statistics.median(passes)
    return start, one, start / one


def part1(rows, repeats, r_repeats, step_repeats, nrep_max_rows, use_r):
    threads = default_threads()
    print(f"part 1: d=5 incl. intercept, m=3; streammix medians of {repeats} per round "
          f"(default engine: {threads} threads; and 1 thread), {r_repeats if use_r else 1} "
          "rounds alternating with R (flexmix each round, stepFlexmix in the first "
          f"{step_repeats}); R on 1 thread (all flexmix uses)")
    fits = (("default fit", {}, "flexmix"), ("n_init=10", {"n_init": 10}, "stepFlexmix"))
    with tempfile.TemporaryDirectory() as workdir:
        for n in rows:
            X, y = make_data(n, 5, 3, seed=2026)
            (Path(workdir) / "fit.csv").unlink(missing_ok=True)
            ours = {label: ([], [], None) for label, _, _ in fits}
            peers: dict[str, list] = {}
            for rnd in range(r_repeats if use_r else 1):
                if use_r:
                    nrep = 10 if n <= nrep_max_rows and rnd < step_repeats else 0
                    for name, value in run_r(X, y, nrep, workdir).items():
                        peers.setdefault(name, []).append(value)
                for label, kw, _ in fits:
                    many, one, _ = ours[label]
                    sm, model = time_fit(X, y, repeats, **kw)
                    sm1, _ = time_fit(X, y, repeats, engine=InProcessEngine(1), **kw)
                    ours[label] = (many + [sm], one + [sm1], model)
            print(f"n = {n:,}")
            for label, _, peer in fits:
                many, one, model = ours[label]
                sm, sm1 = statistics.median(many), statistics.median(one)
                line = (f"  {label:<12} streammix {sm:8.3f} s (1 thread {sm1:8.3f} s)  "
                        f"loglik {model.loglik_:.4f}")
                if peer in peers:
                    runs = peers[peer]
                    secs = statistics.median(r[0] for r in runs)
                    _, ll, k, iters = runs[0]
                    line += (f" | {peer} {secs:8.2f} s (median of {len(runs)})  loglik "
                             f"{ll:.4f} (k={k}, {iters} it) | ratio {secs / sm:6.1f}x "
                             f"({secs / sm1:6.1f}x on 1 thread), loglik diff "
                             f"{model.loglik_ - ll:+.4f}")
                print(line, flush=True)
            start, one, ratio = start_cost(X, y, max(repeats, 5))
            print(f"  starting values: fit(max_iter=0) {start:.4f} s, one E-step pass "
                  f"{one:.4f} s: {ratio:.1f} passes' worth", flush=True)


def part2(repeats, lake_rows=0, lake_dir=None, lake_repeats=None, dims=None):
    load = os.getloadavg()[0]
    print(f"part 2: default-fit wall time (default engine: {default_threads()} threads), m=3; "
          f"medians of {repeats} (the lake: of {lake_repeats or repeats}); load average "
          f"{load:.1f} on {os.cpu_count()} CPUs at the start", flush=True)
    table = []
    cases = [(20_000, 5), (200_000, 5), (2_000_000, 5), (None, 5), (1_000_000, 5),
             (1_000_000, 20), (1_000_000, 50)]
    if dims:  # --dims: only the n = 1M rows of these d
        cases = [(1_000_000, d) for d in dims]
    for n, d in cases:
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


#: One process's fits for --baseline (run with the PYTHONPATH of the tree measured).
CHILD = """
import json, statistics, sys, time, warnings
import numpy as np
import streammix
from streammix import MixtureOfLinearRegressions
n, repeats, kw = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
rng = np.random.default_rng(2026)  # make_data(n, 5, 3, seed=2026)
X = rng.normal(size=(n, 4))
z = rng.choice(3, size=n)
coef = rng.normal(scale=2.0, size=(3, 4))
y = (X * coef[z]).sum(1) + np.linspace(-3, 3, 3)[z] + rng.normal(size=n)
warnings.simplefilter("ignore")
MixtureOfLinearRegressions(3, random_state=0, **kw).fit(X, y)  # warm
walls, cpus = [], []
for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    model = MixtureOfLinearRegressions(3, random_state=0, **kw).fit(X, y)
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
print(json.dumps([statistics.median(walls), statistics.median(cpus), model.loglik_,
                  streammix.__file__]))
"""


def part3(baseline: str, rows, repeats: int, rounds: int):
    """This tree against ``baseline``: alternating processes, medians (see the module notes)."""
    import json

    trees = {"baseline": str(Path(baseline).resolve()), "this": str(HERE.parent.resolve())}
    print(f"part 3: {trees['baseline']} (baseline) against {trees['this']} (this), d=5, m=3; "
          f"{rounds} rounds of one process each, alternating, {repeats} fits a process; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    print("| n | fit | baseline | this | baseline / this | CPU baseline | CPU this | "
          "log-lik. baseline | log-lik. this |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    fits = (("default", {}), ("`max_iter=0`", {"max_iter": 0}), ("`n_init=10`", {"n_init": 10}))
    for n in rows:
        for label, kw in fits:
            got: dict[str, list] = {name: [] for name in trees}
            for rnd in range(rounds):
                for name in (("baseline", "this") if rnd % 2 == 0 else ("this", "baseline")):
                    env = dict(os.environ, PYTHONPATH=trees[name])
                    # run in the tree: "python -c" puts the working directory first on sys.path
                    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(repeats),
                                          json.dumps(kw)], capture_output=True, text=True,
                                         check=True, env=env, cwd=trees[name]).stdout
                    got[name].append(json.loads(out.splitlines()[-1]))
            for name, runs in got.items():  # each tree's fits ran its own streammix
                assert runs[0][3].startswith(trees[name]), (name, runs[0][3])
            wall = {k: statistics.median(r[0] for r in v) for k, v in got.items()}
            cpu = {k: statistics.median(r[1] for r in v) for k, v in got.items()}
            print(f"| {n:,} | {label} | {wall['baseline']:.4f} s | {wall['this']:.4f} s | "
                  f"{wall['baseline'] / wall['this']:.2f} | {cpu['baseline']:.4f} s | "
                  f"{cpu['this']:.4f} s | {got['baseline'][0][2]:.10g} | "
                  f"{got['this'][0][2]:.10g} |", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--r-repeats", type=int, default=3,
                        help="rounds alternating streammix's runs with R's")
    parser.add_argument("--step-repeats", type=int, default=1,
                        help="rounds in which R also runs stepFlexmix(nrep=10)")
    parser.add_argument("--r-nrep-max-rows", type=int, default=200_000,
                        help="run stepFlexmix(nrep=10) only up to this many rows")
    parser.add_argument("--no-r", action="store_true", help="skip the R peer")
    parser.add_argument("--scaling", action="store_true", help="run part 2 only")
    parser.add_argument("--lake-rows", type=int, default=0,
                        help="with --scaling: also fit a Parquet lake of this many rows")
    parser.add_argument("--lake-dir", default=None, help="where to build that lake")
    parser.add_argument("--lake-repeats", type=int, default=None,
                        help="fits of the lake (default: --repeats)")
    parser.add_argument("--dims", type=int, nargs="+", default=None,
                        help="with --scaling: only the n = 1M fits of these d (e.g. 20 50)")
    parser.add_argument("--baseline", default=None,
                        help="part 3 only: time these fits by the streammix in this "
                             "directory and by this one, alternating processes")
    parser.add_argument("--rounds", type=int, default=4,
                        help="with --baseline: processes per tree (alternating)")
    args = parser.parse_args(argv)
    if args.baseline:
        part3(args.baseline, args.rows, args.repeats, args.rounds)
        return 0
    if args.scaling:
        part2(args.repeats, args.lake_rows, args.lake_dir, args.lake_repeats, args.dims)
        return 0
    use_r = not args.no_r and shutil.which("Rscript") is not None
    if not use_r:
        print("(R peer skipped: no Rscript or --no-r)")
    part1(args.rows, args.repeats, args.r_repeats, args.step_repeats, args.r_nrep_max_rows,
          use_r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
