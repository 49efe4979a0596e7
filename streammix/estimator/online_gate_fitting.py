"""``partial_fit(X, y, concomitant=Z)``: the checks and attributes of online EM with a gate.

The state machine is :class:`streammix.algorithms.online_gate.OnlineGatedEM`
(the stochastic-approximation Böhning step of the mathematics page,
docs/mathematics.rst, §2.4); :mod:`streammix.estimator.online_fitting` calls
the functions here.  The first call decides: with ``concomitant`` the stream
has a gate of q variables for good, without it none; a later call that
differs (no Z, a Z where the stream has none, another q) is refused with a
:class:`~streammix.DataError` naming the shapes, and a NaN or inf in Z
names its column and row.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.concomitant import permute_gate
from streammix.algorithms.online import OnlineEM
from streammix.algorithms.online_gate import OnlineGatedEM
from streammix.core.checks import check_finite
from streammix.data.frames import frame_matrix, frame_names
from streammix.exceptions import DataError

__all__ = ["GATE_FITTED", "batch_concomitant", "gated_state", "check_stream_gate",
           "set_gate_fitted"]

#: The fitted attributes of an online gate, derived from the state when read.
GATE_FITTED = ("concomitant_coef_", "concomitant_names_")


def batch_concomitant(Z, n: int, where: str) -> tuple[np.ndarray, list[str]]:
    """The concomitant block of a batch of ``n`` rows as a float (n, q) matrix, with names
    (a table's columns, else z0, z1, ...); NaN or inf names the column and row."""
    names = frame_names(Z)
    if names is not None:
        Za = frame_matrix(Z, names, where)
    else:
        try:
            Za = np.asarray(Z, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: concomitant must be numeric: {exc}") from None
        if Za.ndim == 1:
            Za = Za[:, None]
        if Za.ndim != 2:
            raise DataError(f"{where}: concomitant must be 2-dimensional (n, q), got shape "
                            f"{Za.shape}")
        names = [f"z{k}" for k in range(Za.shape[1])]
    if Za.shape[1] < 1:
        raise DataError(f"{where}: concomitant has shape {Za.shape}: no variables")
    if Za.shape[0] != n:
        raise DataError(f"{where}: X has {n} rows but concomitant has {Za.shape[0]}")
    for k, name in enumerate(names):
        check_finite(Za[:, k], f"concomitant column {name!r}", where=f"{where}: ")
    return Za, names


def gated_state(model, state: OnlineEM, Z: np.ndarray, names: list[str]) -> OnlineGatedEM:
    """The gated state of a stream's first call: ``state``'s parameters and a gate Γ = 0, or,
    continuing a fit with the same concomitant variables, its ``concomitant_coef_``."""
    q = Z.shape[1]
    coef = model.__dict__.get("concomitant_coef_")
    start = None
    if coef is not None and hasattr(model, "params_") and state.params == model.params_:
        if np.shape(coef)[1] != q + 1:
            raise DataError(f"concomitant has shape {Z.shape}; the model was fitted with "
                            f"{np.shape(coef)[1] - 1} concomitant variables "
                            f"{model.concomitant_names_}")
        start = np.asarray(coef, dtype=np.float64)
    return OnlineGatedEM.from_online(state, q + 1, start, names)


def check_stream_gate(state: OnlineEM, Z, where: str) -> None:
    """Refuse a batch whose concomitant variables differ from the stream's first call."""
    gated = isinstance(state, OnlineGatedEM)
    if gated and Z is None:
        raise DataError(f"{where}: the stream started with {state.n_concomitant} concomitant "
                        f"variables {state.names}: pass concomitant=Z of shape "
                        f"(n, {state.n_concomitant})")
    if not gated and Z is not None:
        raise DataError(f"{where}: concomitant given, but the stream started without "
                        "concomitant variables; start a new model (partial_fit with "
                        "concomitant=Z on its first call) to fit a gate")
    if gated and Z.shape[1] != state.n_concomitant:
        raise DataError(f"{where}: concomitant has shape {Z.shape}; the stream started with "
                        f"{state.n_concomitant} concomitant variables {state.names} (shape "
                        f"(n, {state.n_concomitant}))")


def set_gate_fitted(model, state: OnlineEM, order: np.ndarray) -> None:
    """``concomitant_coef_`` (components in the reported ``order``, the first the baseline)
    and ``concomitant_names_`` of a gated state; nothing for a plain one."""
    d = model.__dict__
    for name in (*GATE_FITTED, "concomitant_formula_"):
        d.pop(name, None)
    if isinstance(state, OnlineGatedEM):
        d["concomitant_coef_"] = permute_gate(state.estimate_gate(), order)
        d["concomitant_names_"] = list(state.names)
