"""E-step throughput on one thread against the core's measured DGEMM rate.

Run: ``PYTHONPATH=. python benchmarks/bench_estep.py [repeats]``.

For d = 5, 10, 20, 50, 100 columns of the design (the intercept included)
and m = 3, 4, 5, 5, 10 components, times the compiled E-step of one chunk
(``estep_features``, one thread) with the Gram matrices formed in 4 x 4
register tiles and with the fused dot4 sweep (``kernel.set_tile_min_d``
picks the path), alternating with a 1000 x 1000 DGEMM on one OpenBLAS thread
so that all three see the same load, and prints medians: rows/s and the
effective GFLOP/s of the E-step, counting the symmetric Gram update
``m d (d + 1)`` flops a row, beside the DGEMM rate and their ratio.
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy loads OpenBLAS

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from streammix.core import kernel  # noqa: E402
from streammix.core.params import MixtureParams  # noqa: E402
from streammix.core.stats import estep_features  # noqa: E402

CASES = [(5, 3), (10, 4), (20, 5), (50, 5), (100, 10)]


def _timed(func, *args) -> float:
    start = time.perf_counter()
    func(*args)
    return time.perf_counter() - start


def main(repeats: int = 5) -> None:
    if not kernel.enabled():
        sys.exit("the compiled kernel is not in use (STREAMMIX_KERNEL=0 or not built)")
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(1000, 1000)), rng.normal(size=(1000, 1000))
    default = kernel.set_tile_min_d(8)
    kernel.set_tile_min_d(default)
    print(f"one thread; medians of {repeats}; tiles from d - 1 >= {default} features "
          "(the default)")
    print(f"{'d':>4} {'m':>3} {'path':>6} {'Mrows/s':>8} {'GFLOP/s':>8} {'DGEMM':>7} "
          f"{'% DGEMM':>8}")
    for d, m in CASES:
        n = max(20_000, int(4e8 / (m * d * d)))
        FT = rng.normal(size=(d - 1, n))
        y, w = rng.normal(size=n), np.ones(n)
        prm = MixtureParams(np.full(m, 1.0 / m), rng.normal(size=(m, d)) * 0.3,
                            rng.uniform(0.5, 2.0, size=m))
        times: dict[str, list[float]] = {"tiled": [], "fused": [], "dgemm": []}
        for _ in range(repeats):
            times["dgemm"].append(_timed(np.matmul, A, B))
            for path, min_d in (("tiled", 0), ("fused", 10**6)):
                kernel.set_tile_min_d(min_d)
                times[path].append(_timed(estep_features, FT, y, w, prm, True))
        kernel.set_tile_min_d(default)
        dgemm = 2e9 / statistics.median(times["dgemm"]) / 1e9
        for path in ("fused", "tiled"):
            rows = n / statistics.median(times[path])
            gflops = rows * m * d * (d + 1) / 1e9
            mark = " *" if (path == "tiled") == (d - 1 >= default) else ""
            print(f"{d:>4} {m:>3} {path:>6} {rows / 1e6:8.2f} {gflops:8.1f} {dgemm:7.1f} "
                  f"{100 * gflops / dgemm:7.0f}%{mark}")
    print("* the path the E-step takes by default")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
