"""Online EM with concomitant variables: a stochastic-approximation Böhning step for the gate.

See the mathematics page (docs/mathematics.rst), §2.4.

:class:`OnlineGatedEM` is :class:`~streammix.algorithms.online.OnlineEM`
whose weights are π(z) = softmax(Γ z̃) (:mod:`streammix.core.gating`).  The
regression part is the stepwise EM of the base class, its E-step taken at
the gated priors.  The gate keeps two running per-observation statistics,
mixed with the same steps η_k as the regression statistics:

* S_k = (1 − η_k) S_{k−1} + η_k Ŝ_k, with Ŝ_k the batch mean of z̃ z̃ᵀ;
* G_k = (1 − η_k) G_{k−1} + η_k Ĝ_k, with Ĝ_k the batch mean of
  z̃ (τ − π(z))ᵀ at the current Γ_{k−1}.

After each batch past the burn-in the gate takes the Böhning step
Γ_k = Γ_{k−1} + B_k⁻¹ G_k, B_k = ½(I − 11ᵀ/m) ⊗ S_k
(:func:`streammix.core.gating.bohning_step`, the batch code's), which
maximises the quadratic minorant of the running gate objective built at
Γ_{k−1}.  The running gradient is then carried to Γ_k, as the regression
statistics are re-centred at new coefficients: G_k ← G_k − H_k ΔΓ, with H_k
the running mean (same steps) of the gate's curvature
Σ (diag π − ππᵀ) ⊗ z̃ z̃ᵀ at the Γ of each batch.  G therefore stays the
gradient of the running gate objective at the *current* Γ (to first order),
and the step, not monotone per batch, converges as a stochastic
approximation (Σ η = ∞, Σ η² < ∞).  Resetting G to zero instead (carrying
it by the minorant's own curvature B) is a plain preconditioned
Robbins–Monro step, which on one pass over 10⁶ rows left the gate slopes
about 0.2 (tens of SEs) short of the batch fit.  During the burn-in (no
M-step, Γ fixed) G is an exact running mean.

With ``average`` the Polyak–Ruppert mean of Γ is kept over the same M-steps
as that of the regression parameters.  Γ's first row stays zero (component 1
of the state the baseline).  Batches reach :meth:`OnlineGatedEM.update_gated`
as features and concomitant columns side by side, so that the base class's
replay logic cuts both alike.
"""

from __future__ import annotations

import numpy as np

from streammix.algorithms.online import OnlineEM
from streammix.core.gating import (
    GatingStats,
    bohning_step,
    gating_estep,
    log_gate,
    with_intercept,
)
from streammix.core.records import check_keys, float_array, string_list, sub
from streammix.core.stats import SuffStats, design_matrix
from streammix.exceptions import RecordError

__all__ = ["OnlineGatedEM", "GATE_KEY", "state_from_dict", "gate_hessian", "carried"]

#: The key of the gate's part in a saved state (``OnlineGatedEM.to_dict``).
GATE_KEY = "gate"
_GATE_FIELDS = ("coef", "zz", "grad", "hess", "avg_coef", "names")


class OnlineGatedEM(OnlineEM):
    """The state of online EM on one stream with concomitant variables (see the module).

    Parameters
    ----------
    params, options, settings, fit_intercept, rng
        As for :class:`~streammix.algorithms.online.OnlineEM`.
    n_gate : int
        q + 1: the number of concomitant variables plus the intercept.
    coef : ndarray of shape (m, q + 1), optional
        The starting gate Γ (default zeros: equal weights); its first row is set to 0.
    names : list of str, optional
        The names of the q concomitant variables (default z0, z1, ...).

    Attributes
    ----------
    coef : ndarray of shape (m, q + 1)
        The current gate Γ_k (state order of the components).
    zz : ndarray of shape (q + 1, q + 1) or None
        The running mean of z̃ z̃ᵀ; None before the first batch.
    grad : ndarray of shape (m, q + 1)
        The running gate gradient at the current Γ (see the module).
    hess : ndarray of shape ((m − 1)(q + 1), (m − 1)(q + 1))
        The running mean of the gate's curvature (:func:`gate_hessian`).
    """

    def __init__(self, params, options, settings, fit_intercept, rng=None, *, n_gate: int = 1,
                 coef=None, names=None):
        super().__init__(params, options, settings, fit_intercept, rng)
        m = params.n_components
        self.n_gate = int(n_gate)
        self.coef = (np.zeros((m, self.n_gate)) if coef is None
                     else np.array(coef, dtype=np.float64))
        self.coef[0] = 0.0
        self.names = ([f"z{k}" for k in range(self.n_gate - 1)] if names is None
                      else [str(c) for c in names])
        self.zz: np.ndarray | None = None
        self.grad = np.zeros((m, self.n_gate))
        k = (m - 1) * self.n_gate
        self.hess = np.zeros((k, k))
        self.avg_coef: np.ndarray | None = None
        self._batch_gate: GatingStats | None = None
        self._pending_coef: np.ndarray | None = None

    @classmethod
    def from_online(cls, state: OnlineEM, n_gate: int, coef=None, names=None) -> OnlineGatedEM:
        """A fresh gated state with the parameters, options and generator of ``state``."""
        return cls(state.params, state.options, state.settings, state.fit_intercept, state.rng,
                   n_gate=n_gate, coef=coef, names=names)

    @property
    def n_concomitant(self) -> int:
        """q, the number of concomitant variables."""
        return self.n_gate - 1

    # ---------------------------------------------------------------- update
    def update_gated(self, X, y, w, Z, *, key: str | None = None, first_row: int = 0,
                     check=None) -> dict | None:
        """Consume one batch with concomitant variables ``Z`` (n, q); as
        :meth:`~streammix.algorithms.online.OnlineEM.update` otherwise."""
        X = np.asarray(X, dtype=np.float64)
        Z = np.asarray(Z, dtype=np.float64)
        both = np.concatenate([X, Z], axis=1)
        return self.update(both, y, w, key=key, first_row=first_row, check=check)

    def _estep(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> SuffStats:
        q = self.n_concomitant
        Xd = design_matrix(X[:, :-q], self.fit_intercept)
        Z1 = with_intercept(X[:, -q:])
        stats, gate = gating_estep(Xd, y, w, Z1, self.params, self.coef)
        self._batch_gate = gate, gate_hessian(Z1, w, self.coef)
        return stats

    def _consume(self, batch: SuffStats, n: int, check) -> tuple[float, bool]:
        (gate, hess), self._batch_gate = self._batch_gate, None
        batch_w = batch.sum_w
        eta = self.step_size(self.n_batches + 1, batch_w)
        zz, grad, hess = gate.zz / batch_w, gate.grad / batch_w, hess / batch_w
        if self.zz is not None and eta < 1.0:
            zz = (1.0 - eta) * self.zz + eta * zz
            grad = (1.0 - eta) * self.grad + eta * grad
            hess = (1.0 - eta) * self.hess + eta * hess
        m_step = self.n_rows + n >= self.burn_in
        coef = self.coef
        if m_step and np.all(np.isfinite(grad)):
            coef = bohning_step(coef, GatingStats(grad, zz, gate.prior_sum / batch_w))
            grad = carried(grad, hess, coef - self.coef)
        self._pending_coef = coef
        try:
            out = super()._consume(batch, n, check)  # may raise: nothing committed then
        finally:
            self._pending_coef = None
        self.coef, self.zz, self.grad, self.hess = coef, zz, grad, hess
        return out

    def _accumulate_average(self) -> None:
        before = self.n_averaged
        super()._accumulate_average()
        if self.n_averaged > before:
            coef = self._pending_coef if self._pending_coef is not None else self.coef
            self.avg_coef = coef.copy() if self.avg_coef is None else self.avg_coef + coef

    # --------------------------------------------------------------- results
    def estimate_gate(self) -> np.ndarray:
        """The reported gate: the Polyak–Ruppert mean once averaging has started, else Γ_k."""
        if self.n_averaged == 0 or self.avg_coef is None:
            return self.coef.copy()
        return self.avg_coef / float(self.n_averaged)

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """The base record plus the gate's part under :data:`GATE_KEY`."""
        d = super().to_dict()
        d[GATE_KEY] = {"coef": self.coef.tolist(),
                       "zz": None if self.zz is None else self.zz.tolist(),
                       "grad": self.grad.tolist(), "hess": self.hess.tolist(),
                       "avg_coef": None if self.avg_coef is None else self.avg_coef.tolist(),
                       "names": list(self.names)}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> OnlineGatedEM:
        """Inverse of :meth:`to_dict`, every field checked (RecordError names the first bad one)."""
        if not isinstance(d, dict) or GATE_KEY not in d:
            raise RecordError(f"field {GATE_KEY!r}: missing (not a state with concomitant "
                              "variables)", field=GATE_KEY)
        rest = {k: v for k, v in d.items() if k != GATE_KEY}
        plain = OnlineEM.from_dict(rest)
        g = d[GATE_KEY]
        check_keys(g, GATE_KEY, _GATE_FIELDS, _GATE_FIELDS)
        m = plain.params.n_components
        coef = float_array(g["coef"], sub(GATE_KEY, "coef"), (m, None))
        if coef.shape[1] < 2:
            raise RecordError(f"field {sub(GATE_KEY, 'coef')!r}: expected shape ({m}, q + 1) "
                              f"with q >= 1, got {coef.shape}", field=sub(GATE_KEY, "coef"))
        k = coef.shape[1]
        names = string_list(g["names"], sub(GATE_KEY, "names"))
        if len(names) != k - 1:
            raise RecordError(f"field {sub(GATE_KEY, 'names')!r}: {len(names)} names for "
                              f"{k - 1} concomitant variables", field=sub(GATE_KEY, "names"))
        state = cls.from_online(plain, k, coef, names)
        for name in ("n_batches", "n_rows", "sum_w", "n_msteps", "n_averaged", "avg_sum",
                     "totals", "ledger"):
            setattr(state, name, getattr(plain, name))
        state.stats = plain.stats
        state.history.extend(plain.history)
        state.grad = float_array(g["grad"], sub(GATE_KEY, "grad"), (m, k))
        kf = (m - 1) * k
        state.hess = float_array(g["hess"], sub(GATE_KEY, "hess"), (kf, kf))
        state.zz = (None if g["zz"] is None else
                    float_array(g["zz"], sub(GATE_KEY, "zz"), (k, k)))
        state.avg_coef = (None if g["avg_coef"] is None else
                          float_array(g["avg_coef"], sub(GATE_KEY, "avg_coef"), (m, k)))
        return state


def gate_hessian(Z1: np.ndarray, w: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Σ w (diag π − π πᵀ) ⊗ z̃ z̃ᵀ over the free rows j = 2..m: minus the Hessian of the gate
    objective at ``coef``, a ((m − 1)(q + 1))² matrix (rows j-major, as ``grad[1:].ravel()``)."""
    P = np.exp(log_gate(Z1, coef))[:, 1:]
    WP = P * np.asarray(w, dtype=np.float64)[:, None]
    n, m1, k = P.shape[0], P.shape[1], Z1.shape[1]
    ZZ = (Z1[:, :, None] * Z1[:, None, :]).reshape(n, k * k)
    C = -(WP[:, :, None] * P[:, None, :])  # −w π_j π_l, then + w π_j on the diagonal
    C[:, np.arange(m1), np.arange(m1)] += WP
    H = (C.reshape(n, m1 * m1).T @ ZZ).reshape(m1, m1, k, k)
    return H.transpose(0, 2, 1, 3).reshape(m1 * k, m1 * k)


def carried(grad: np.ndarray, hess: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The running gate gradient carried from Γ to Γ + Δ to first order: G − H Δ on the
    free rows (row 0 minus their sum, as the batch statistic's)."""
    out = np.empty_like(grad)
    out[1:] = grad[1:] - (hess @ delta[1:].ravel()).reshape(grad[1:].shape)
    out[0] = -out[1:].sum(axis=0)
    return out


def state_from_dict(d: dict) -> OnlineEM:
    """The online state a record describes: gated when it has a :data:`GATE_KEY` part."""
    if isinstance(d, dict) and GATE_KEY in d:
        return OnlineGatedEM.from_dict(d)
    return OnlineEM.from_dict(d)
