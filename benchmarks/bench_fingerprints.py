"""Cost of checking each file's stamp (size, mtime, footer hash) when a task reads it.

A 2,000,000-row lake (``--files`` files, 3 features), fitted in this process
with the default engine for a fixed number of passes (``tol=0``), with the
stamps of the plan (the default) and with them removed (no check), in
alternation, ``--repeats`` times each; prints the medians and their ratio.

Run:  PYTHONPATH=. python benchmarks/bench_fingerprints.py [--files 16 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.exceptions import ConvergenceWarning

N_ROWS = 2_000_000


def make_lake(root: Path, n_files: int) -> None:
    rng = np.random.default_rng(0)
    per = N_ROWS // n_files
    for k in range(n_files):
        X = rng.normal(size=(per, 3))
        z = rng.integers(0, 2, per)
        y = np.where(z, 2 + X @ [1.0, -1.0, 0.5], -2 - X @ [0.5, 1.0, 1.0])
        y = y + rng.normal(size=per)
        pq.write_table(pa.table({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "y": y}),
                       str(root / f"part-{k:04d}.parquet"))


def time_fit(root: Path, checked: bool, max_iter: int) -> float:
    start = time.perf_counter()
    source = ParquetSource(str(root), target="y", features=["x1", "x2", "x3"])
    if not checked:
        source._plan = [piece._replace(stamp=None) for piece in source._plan]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MixtureOfLinearRegressions(2, random_state=0, tol=0, max_iter=max_iter).fit(source)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, nargs="+", default=[16, 200])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=20)
    args = parser.parse_args()
    print(f"{N_ROWS:,} rows, {args.max_iter} iterations, medians of {args.repeats}")
    print(f"{'files':>6} {'chunks':>7} {'checked s':>10} {'unchecked s':>12} {'ratio':>6}")
    for n_files in args.files:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_lake(root, n_files)
            n_chunks = len(ParquetSource(str(root), target="y", features=["x1"]).plan())
            times = {True: [], False: []}
            time_fit(root, True, 1)  # warm the page cache
            for _ in range(args.repeats):
                for checked in (True, False):
                    times[checked].append(time_fit(root, checked, args.max_iter))
            on, off = statistics.median(times[True]), statistics.median(times[False])
            print(f"{n_files:>6} {n_chunks:>7} {on:>10.3f} {off:>12.3f} {on / off:>6.3f}")


if __name__ == "__main__":
    main()
