"""JSON records of the core's objects: statistics and M-step options.

Used by the checkpoints of batch fits and by the saved state of online EM.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from streammix.core.mstep import MStepOptions
from streammix.core.stats import SuffStats

__all__ = ["stats_to_dict", "stats_from_dict", "options_to_dict", "options_from_dict"]


def stats_to_dict(s: SuffStats) -> dict:
    """A JSON-ready record of statistics (floats as ``repr``, so they read back exactly)."""
    return {"s0": s.s0.tolist(), "s2": s.s2.tolist(), "rx": s.rx.tolist(), "r0": s.r0.tolist(),
            "loglik": s.loglik, "class_loglik": s.class_loglik, "entropy": s.entropy,
            "sum_w": s.sum_w, "n_rows": s.n_rows, "center": s.center.tolist()}


def stats_from_dict(d: dict) -> SuffStats:
    """The statistics a :func:`stats_to_dict` record holds."""
    return SuffStats(np.array(d["s0"], float), np.array(d["s2"], float),
                     np.array(d["rx"], float), np.array(d["r0"], float), float(d["loglik"]),
                     float(d["class_loglik"]), float(d["entropy"]), float(d["sum_w"]),
                     int(d["n_rows"]), np.array(d["center"], float))


def options_to_dict(o: MStepOptions) -> dict:
    """A JSON-ready record of M-step options."""
    d = dataclasses.asdict(o)
    for k in ("fixed_sigma2", "prior_mean"):
        if d[k] is not None:
            d[k] = np.asarray(d[k], float).tolist()
    return d


def options_from_dict(d: dict) -> MStepOptions:
    """The M-step options an :func:`options_to_dict` record holds."""
    d = dict(d)
    for k in ("fixed_sigma2", "prior_mean"):
        if d.get(k) is not None:
            d[k] = np.asarray(d[k], float)
    return MStepOptions(**d)
