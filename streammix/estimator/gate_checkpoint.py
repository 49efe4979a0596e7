"""The gate's part of a checkpoint's pass record (fits with concomitant variables).

A pass of a fit with concomitant variables is made at the regression
parameters *and* the gate Γ (m, q + 1), and returns the regression
statistics and the gate's statistics (gradient, Böhning matrix Σ w z̃ z̃ᵀ,
Σ w π(z)).  The pass record of :mod:`streammix.estimator.checkpoint` then
also holds, per parameter set, the field ``gate``: ``{"coef", "grad", "zz",
"prior_sum"}``, checked on load (shapes of the fit's m and q, finite
numbers); a resumed fit must ask for the saved Γ as for the saved
parameters.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.concomitant import ConcomitantStats
from streammix.core.gating import GatingStats
from streammix.core.records import as_list, check_keys, float_array, sub

__all__ = ["gate_record", "gates_from_record", "gate_gap"]

_KEYS = ("coef", "grad", "zz", "prior_sum")


def gate_record(coef: np.ndarray, stats: ConcomitantStats) -> dict:
    """The JSON record of the gate of one parameter set of a pass."""
    gate = stats.gate
    return {"coef": np.asarray(coef).tolist(), "grad": gate.grad.tolist(),
            "zz": gate.zz.tolist(), "prior_sum": gate.prior_sum.tolist()}


def gates_from_record(value, stats, params, n_gate: int) -> tuple[list, list[np.ndarray]]:
    """The :class:`ConcomitantStats` and the gates Γ of a pass record's field ``gate``.

    ``stats`` are the regression statistics of each parameter set (already
    checked), ``n_gate`` is q + 1 of the fit being resumed: a record of
    another number of concomitant variables is refused with a
    :class:`~streammix.RecordError` naming the field.
    """
    records = as_list(value, "gate", len(params))
    out, coefs = [], []
    for i, (record, st, prm) in enumerate(zip(records, stats, params, strict=True)):
        where = sub("gate", i)
        check_keys(record, where, _KEYS, _KEYS)
        m = prm.n_components
        coef = float_array(record["coef"], sub(where, "coef"), (m, n_gate))
        grad = float_array(record["grad"], sub(where, "grad"), (m, n_gate))
        zz = float_array(record["zz"], sub(where, "zz"), (n_gate, n_gate))
        prior = float_array(record["prior_sum"], sub(where, "prior_sum"), (m,),
                            non_negative=True)
        out.append(ConcomitantStats(st, GatingStats(grad, zz, prior)))
        coefs.append(coef)
    return out, coefs


def gate_gap(saved: list[np.ndarray], asked: list[np.ndarray]) -> float:
    """How far the gates ``asked`` for are from the ``saved`` ones (as
    :func:`streammix.estimator.checkpoint.replay_gap`: 0.0 when equal bit for
    bit, ``inf`` when their number or shapes differ, else the largest
    difference relative to the saved gate's largest magnitude)."""
    if saved is None or len(saved) != len(asked):
        return float("inf")
    gap = 0.0
    for a, b in zip(saved, asked, strict=True):
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return float("inf")
        if np.array_equal(a, b):
            continue
        if not np.all(np.isfinite(b)):
            return float("inf")
        scale = max(float(np.max(np.abs(a), initial=0.0)), np.finfo(float).tiny)
        gap = max(gap, float(np.max(np.abs(a - b), initial=0.0)) / scale)
    return gap
