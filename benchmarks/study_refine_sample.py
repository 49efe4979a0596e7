"""Quality study of the starts' refinement sample: the final log-likelihood of a
default fit when the candidates are refined on fewer sample rows or iterations.

At n >= 200k a default fit refines its five candidates on a random subset of
``REFINE_SIZE`` rows of the reservoir sample (``REFINE_ITER`` EM iterations at
most, the best ``REFINE_KEEP`` after ``REFINE_CULL_ITER``).  A cheaper
refinement must not cost quality: this script builds ``--sets`` synthetic data
sets of ``--rows`` rows, varied in the number of components m (2-5), the
design's columns d (2-8 with the intercept), the separation of the lines, the
noise (per-component σ), the imbalance of the weights, the features' law
(normal, correlated, skewed, uniform) and a share of gross outliers; fits each
with ``MixtureOfLinearRegressions(m, random_state=i).fit(X, y)`` under each
variant (``SIZE/ITER/CULL``, the first the reference, today's defaults), and
prints, per variant against the reference, how many sets end better, equal
(within ``--equal`` in log-likelihood, 0.01 by default: EM stops when an iteration gains
less than 1e-4, and on a slowly converging fit the same optimum from another start
ends up to about that far away) or worse,
the worst loss and the median starts' and whole fits' time.  The variants of
one set run in turn in one process, so the load falls on all alike.

Not part of the test suite.  Run, e.g.::

    PYTHONPATH=. python benchmarks/study_refine_sample.py --sets 240 \\
        --variants 20000/20/5 10000/20/5 5000/20/5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
import warnings

import numpy as np

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.start import initial


def make_set(i: int, rows: int):
    """Data set ``i``: (X, y, m, description), its draws from seed ``i``."""
    rng = np.random.default_rng(10_000 + i)
    m = int(rng.choice([2, 3, 3, 4, 5]))
    d = int(rng.choice([2, 3, 5, 5, 8]))  # design columns with the intercept
    sep = float(rng.choice([0.5, 1.0, 2.0, 4.0]))
    alpha = float(rng.choice([0.7, 2.0, 20.0]))
    law = str(rng.choice(["normal", "correlated", "skewed", "uniform"]))
    outliers = float(rng.choice([0.0, 0.0, 0.01, 0.05]))
    weights = rng.dirichlet(np.full(m, alpha))
    weights = np.maximum(weights, 0.03)
    weights /= weights.sum()
    k = d - 1
    if law == "normal":
        X = rng.normal(size=(rows, k))
    elif law == "correlated":
        A = rng.normal(size=(k, k)) + 2.0 * np.eye(k)
        X = rng.normal(size=(rows, k)) @ A.T / np.sqrt(k + 4.0)
    elif law == "skewed":
        X = rng.lognormal(0.0, 0.7, size=(rows, k))
    else:
        X = rng.uniform(-2.0, 2.0, size=(rows, k))
    z = rng.choice(m, size=rows, p=weights)
    coef = rng.normal(scale=sep, size=(m, k))
    intercept = rng.normal(scale=sep, size=m)
    sigma = np.exp(rng.uniform(-0.7, 0.7, size=m))
    y = (X * coef[z]).sum(1) + intercept[z] + sigma[z] * rng.normal(size=rows)
    if outliers:
        bad = rng.random(rows) < outliers
        y[bad] += 10.0 * np.std(y) * rng.standard_t(2, size=int(bad.sum())) / 3.0
    desc = (f"m={m} d={d} sep={sep:g} alpha={alpha:g} {law} outliers={outliers:g} "
            f"min weight {weights.min():.3f}")
    return X, y, m, desc


@contextlib.contextmanager
def variant(size: int, iters: int, cull: int):
    """The starts refined on ``size`` rows, ``iters`` iterations, culled after ``cull``."""
    kw = initial.initial_params.__kwdefaults__
    saved = kw["refine_size"], kw["refine_iter"], initial.REFINE_CULL_ITER
    kw["refine_size"], kw["refine_iter"], initial.REFINE_CULL_ITER = size, iters, cull
    try:
        yield
    finally:
        kw["refine_size"], kw["refine_iter"], initial.REFINE_CULL_ITER = saved


def fit(X, y, m: int, seed: int, **kw):
    model = MixtureOfLinearRegressions(m, random_state=seed, **kw)
    start = time.perf_counter()
    model.fit(X, y)
    return model, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=240)
    parser.add_argument("--first", type=int, default=0, help="index of the first set")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--variants", nargs="+", default=["20000/20/5", "10000/20/5",
                                                          "5000/20/5"],
                        help="SIZE/ITER/CULL of the refinement; the first is the reference")
    parser.add_argument("--equal", type=float, default=1e-2,
                        help="log-likelihoods within this are equal")
    parser.add_argument("--verbose", action="store_true", help="one line per set")
    args = parser.parse_args(argv)
    variants = [tuple(int(v) for v in spec.split("/")) for spec in args.variants]
    warnings.simplefilter("ignore")
    ll = {v: [] for v in variants}
    times = {v: [] for v in variants}
    starts = {v: [] for v in variants}
    descs = []
    print(f"{args.sets} data sets of {args.rows:,} rows; variants {args.variants}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for i in range(args.first, args.first + args.sets):
        X, y, m, desc = make_set(i, args.rows)
        descs.append(desc)
        for v in variants:
            with variant(*v):
                model, secs = fit(X, y, m, i)
                _, start_secs = fit(X, y, m, i, max_iter=0)
            ll[v].append(model.loglik_)
            times[v].append(secs)
            starts[v].append(start_secs)
        if args.verbose:
            ref = ll[variants[0]][-1]
            print(f"set {i}: {desc}: reference {ref:.6f}; "
                  + ", ".join(f"{'/'.join(map(str, v))} {ll[v][-1] - ref:+.3g}"
                              for v in variants[1:]), flush=True)
    ref = np.array(ll[variants[0]])
    print("| variant (rows/iterations/cull) | better | equal | worse | worst loss | "
          "median fit s | median fit(max_iter=0) s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for v in variants:
        diff = np.array(ll[v]) - ref
        worse = diff < -args.equal
        worst = int(np.argmin(diff))
        print(f"| {'/'.join(map(str, v))} | {int((diff > args.equal).sum())} | "
              f"{int((np.abs(diff) <= args.equal).sum())} | {int(worse.sum())} | "
              f"{-min(diff.min(), 0.0):.4g} | {statistics.median(times[v]):.4f} | "
              f"{statistics.median(starts[v]):.4f} |", flush=True)
        for j in np.flatnonzero(worse):
            print(f"    worse on set {args.first + j}: {descs[j]}: {diff[j]:+.4g} "
                  f"(reference {ref[j]:.6f})")
        if diff[worst] < 0 and not worse[worst]:
            print(f"    largest change below --equal: set {args.first + worst}, {diff[worst]:+.3g}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
