"""The command line's default engine: ``streammix fit`` in-process vs on a fresh local cluster.

Builds a Parquet lake (default 3M rows: 12 files, x1..x3 and y from a 2-component
mixture), then runs ``streammix fit`` on it alternately in-process (the default) and
with ``--cluster local`` (a fresh LocalCluster of worker processes, the former
default), ``--repeat`` times each, and prints each run, the medians and their ratio.

Run: python benchmarks/bench_cli_default.py [--rows 3000000] [--repeat 5] [--lake DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_lake(folder: Path, rows: int, files: int = 12) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    n = rows // files
    for i in range(files):
        X = rng.normal(size=(n, 3))
        z = rng.random(n) < 0.6
        y = np.where(z, -3 + X @ [2.0, -1.0, 0.5], 3 + X @ [-1.0, 0.5, 1.5])
        y += rng.normal(size=n) * np.where(z, 1.0, 0.7)
        pq.write_table(pa.table({"x1": X[:, 0], "x2": X[:, 1], "x3": X[:, 2], "y": y}),
                       folder / f"part-{i:02d}.parquet", row_group_size=65536)


def run_fit(lake: Path, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "streammix", "fit", str(lake), "--target", "y",
           "--features", "x1,x2,x3", "--components", "2", "--seed", "0", "-q",
           "--out", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lake", type=Path, help="an existing lake (x1..x3, y) to use")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lake = args.lake or Path(tmp) / "lake"
        if args.lake is None:
            make_lake(lake, args.rows)
        times: dict[str, list[float]] = {"in-process (default)": [], "--cluster local": []}
        for _ in range(args.repeat):
            times["in-process (default)"].append(run_fit(lake, Path(tmp) / "a.json", []))
            times["--cluster local"].append(
                run_fit(lake, Path(tmp) / "b.json", ["--cluster", "local"]))
        for name, values in times.items():
            print(f"{name:22s} " + " ".join(f"{v:6.2f}" for v in values)
                  + f"   median {statistics.median(values):6.2f} s")
        ratio = (statistics.median(times["--cluster local"])
                 / statistics.median(times["in-process (default)"]))
        print(f"local cluster / in-process: {ratio:.2f}x")


if __name__ == "__main__":
    main()
