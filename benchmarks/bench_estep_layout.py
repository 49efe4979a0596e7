"""One E-step pass on C- against F-ordered features at few columns, one thread.

Run: ``PYTHONPATH=. python benchmarks/bench_estep_layout.py [--repeats 9]
[--baseline OTHER/_kernel.cpython-...so] [--plain-loops]``.

For n = 200k and 2M rows of d = 4 features (5 columns with the intercept)
and m = 3 components -- the fits of issue #15 -- times ``estep_features``
(the compiled kernel, fused path) on X.T of a C-ordered X (what
``ArraySource`` now hands over: the kernel transposes each block) and of an
F-ordered X (contiguous features), with this build's kernel and, with
``--baseline``, another build's (for example a copy of main's
``streammix/core/_kernel*.so``), all in one loop in a rotating order so that
they see the same load, and prints the medians of the CPU time of this
process (one thread) and their ratios.
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy loads OpenBLAS

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from streammix.core import kernel  # noqa: E402
from streammix.core.params import MixtureParams  # noqa: E402
from streammix.core.stats import estep_features  # noqa: E402

log = logging.getLogger("bench_estep_layout")


def _load_kernel(path: str):
    """Another build's compiled kernel, loaded beside this one."""
    spec = importlib.util.spec_from_file_location("baseline._kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(repeats: int = 9, baseline: str | None = None, d: int = 4, m: int = 3,
         plain: bool = False) -> None:
    if not kernel.enabled():
        sys.exit("the compiled kernel is not in use (STREAMMIX_KERNEL=0 or not built)")
    ours = kernel.estep_chunk
    old = _load_kernel(baseline) if baseline else None
    builds = {"new": ours} | ({"old": old.estep_chunk} if old else {})
    rng = np.random.default_rng(0)
    lanes = kernel.set_vector_lanes(True)
    kernel.set_vector_lanes(lanes)
    if plain:  # the plain loops in both builds, as on a CPU without AVX-512
        lanes = kernel.set_vector_lanes(False) and False
        if old:
            old.set_vector_lanes(False)
    log.info("one thread, CPU time, medians of %d; d = %d features, m = %d; vector lanes %s%s",
             repeats, d, m, "on" if lanes else "off", f"; old: {baseline}" if baseline else "")
    for n in (200_000, 2_000_000):
        Xc = rng.normal(size=(n, d))
        layouts = {"C": Xc, "F": np.asfortranarray(Xc)}
        y, w = rng.normal(size=n), np.ones(n)
        prm = MixtureParams(np.full(m, 1.0 / m), rng.normal(size=(m, d + 1)) * 0.3,
                            rng.uniform(0.5, 2.0, size=m))
        runs = [(b, lay) for b in builds for lay in layouts]
        times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        try:
            for r in range(repeats):
                for build, layout in runs[r % len(runs):] + runs[:r % len(runs)]:
                    kernel.estep_chunk = builds[build]
                    start = time.process_time()
                    estep_features(layouts[layout].T, y, w, prm, True)
                    times[build, layout].append(time.process_time() - start)
        finally:
            kernel.estep_chunk = ours
        med = {run: statistics.median(t) * 1e3 for run, t in times.items()}
        cells = "  ".join(f"{b} {lay} {med[b, lay]:6.2f} ms" for b, lay in runs)
        ratios = f"new C/F {med['new', 'C'] / med['new', 'F']:.3f}"
        if baseline:
            ratios += (f"; old C/F {med['old', 'C'] / med['old', 'F']:.3f}"
                       f"; old C / new C {med['old', 'C'] / med['new', 'C']:.3f}")
        log.info("n = %9d: %s  (%s)", n, cells, ratios)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--baseline", default=None,
                        help="another build's _kernel*.so, timed beside this one")
    parser.add_argument("--features", type=int, default=4)
    parser.add_argument("--components", type=int, default=3)
    parser.add_argument("--plain-loops", action="store_true",
                        help="this build without the vector-extension code")
    args = parser.parse_args()
    main(args.repeats, args.baseline, args.features, args.components, args.plain_loops)
