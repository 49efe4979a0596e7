"""Run a benchmark for two checkouts of streammix in turn, and print them side by side.

A benchmark script that takes ``--library DIR`` (import streammix from that
checkout), ``--repeat 1`` and ``--json PATH`` (write its stage times) is run
``pairs`` times for each checkout, alternating old, new, old, new ... so
that the load of a shared machine falls on both alike; both runs use the
script of the current checkout, so they time the same stages.  Printed:
each stage's median seconds for both, the median of the per-pair ratios
new / old, and each side's median ratio to the fastest pyarrow scan of its
own run (``x best``).

    python benchmarks/bench_lake.py --baseline /path/to/old/checkout --repeat 5
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile


def library_root(argv: list[str], default: str) -> str:
    """The checkout named by ``--library DIR`` in ``argv`` (else ``default``), made absolute."""
    for i, arg in enumerate(argv):
        if arg == "--library" and i + 1 < len(argv):
            return os.path.abspath(argv[i + 1])
        if arg.startswith("--library="):
            return os.path.abspath(arg.split("=", 1)[1])
    return default


def _best(times: dict, prefix: str = "pyarrow") -> list[float]:
    scans = [ts for name, ts in times.items() if name.startswith(prefix)]
    return [min(r) for r in zip(*scans, strict=True)] if scans else []


def run_alternating(script: str, baseline: str, current: str, argv: list[str],
                    pairs: int) -> None:
    """Run ``script argv --repeat 1`` for ``baseline`` and ``current`` in turn, ``pairs``
    times each, and print the side-by-side medians."""
    runs: dict = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="streammix-alternate-") as tmp:
        for i in range(pairs):
            for label, lib in (("old", baseline), ("new", current)):
                out = os.path.join(tmp, f"{label}-{i}.json")
                cmd = [sys.executable, script, *argv, "--repeat", "1", "--library", lib,
                       "--json", out]
                load = os.getloadavg()[0]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                with open(out) as fh:
                    runs[label].append(json.load(fh)["times"])
                print(f"pair {i + 1}/{pairs} {label}: done (load average {load:.1f} at its start)",
                      flush=True)
    names = [n for n in runs["new"][0] if all(n in r for r in runs["old"] + runs["new"])]
    width = max(len(n) for n in names)
    print(f"\n{pairs} alternating runs per checkout; old = {baseline}, new = {current}")
    print(f"{'':{width}}  {'old s':>7}  {'new s':>7}  {'new/old':>7}  {'old x best':>10}  "
          f"{'new x best':>10}")
    for name in names:
        old = [r[name][0] for r in runs["old"]]
        new = [r[name][0] for r in runs["new"]]
        ratio = statistics.median(b / a for a, b in zip(old, new, strict=True))
        best = {label: statistics.median(r[name][0] / _best(r)[0] for r in runs[label])
                for label in runs}
        print(f"{name:{width}}  {statistics.median(old):7.3f}  {statistics.median(new):7.3f}  "
              f"{ratio:7.2f}  {best['old']:10.2f}  {best['new']:10.2f}")
    print("new/old: median of the per-pair ratios; x best: median over a side's runs of the "
          "stage / the fastest pyarrow scan of the same run")
