"""streammix with default settings on the real-data R fixtures, against R's best optimum.

For every case ``<name>/k=<k>/<noise>`` of ``tests/fixtures/real_data`` (flexmix
``stepFlexmix(nrep = 20)`` and mixtools ``regmixEM`` with 20 seeds, polished by
plain EM), fits ``MixtureOfLinearRegressions`` with default settings and seeds
0..4 and prints: data set, n, k, noise, the best non-degenerate R log-likelihood
(maximum likelihood), streammix's worst of the five seeds, their gap, the number
of components kept, and the median wall time of one default fit.  With
``--flexmix`` the fits use ``df_correction=True`` and are compared with the
flexmix-polished optimum (flexmix's σ).

    python benchmarks/real_data_table.py                 # all cases
    python benchmarks/real_data_table.py faithful tone   # only these data sets
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

import streammix

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real_data"


def load(name: str, cases: dict) -> tuple[np.ndarray, np.ndarray]:
    """Features and target of data set ``name`` (the CSV holds the target first)."""
    with open(FIXTURES / cases[name]["csv"], newline="") as handle:
        rows = list(csv.reader(handle))
    values = np.array(rows[1:], dtype=float)
    return values[:, 1:], values[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="data sets (default: all)")
    parser.add_argument("--flexmix", action="store_true",
                        help="df_correction=True, compared with flexmix's optimum")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--options", default="{}",
                        help="JSON of further estimator options, e.g. '{\"n_init\": 3}'")
    args = parser.parse_args()
    cases = json.loads((FIXTURES / "cases.json").read_text())
    results = json.loads((FIXTURES / "r_results.json").read_text())
    field = "polished_flexmix_loglik" if args.flexmix else "polished_ml_loglik"
    print(f"{'case':28s} {'n':>4s} {'R optimum':>14s} {'streammix':>14s} {'rel gap':>9s} "
          f"{'k kept':>6s} {'ms/fit':>7s}")
    n_short = 0
    for key, entry in results.items():
        if key == "_meta" or (args.names and entry["dataset"] not in args.names):
            continue
        X, y = load(entry["dataset"], cases)
        target = entry["summary"][field]
        worst, kept, times = np.inf, entry["k"], []
        for seed in range(args.seeds):
            model = streammix.MixtureOfLinearRegressions(
                entry["k"], noise=entry["noise"], random_state=seed,
                df_correction=args.flexmix, **json.loads(args.options))
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, y)
            times.append(time.perf_counter() - start)
            worst = min(worst, model.loglik_)
            kept = min(kept, model.n_components_)
        gap = (target - worst) / abs(target)
        flag = "" if gap <= 1e-6 and kept == entry["k"] else "  <-- short"
        n_short += bool(flag)
        print(f"{key:28s} {entry['n']:4d} {target:14.6f} {worst:14.6f} {gap:9.1e} "
              f"{kept:6d} {1e3 * statistics.median(times):7.1f}{flag}")
    print(f"cases short of R's optimum: {n_short}")


if __name__ == "__main__":
    main()
