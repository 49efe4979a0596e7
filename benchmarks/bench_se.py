"""Cost of the standard-error pass relative to one EM pass, on the same data.

Run: ``PYTHONPATH=. python benchmarks/bench_se.py [n_rows] [n_features] [n_components]``.
Prints the best of 3 timings of each pass (in-process engine) and their ratio.
The information pass forms the per-row score matrix (n × P, P free
parameters) and its outer product, so its cost grows like n P² against the
E-step's n m p²/2.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.information import InformationTask, InfoStats, ParameterLayout
from streammix.algorithms.tasks import EStepTask
from streammix.core.stats import SuffStats
from streammix.data.arrays import ArraySource
from streammix.engines.inprocess import InProcessEngine


def main(n: int = 400_000, d: int = 10, m: int = 3) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    z = rng.integers(0, m, n)
    B = rng.normal(size=(m, d)) * 2
    y = (X * B[z]).sum(1) + 3.0 * z + rng.normal(size=n)
    model = MixtureOfLinearRegressions(m, random_state=0, tol=1e-3, max_iter=50)
    model.fit(X[:50_000], y[:50_000])
    params, p = model.params_, d + 1
    layout = ParameterLayout(m, p, "per_component")
    source, engine = ArraySource(X, y), InProcessEngine()
    timings = {}
    for name, func, zero in [
        ("EM pass", EStepTask(params, True), SuffStats.zeros(m, p)),
        ("SE pass", InformationTask(params, True, "per_component"), InfoStats.zeros(layout.size)),
    ]:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            engine.map_reduce(source, func, zero)
            best = min(best, time.perf_counter() - start)
        timings[name] = best
        print(f"{name}: {best:.3f} s  (n={n}, d={d}, m={m}, P={layout.size})")
    print(f"ratio SE/EM: {timings['SE pass'] / timings['EM pass']:.1f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
