"""Cost of the standard-error pass relative to one EM pass, on the same data.

Run: ``PYTHONPATH=. python benchmarks/bench_se.py [n_rows] [n_features] [n_components]
[repeats]``.  Times the information pass (``InformationTask``, what
``compute_se`` runs) and one E-step pass (``EStepTask``) with the in-process
engine, alternating the two so that both see the same load on a shared
machine, once with the default threads and once on one thread, and prints
the medians, the best times and the ratio of medians.  With the compiled
kernel it also times the numpy information pass (the reference path, what
``STREAMMIX_KERNEL=0`` runs) on the same engine.  Last it times what a user
waits for, ``model.compute_se(X, y)`` on the in-memory arrays (which builds and
checks the source again, then runs the information pass and inverts), with
the default engine, against the default-thread E-step pass: "SE cost in
passes".

Issue #15, target 3 (standard errors <= 3 passes' worth).  The latest
figures, against main in the same loop, are in ``benchmarks/README.md``; an
earlier round measured, on a shared, loaded 2-core machine with
``PYTHONPATH=. python benchmarks/bench_se.py 2000000 4 3 3`` (n = 2M, d = 5
incl. intercept, m = 3, medians of 3):

* one E-step pass 0.041-0.059 s; the compiled information pass 0.07-0.14 s
  (1.5-3.0 passes with 2 threads, 1.2-2.0 on one);
* ``compute_se(X, y)`` 0.14-0.22 s, **3.1-4.9 passes**, of which 0.03-0.08 s
  is re-building the source from the arrays (a Fortran-ordered copy of X and
  the finiteness checks), which ``fit(..., se=True)`` does not pay again;
* the numpy information pass (``STREAMMIX_KERNEL=0``) in level-3 BLAS:
  0.80-0.86 s (17-19 passes), against 1.45 s (32-33 passes) for the
  per-component implementation it replaced, both with
  ``OPENBLAS_NUM_THREADS=1``; with OpenBLAS's default 2 threads 0.8-3.1 s
  against 4.7-5.3 s (when the other core is busy the threaded GEMMs of these
  narrow blocks are up to 4x slower than one thread).

Since session 23 the array source serves a C-ordered X as it is (no
Fortran-ordered copy) and ``bench_se.py 2000000 4 3 7`` gives
``compute_se(X, y)`` 1.95-2.75 passes against 3.1-3.3 before, load 5-10.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings

import numpy as np

from streammix import InferenceWarning, MixtureOfLinearRegressions
from streammix.algorithms.information import InformationTask, InfoStats
from streammix.algorithms.parameter_layout import ParameterLayout
from streammix.algorithms.tasks import EStepTask
from streammix.core import kernel
from streammix.core.stats import SuffStats
from streammix.data.arrays import ArraySource
from streammix.engines.inprocess import InProcessEngine


class NumpyPath:
    """A map task run with the numpy information pass (the kernel switched off)."""

    releases_gil = False

    def __init__(self, task):
        self.task = task

    def __call__(self, chunk):
        kernel.set_enabled(False)
        try:
            return self.task(chunk)
        finally:
            kernel.set_enabled(True)


def main(n: int = 2_000_000, d: int = 10, m: int = 3, repeats: int = 5) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    z = rng.integers(0, m, n)
    B = rng.normal(size=(m, d)) * 2
    y = (X * B[z]).sum(1) + 3.0 * z + rng.normal(size=n)
    model = MixtureOfLinearRegressions(m, random_state=0, tol=1e-3, max_iter=50)
    model.fit(X[:50_000], y[:50_000])
    params, p = model.params_, d + 1
    layout = ParameterLayout(m, p, "per_component")
    source = ArraySource(X, y)
    tasks = [("EM pass", EStepTask(params, True), SuffStats.zeros(m, p)),
             ("SE pass", InformationTask(params, True, "per_component"),
              InfoStats.zeros(layout.size))]
    if kernel.enabled():
        tasks.append(("SE pass, numpy", NumpyPath(InformationTask(params, True, "per_component")),
                      InfoStats.zeros(layout.size)))
    print(f"n={n}, d={d} (+ intercept), m={m}, P={layout.size}; medians of {repeats}")
    for engine in (InProcessEngine(), InProcessEngine(1)):
        times: dict[str, list[float]] = {name: [] for name, _, _ in tasks}
        for _ in range(repeats):
            for name, func, zero in tasks:
                start = time.perf_counter()
                engine.map_reduce(source, func, zero)
                times[name].append(time.perf_counter() - start)
        med = {name: statistics.median(t) for name, t in times.items()}
        for name, t in times.items():
            print(f"  {engine.n_threads} thread(s)  {name}: median {med[name]:.3f} s, "
                  f"best {min(t):.3f} s")
        for name in med:
            if name != "EM pass":
                print(f"  {engine.n_threads} thread(s)  ratio {name} / EM pass (medians): "
                      f"{med[name] / med['EM pass']:.2f}")
    engine = InProcessEngine()
    em, se = [], []
    # the parameters come from a fit on the first 50k rows: not the MLE of all rows
    warnings.simplefilter("ignore", InferenceWarning)
    for _ in range(repeats):
        start = time.perf_counter()
        engine.map_reduce(source, EStepTask(params, True), SuffStats.zeros(m, p))
        em.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.compute_se(X, y)
        se.append(time.perf_counter() - start)
    print(f"  compute_se(X, y): median {statistics.median(se):.3f} s, one E-step pass "
          f"{statistics.median(em):.3f} s; SE cost in passes (medians): "
          f"{statistics.median(se) / statistics.median(em):.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
