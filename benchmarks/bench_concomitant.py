"""Fits with concomitant variables: passes and wall time of streammix's Böhning GEM on a
lake, beside flexmix's time per iteration on a subsample, in one run.

A lake of ROWS rows (x; z1, z2; m = 3, the generating model of
``tests/fixtures/r/make_concomitant_fixture.R``) in 8 Parquet files is fitted
by streammix (in-process, default threads; one Böhning step for the gate per
pass, the mathematics page §1.8) twice: with SQUAREM (the default, the chosen
step) and with plain GEM (``accelerate=None``, the alternative measured), to
``--lake-tol``; then R's flexmix fits ``y ~ x`` with
``FLXPmultinom(~ z1 + z2)`` on the first SUB rows for a fixed number of
iterations from the true classes (its gate is a full ``nnet::multinom`` fit
per iteration).  Printed: passes, wall time, time per pass; flexmix's time per
iteration; the ratio per iteration scaled to equal rows.

Run:  python benchmarks/bench_concomitant.py [--rows 2000000] [--sub 20000] [--no-r]

``--compare-accelerate`` instead fits ROWS rows in memory (arrays, default
200 000) with plain GEM (``accelerate=None``) and with SQUAREM
(``accelerate="squarem"``) at ``--tol`` and prints passes, wall time and
log-likelihood of each:  python benchmarks/bench_concomitant.py
--compare-accelerate --rows 200000
Timings on a shared machine are noisy; quote the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix import MixtureOfLinearRegressions, ParquetSource

R_SCRIPT = r"""
suppressPackageStartupMessages(library(flexmix))
args <- commandArgs(TRUE); d <- read.csv(args[1]); it <- as.integer(args[2])
t0 <- proc.time()[["elapsed"]]
fit <- flexmix(y ~ x, data = d, k = 3, cluster = d$class,
               concomitant = FLXPmultinom(~ z1 + z2),
               control = list(iter.max = it, tolerance = 0, minprior = 0))
cat(proc.time()[["elapsed"]] - t0, fit@iter, "\n")
"""


def simulate(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    z1, z2 = rng.normal(size=n), (rng.random(n) < 0.5).astype(float)
    G = np.array([[0, 0, 0], [0.3, 1.0, -0.8], [-0.2, -1.2, 1.0]])
    eta = np.column_stack([np.ones(n), z1, z2]) @ G.T
    p = np.exp(eta - eta.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    cls = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
    mu = np.column_stack([1 + 2 * x, 8 - x, 3 + 0.5 * x])[np.arange(n), cls]
    y = mu + rng.normal(size=n) * np.array([1.0, 1.5, 0.8])[cls]
    return {"x": x, "z1": z1, "z2": z2, "y": y, "class": cls + 1}


def compare_accelerate(rows: int, tol: float) -> None:
    """Plain GEM against SQUAREM on ``rows`` rows in memory (m = 3, q = 2)."""
    data = simulate(rows)
    X, Z = data["x"][:, None], np.column_stack([data["z1"], data["z2"]])
    fits = {}
    for accelerate in (None, "squarem"):
        t0 = time.perf_counter()
        model = MixtureOfLinearRegressions(3, random_state=0, tol=tol, max_iter=20000,
                                           accelerate=accelerate).fit(X, data["y"],
                                                                      concomitant=Z)
        wall = time.perf_counter() - t0
        fits[accelerate] = model
        print(f"accelerate={accelerate!s:8} {rows} rows, tol {tol:g}: {model.n_passes_} "
              f"passes, {wall:.2f} s, converged {model.converged_}, "
              f"loglik {model.loglik_:.6f}")
    a, b = fits[None], fits["squarem"]
    print(f"max |gate difference| {np.max(np.abs(a.concomitant_coef_ - b.concomitant_coef_)):.2e}"
          f", max |beta difference| {np.max(np.abs(a.coef_ - b.coef_)):.2e}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--sub", type=int, default=20_000)
    ap.add_argument("--r-iters", type=int, default=20)
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--compare-accelerate", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--lake-tol", type=float, default=1e-4,
                    help="tol of the lake fits (default 1e-4, the estimator's default)")
    args = ap.parse_args()
    if args.compare_accelerate:
        compare_accelerate(args.rows, args.tol)
        return
    data = simulate(args.rows)
    tmp = Path(tempfile.mkdtemp())
    try:
        for k, rows in enumerate(np.array_split(np.arange(args.rows), 8)):
            pq.write_table(pa.table({c: v[rows] for c, v in data.items()}),
                           tmp / f"part-{k}.parquet")
        src = ParquetSource(tmp, target="y", features=["x"], concomitant=["z1", "z2"])
        fits, per_passes = {}, []
        for accelerate in ("squarem", None):  # the default (chosen), then plain GEM
            t0 = time.perf_counter()
            model = MixtureOfLinearRegressions(3, random_state=0, tol=args.lake_tol,
                                               max_iter=5000, accelerate=accelerate).fit(src)
            wall = time.perf_counter() - t0
            fits[accelerate] = model
            per_pass = wall / model.n_passes_
            per_passes.append(per_pass)
            print(f"streammix accelerate={accelerate!s:8} {args.rows} rows, tol "
                  f"{args.lake_tol:g}: {model.n_passes_} passes, {wall:.1f} s, "
                  f"{per_pass * 1e3:.1f} ms/pass, converged {model.converged_}, "
                  f"loglik {model.loglik_:.3f}")
        a, b = fits["squarem"], fits[None]
        print(f"SQUAREM / plain GEM: passes {a.n_passes_ / b.n_passes_:.2f}, loglik "
              f"difference {a.loglik_ - b.loglik_:.3g}, max |gate difference| "
              f"{np.max(np.abs(a.concomitant_coef_ - b.concomitant_coef_)):.1e}")
        per_pass = float(np.mean(per_passes))  # streammix's time per pass, both fits
        if args.no_r:
            return
        csv = tmp / "sub.csv"
        sub = {c: v[:args.sub] for c, v in data.items()}
        np.savetxt(csv, np.column_stack(list(sub.values())), delimiter=",",
                   header=",".join(sub), comments="", fmt="%.17g")
        (tmp / "r.R").write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(tmp / "r.R"), str(csv), str(args.r_iters)],
                             capture_output=True, text=True, check=True).stdout.split()
        r_time, r_iter = float(out[0]), int(out[1])
        r_per = r_time / max(r_iter, 1)
        scaled = r_per * args.rows / args.sub
        print(f"flexmix, {args.sub} rows: {r_iter} iterations, {r_time:.1f} s, "
              f"{r_per * 1e3:.1f} ms/iteration ({scaled:.1f} s scaled to {args.rows} rows)")
        print(f"per iteration at equal rows: streammix {scaled / per_pass:.0f}x faster "
              f"(streammix {per_pass * 1e3:.1f} ms/pass at {args.rows} rows)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
