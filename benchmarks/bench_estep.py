"""E-step throughput on one thread against the core's measured DGEMM rate.

Run: ``PYTHONPATH=. python benchmarks/bench_estep.py [--repeats 5]
[--baseline OTHER/_kernel.cpython-...so]``.

For d = 5, 10, 20, 50, 100 columns of the design (the intercept included)
and m = 3, 4, 5, 5, 10 components, times the compiled E-step of one chunk
(``estep_features``, one thread) with the Gram matrices formed in 4 x 4
register tiles (band by band with the sums in vector lanes where they fit and
the CPU has AVX-512) and with the fused dot4 sweep (``kernel.set_tile_min_d``
picks the path), alternating with a 1000 x 1000 DGEMM on one OpenBLAS thread
so that all of them see the same load (the paths in a rotating order: on
this machine a path timed right after another ran up to 7% faster), and
prints medians: rows/s and the
effective GFLOP/s of the E-step, counting the symmetric Gram update
``m d (d + 1)`` flops a row, beside the DGEMM rate and their ratio.
``--baseline`` also times the default path of another build's kernel (for
example a copy of main's ``streammix/core/_kernel*.so``) in the same loop.

Times are the CPU time of this process (it runs one thread), which a busy
shared machine disturbs less than wall time; the DGEMM is timed the same way.
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy loads OpenBLAS

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from streammix.core import kernel  # noqa: E402
from streammix.core.params import MixtureParams  # noqa: E402
from streammix.core.stats import estep_features  # noqa: E402

CASES = [(5, 3), (10, 4), (20, 5), (50, 5), (100, 10)]


def _timed(func, *args) -> float:
    start = time.process_time()
    func(*args)
    return time.process_time() - start


def _load_kernel(path: str):
    """Another build's compiled kernel, loaded beside this one."""
    spec = importlib.util.spec_from_file_location("baseline._kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(repeats: int = 5, baseline: str | None = None) -> None:
    if not kernel.enabled():
        sys.exit("the compiled kernel is not in use (STREAMMIX_KERNEL=0 or not built)")
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(1000, 1000)), rng.normal(size=(1000, 1000))
    default = kernel.set_tile_min_d(8)
    kernel.set_tile_min_d(default)
    ours = kernel.estep_chunk
    other = _load_kernel(baseline).estep_chunk if baseline else None
    lanes = kernel.set_vector_lanes(True)
    kernel.set_vector_lanes(lanes)
    print(f"one thread, CPU time; medians of {repeats}; tiles from d - 1 >= {default} features "
          f"(the default); vector lanes {'on' if lanes else 'off (no AVX-512)'}"
          + (f"; baseline: {baseline}" if baseline else ""))
    print(f"{'d':>4} {'m':>3} {'path':>8} {'Mrows/s':>8} {'GFLOP/s':>8} {'DGEMM':>7} "
          f"{'% DGEMM':>8}")
    for d, m in CASES:
        n = max(20_000, int(2e8 / (m * d * d)))
        FT = rng.normal(size=(d - 1, n))
        y, w = rng.normal(size=n), np.ones(n)
        prm = MixtureParams(np.full(m, 1.0 / m), rng.normal(size=(m, d)) * 0.3,
                            rng.uniform(0.5, 2.0, size=m))
        paths = {"tiled": (ours, 0), "fused": (ours, 10**6)}
        if other is not None:
            paths["baseline"] = (other, None)
        times: dict[str, list[float]] = {path: [] for path in paths} | {"dgemm": []}
        try:
            order = list(paths)
            for _ in range(repeats):
                times["dgemm"].append(_timed(np.matmul, A, B))
                # each path first in turn: the one timed after another runs faster
                order = order[1:] + order[:1]
                for path in order:
                    func, min_d = paths[path]
                    kernel.estep_chunk = func
                    kernel.set_tile_min_d(default if min_d is None else min_d)
                    times[path].append(_timed(estep_features, FT, y, w, prm, True))
        finally:
            kernel.estep_chunk = ours
            kernel.set_tile_min_d(default)
        dgemm = 2e9 / statistics.median(times["dgemm"]) / 1e9
        for path in paths:
            rows = n / statistics.median(times[path])
            gflops = rows * m * d * (d + 1) / 1e9
            mark = " *" if (path == "tiled") == (d - 1 >= default) and path != "baseline" else ""
            print(f"{d:>4} {m:>3} {path:>8} {rows / 1e6:8.2f} {gflops:8.1f} {dgemm:7.1f} "
                  f"{100 * gflops / dgemm:7.0f}%{mark}")
    print("* the path the E-step takes by default")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", default=None,
                        help="another build's _kernel*.so, timed on its default path")
    args = parser.parse_args()
    main(args.repeats, args.baseline)
