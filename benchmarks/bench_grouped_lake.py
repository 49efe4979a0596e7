"""Grouped classes on a Parquet lake: the locating pass, the plan, regroup, and EM passes.

Builds two lakes of the same rows (default 1M rows, groups of 5-15 rows, 2
components, 10 files, row groups of 50 000 rows): *by group* (rows sorted by
group, files and row groups cut anywhere) and *in time order* (rows shuffled,
so every group lies in several files).  Then times:

* the plan of a grouped source (the locating pass, reading the group column
  alone, and the join of chunks): tasks, chunks read per task;
* one grouped EM pass on the by-group lake (with the compiled group sums, and
  on numpy when the kernel is built), and one ordinary (row-wise) pass on the
  same lake, in-process: medians of alternating runs;
* ``streammix.regroup`` of the time-ordered lake (Dask's local threads), and
  the plan of the result;
* that the grouped fit of the regrouped lake equals the in-memory grouped
  fit (same start), as the largest coefficient difference.

Timings on a shared machine are noisy: the passes are medians of alternating
runs, the rest the best of ``--repeat`` runs.

    python benchmarks/bench_grouped_lake.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import streammix  # noqa: E402
from streammix.algorithms.grouped_em import GroupedTask  # noqa: E402
from streammix.core.grouped_estep import GroupedStats  # noqa: E402
from streammix.core.params import MixtureParams  # noqa: E402
from streammix.engines.inprocess import InProcessEngine  # noqa: E402

INIT = dict(weights=[0.6, 0.4], coef=[[0.6], [0.2]], intercept=[3.0, 5.0], sigma=[4.0, 4.0])


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def make_rows(n_rows, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 16, n_rows // 10 + 1)
    ids = np.repeat(np.arange(sizes.size), sizes)[:n_rows]
    cls = rng.integers(0, 2, sizes.size)[ids]
    x = rng.uniform(0, 10, ids.size)
    y = np.where(cls == 0, 1 + 2 * x, 8 - x) + rng.normal(0, 1.5, ids.size)
    return ids, x, y


def write_lake(folder, ids, x, y, n_files, row_group):
    os.makedirs(folder)
    for i, part in enumerate(np.array_split(np.arange(ids.size), n_files)):
        pq.write_table(pa.table({"id": ids[part], "x": x[part], "y": y[part]}),
                       os.path.join(folder, f"part-{i:03d}.parquet"), row_group_size=row_group)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--row-group", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--passes-only", action="store_true",
                    help="stop after the plan and the pass timings (no regroup, no fit)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(dir=args.dir)
    try:
        ids, x, y = make_rows(args.rows)
        by_group, in_time = os.path.join(root, "by_group"), os.path.join(root, "in_time")
        write_lake(by_group, ids, x, y, args.files, args.row_group)
        perm = np.random.default_rng(1).permutation(ids.size)
        write_lake(in_time, ids[perm], x[perm], y[perm], args.files, args.row_group)
        print(f"{args.rows} rows, {ids.max() + 1} groups, {args.files} files, row groups of "
              f"{args.row_group}")

        source = streammix.ParquetSource(by_group, target="y", features=["x"], groups="id",
                                         chunk_rows=args.row_group)
        t, view = best(source.grouped_view, args.repeat)
        tasks = view.plan()
        print(f"by-group lake: {len(source.plan())} chunks -> {len(tasks)} tasks, at most "
              f"{max(len(k.pieces) for k in tasks)} chunks per task; locating pass + plan "
              f"{t:.2f} s")
        engine = InProcessEngine()
        params = MixtureParams(np.array([0.6, 0.4]), np.array([[3.0, 0.6], [5.0, 0.2]]),
                               np.array([16.0, 16.0]))
        from streammix.algorithms.tasks import EStepTask
        from streammix.core import kernel

        def grouped_pass():
            return engine.map_reduce(view, GroupedTask(params, True), GroupedStats.zeros(2, 2))

        def row_pass():
            return engine.map_reduce(source, EStepTask(params, True),
                                     streammix.SuffStats.zeros(2, 2))

        # alternating runs, medians: the grouped pass with the compiled sums (when
        # built), the grouped pass on numpy, the row-wise pass
        paths = {"grouped": grouped_pass, "row-wise": row_pass}
        if kernel.available():
            def numpy_pass():
                with kernel.enabled_as(False):
                    return grouped_pass()
            paths["grouped, numpy"] = numpy_pass
        times = {name: [] for name in paths}
        for _ in range(max(args.repeat, 3)):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(ts)) for name, ts in times.items()}
        print("one pass, median of {} alternating runs: ".format(len(times["grouped"]))
              + ", ".join(f"{name} {t:.3f} s" for name, t in med.items())
              + f"; grouped / row-wise {med['grouped'] / med['row-wise']:.2f}"
              + (f", numpy grouped / row-wise {med['grouped, numpy'] / med['row-wise']:.2f}"
                 if "grouped, numpy" in med else ""))
        if args.passes_only:
            return

        spread = streammix.ParquetSource(in_time, target="y", features=["x"], groups="id",
                                         chunk_rows=args.row_group)
        try:
            spread.grouped_view()
            print("time-ordered lake: planned (unexpected)")
        except streammix.DataError as exc:
            print(f"time-ordered lake: refused ({str(exc)[:90]}...)")
        out = os.path.join(root, "regrouped")
        t, _ = best(lambda: streammix.regroup(in_time, "id", out, overwrite=True,
                                              npartitions=args.files), 1)
        regrouped = streammix.ParquetSource(out, target="y", features=["x"], groups="id",
                                            chunk_rows=args.row_group)
        view = regrouped.grouped_view()
        print(f"regroup {t:.2f} s -> {len(regrouped.plan())} chunks, {len(view.plan())} tasks, "
              f"at most {max(len(k.pieces) for k in view.plan())} chunks per task")
        model = streammix.MixtureOfLinearRegressions(2, init=INIT, tol=1e-8)
        t, lake = best(lambda: model.fit(regrouped), 1)
        memory = streammix.MixtureOfLinearRegressions(2, init=INIT, tol=1e-8).fit(
            x[:, None], y, groups=ids)
        gap = np.abs(lake.coef_ - memory.coef_).max()
        print(f"grouped fit of the regrouped lake {t:.2f} s ({lake.n_passes_} passes); "
              f"max |coef - in-memory coef| = {gap:.1e}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
