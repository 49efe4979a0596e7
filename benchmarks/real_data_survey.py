"""Survey of the real-data conformance promise over many seeds: every case, every seed.

``tests/promises/test_real_data_conformance.py`` checks a default fit of every case
of the real-data fixtures (``tests/fixtures/real_data``) on a few seeds; this script
runs the same checks -- the test module's own helpers: k components kept,
non-degenerate by the choice rule, log-likelihood at R's best non-degenerate
optimum to 1e-6 relative and not above it (or above the documented better
optimum) -- on seeds 0..14 (``--seeds``) of every case of the suite, maximum
likelihood and, with ``--flexmix`` (the default: both), ``df_correction=True``
against flexmix's optimum.  It prints per case and seed the final log-likelihood,
its gap to R's and PASS/FAIL with the reason, then every failure and the median
wall time of one fit.  It takes minutes; run it in the background::

    nice python benchmarks/real_data_survey.py --json survey.json
    nice python benchmarks/real_data_survey.py --compare survey.json   # new failures, fixes
    python benchmarks/real_data_survey.py airquality prestige --seeds 5-14

``--compare FILE`` (a previous ``--json``) lists the case/seeds whose verdict
changed and the median fit times of both, so that a change to the start search
can be judged over every seed.  ``--baseline DIR`` (a checkout of another
version, its kernel built in place) runs every fit also with that version, in
two worker processes asked in turn (which one goes first alternates), and
prints both verdicts, both times and the median ratio::

    nice python benchmarks/real_data_survey.py --baseline /tmp/old-main --seeds 0-2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import streammix

TESTS = Path(__file__).resolve().parent.parent / "tests"
logger = logging.getLogger("real_data_survey")


def _conformance():
    """The conformance test module (its cases, fixtures and checks)."""
    sys.path.insert(0, str(TESTS))
    path = TESTS / "promises" / "test_real_data_conformance.py"
    spec = importlib.util.spec_from_file_location("real_data_conformance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seeds(text: str) -> list[int]:
    """``"0-14"`` or ``"3,8,10"`` as a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def check(conf, key: str, seed: int, flexmix: bool) -> dict:
    """A default fit of ``key`` with ``seed``, and the verdict of the promise's checks."""
    entry = conf.RESULTS[key]
    summary = entry["summary"]
    target = summary["polished_flexmix_loglik" if flexmix else "polished_ml_loglik"]
    upper = conf._upper_bound(key, target, flexmix)
    X, y = conf._data(entry["dataset"])
    model = streammix.MixtureOfLinearRegressions(entry["k"], noise=entry["noise"],
                                                 random_state=seed, df_correction=flexmix)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    seconds = time.perf_counter() - start
    rtol = conf.RTOL
    why = ""
    if model.n_components_ != entry["k"]:
        why = f"kept {model.n_components_} components"
    elif conf._degenerate(entry, model.weights_, np.column_stack([model.intercept_, model.coef_]),
                          model.sigma_, choice=True):
        why = "degenerate by the choice rule"
    elif model.loglik_ < target - rtol * abs(target):
        why = "below R"
    elif model.loglik_ > upper + rtol * abs(upper):
        why = "above R's best non-degenerate"
    return {"key": key, "seed": seed, "flexmix": flexmix, "loglik": float(model.loglik_),
            "target": float(target), "upper": float(upper), "seconds": seconds,
            "ok": not why, "why": why}


def _label(row: dict) -> str:
    return f"{row['key']} seed {row['seed']} {'flexmix' if row['flexmix'] else 'ml'}"


def _compare(rows: list[dict], path: Path) -> None:
    old = {(r["key"], r["seed"], r["flexmix"]): r for r in json.loads(path.read_text())}
    changed = 0
    for row in rows:
        before = old.get((row["key"], row["seed"], row["flexmix"]))
        if before is None or before["ok"] == row["ok"]:
            continue
        changed += 1
        verdict = "FIXED" if row["ok"] else "NEW FAILURE"
        print(f"{verdict:11s} {_label(row)}: {before['loglik']:.6f} -> {row['loglik']:.6f} "
              f"(R {row['target']:.6f}) {row['why']}")
    both = [(old[(r["key"], r["seed"], r["flexmix"])]["seconds"], r["seconds"]) for r in rows
            if (r["key"], r["seed"], r["flexmix"]) in old]
    if both:
        before, after = (statistics.median(t) for t in zip(*both, strict=True))
        total_before, total_after = (sum(t) for t in zip(*both, strict=True))
        print(f"verdicts changed: {changed}; median fit {1e3 * before:.1f} ms -> "
              f"{1e3 * after:.1f} ms, total {total_before:.1f} s -> {total_after:.1f} s "
              "(separate runs: see the load)")


def _worker() -> None:
    """Answer ``[key, seed, flexmix]`` lines on stdin with a row of :func:`check`."""
    conf = _conformance()
    for line in sys.stdin:
        key, seed, flexmix = json.loads(line)
        sys.stdout.write(json.dumps(check(conf, key, seed, flexmix)) + "\n")
        sys.stdout.flush()


class _Worker:
    """A worker process importing streammix from ``root``."""

    def __init__(self, root: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(root))
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=root)

    def ask(self, key: str, seed: int, flexmix: bool) -> dict:
        self.proc.stdin.write(json.dumps([key, seed, flexmix]) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def _paired(conf, keys, seeds, models, baseline: Path) -> list[dict]:
    """Every fit with the baseline and with this checkout, in turn; the rows of this one."""
    old, new = _Worker(baseline), _Worker(Path(__file__).resolve().parent.parent)
    rows, ratios, turn = [], [], 0
    try:
        for wk in (old, new):  # warm up: the first fit of a process pays its imports
            wk.ask(keys[0], 0, False)
        for key in keys:
            for seed in seeds:
                for flexmix in models:
                    pair = [old, new] if turn % 2 == 0 else [new, old]
                    turn += 1
                    answers = {id(wk): wk.ask(key, seed, flexmix) for wk in pair}
                    before, row = answers[id(old)], answers[id(new)]
                    rows.append(row)
                    ratios.append(row["seconds"] / before["seconds"])
                    logger.info("%-32s %2d %-7s old %14.6f %-4s %7.1f ms | new %14.6f %-4s "
                                "%7.1f ms", key, seed, "flexmix" if flexmix else "ml",
                                before["loglik"], "PASS" if before["ok"] else "FAIL",
                                1e3 * before["seconds"], row["loglik"],
                                "PASS" if row["ok"] else "FAIL", 1e3 * row["seconds"])
    finally:
        old.close()
        new.close()
    logger.info("new / old time per fit: median %.3f (quartiles %.3f, %.3f) over %d fits",
                statistics.median(ratios), *statistics.quantiles(ratios, n=4)[::2],
                len(ratios))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="data sets (default: the suite's)")
    parser.add_argument("--seeds", default="0-14", help="e.g. 0-14 or 3,8,10")
    parser.add_argument("--model", choices=["both", "ml", "flexmix"], default="both")
    parser.add_argument("--json", type=Path, help="write every row here")
    parser.add_argument("--compare", type=Path, help="a previous --json: what changed")
    parser.add_argument("--baseline", type=Path,
                        help="a checkout of another version: time it too, in turn")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker()
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    conf = _conformance()
    keys = [k for k in conf.KEYS if not args.names or conf.RESULTS[k]["dataset"] in args.names]
    models = {"both": [False, True], "ml": [False], "flexmix": [True]}[args.model]
    rows = [] if args.baseline is None else _paired(conf, keys, _seeds(args.seeds), models,
                                                    args.baseline.resolve())
    for key in keys if args.baseline is None else []:
        for seed in _seeds(args.seeds):
            for flexmix in models:
                row = check(conf, key, seed, flexmix)
                rows.append(row)
                gap = (row["target"] - row["loglik"]) / abs(row["target"])
                logger.info("%-32s %2d %-7s %14.6f %14.6f %9.1e %6.1f ms  %s", key, seed,
                            "flexmix" if flexmix else "ml", row["target"], row["loglik"], gap,
                            1e3 * row["seconds"], "PASS" if row["ok"] else "FAIL " + row["why"])
    failed = [row for row in rows if not row["ok"]]
    logger.info("failures: %d of %d fits", len(failed), len(rows))
    for row in failed:
        logger.info("  %s: %.6f vs R %.6f (%s)", _label(row), row["loglik"], row["target"],
                    row["why"])
    logger.info("median fit %.1f ms, total %.1f s", 1e3 * statistics.median(
        r["seconds"] for r in rows), sum(r["seconds"] for r in rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=0))
    if args.compare:
        _compare(rows, args.compare)


if __name__ == "__main__":
    main()
