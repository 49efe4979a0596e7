"""Online EM for streams: the state and its update rule (MATH.md §2).

Mini-batch stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009).  The
state holds *per-observation* sufficient statistics s (a :class:`SuffStats`
whose ``sum_w`` is 1) in the residual form.  For batch k, at the current
parameters θ_{k-1}:

* ŝ_k = E-step statistics of the batch divided by the batch weight;
* s is centred at θ_{k-1} too (re-centring is exact, MATH.md §1.2), so
  that s_k = s + η_k (ŝ_k − s);
* θ_k = M-step(N_eff · s_k); the plain ML M-step also re-centres s_k to
  θ_k with the products it has formed anyway (otherwise
  :meth:`SuffStats.recentre` does it at the next batch).

Step sizes
    Default ``η_k = (k + k0)^(−α)`` with ``α = step_alpha = 0.6`` and
    ``k0 = step_offset = 2``: the stepwise-EM rule of Liang & Klein (2009),
    whose step satisfies Σ η = ∞, Σ η² < ∞ for α ∈ (½, 1] (the conditions of
    Cappé & Moulines), and α = 0.6 is inside the range Cappé & Moulines
    recommend for use with averaging; k0 = 2 damps the first steps.  The
    very first batch uses η = 1 (s starts at ŝ_1).  During the *burn-in*, until
    ``max(20, 10 m (p + 1))`` rows were seen, η_k = 1/k (an exact running mean
    at fixed θ, as Cappé's ``INHIBIT_LAG``) and no M-step is made.

    This default mode *averages* the whole stream with polynomially decaying
    weights: it converges on a stationary stream and, after a change, adapts
    ever more slowly (the memory grows like k^α batches).

Forgetting mode
    ``forget=W`` sets a constant step η = min(1, b_k / W) for a batch of
    weight b_k (never below 1/k, so the first batches are averaged exactly):
    an exponential window of about W rows (frequency weights), whatever the
    batch size.  Use it for drifting streams.

Priors and counts
    Statistics are means per unit weight; the M-step is given them scaled
    back to the effective sample size N_eff (the total weight seen, or
    min(total, W) when forgetting).  Priors (ridge, inverse-gamma,
    Dirichlet) therefore count as they would in a batch fit on N_eff rows:
    this is the same as dividing every prior constant by N_eff (MATH.md §2.2).

Averaging
    ``average=True`` (or an integer) keeps the Polyak–Ruppert mean of the
    parameters θ_k over M-steps from the ``average``-th on (True means
    from the 10th); it is reported as the estimate but never fed back into
    the recursion.  Components keep their indices inside the state (they are
    only sorted on output), so averaging does not mix labels.  Why the 10th
    and not MATH.md's max(k_b, 100): on one pass over 1M rows in 100 batches
    (tests/test_online.py) the un-averaged iterate was up to 2.8 batch-EM
    standard errors from the batch MLE, the average from the 10th M-step
    within 1.3; starting at 100 would average nothing on such a stream, and
    the first few M-steps of a well-started run are already near the optimum.

Memory is O(m p²) whatever the stream length: the history of per-batch
records is bounded (``history_size`` most recent, plus running totals), and
the ledger of consumed batches holds one entry per *stream key* (one per
file for a folder, one for an iterator or an Arrow stream), with the offset
of the next unread row.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from streammix.algorithms.em import EMSettings
from streammix.algorithms.start.candidates import initial_params, variance_floor
from streammix.core import stats as _stats
from streammix.core.checks import DataError
from streammix.core.mstep import RCOND_LIMIT, MStepOptions, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, design_matrix, estep_features, features_transposed

__all__ = ["OnlineSettings", "OnlineEM", "burn_in_rows", "STATE_FORMAT"]

logger = logging.getLogger(__name__)

STATE_FORMAT = "streammix-online-state"
STATE_VERSION = 1

#: Averaging with ``average=True`` starts at this M-step.
DEFAULT_AVERAGE_START = 10


def burn_in_rows(n_components: int, n_coef: int) -> int:
    """Rows to see before the first M-step: max(20, 10 m (p + 1)) (MATH.md §2.2)."""
    return max(20, 10 * n_components * (n_coef + 1))


@dataclass(frozen=True)
class OnlineSettings:
    """Hyper-parameters of online EM (see the module notes).

    Parameters
    ----------
    step_alpha : float, default=0.6
        Exponent α ∈ (0.5, 1] of the step (k + k0)^(−α).
    step_offset : float, default=2.0
        Offset k0 ≥ 0 of the step.
    forget : float, optional
        Window W (in units of weight, i.e. rows) of the constant-step
        forgetting mode; None for the default decreasing step.
    average : bool or int, default=False
        Polyak–Ruppert averaging of the reported parameters: False, True
        (from the 10th M-step) or the M-step number to start at.
    burn_in : int, optional
        Rows before the first M-step; default ``burn_in_rows(m, p)``.
    history_size : int, default=1000
        Number of per-batch records kept.
    """

    step_alpha: float = 0.6
    step_offset: float = 2.0
    forget: float | None = None
    average: bool | int = False
    burn_in: int | None = None
    history_size: int = 1000

    def __post_init__(self) -> None:
        if not (0.5 < self.step_alpha <= 1.0):
            raise ValueError(f"step_alpha must be in (0.5, 1], got {self.step_alpha!r}")
        if not (self.step_offset >= 0):
            raise ValueError(f"step_offset must be >= 0, got {self.step_offset!r}")
        if self.forget is not None and not (self.forget >= 1):
            raise ValueError(f"forget (a window in rows) must be >= 1, got {self.forget!r}")
        avg = self.average
        if not isinstance(avg, (bool, int, np.integer)) or (
                not isinstance(avg, bool) and avg < 1):
            raise ValueError(f"average must be a bool or an M-step number >= 1, got {avg!r}")
        if self.burn_in is not None and self.burn_in < 0:
            raise ValueError(f"burn_in must be >= 0, got {self.burn_in!r}")
        if int(self.history_size) < 1:
            raise ValueError(f"history_size must be >= 1, got {self.history_size!r}")

    @property
    def average_start(self) -> int | None:
        """M-step number from which parameters are averaged, or None."""
        if self.average is False:
            return None
        if self.average is True:
            return DEFAULT_AVERAGE_START
        return int(self.average)


# The running statistics of the state are kept as one flat vector
#     [s0 (m), s2 (m p p), rx (m p), r0 (m), loglik, class_loglik, entropy]
# so that mixing and scaling are one numpy operation each, not one per field
# and per SuffStats object: with 10k-row batches these fixed costs are of the
# order of the E-step itself.

def _pack(stats: SuffStats) -> np.ndarray:
    """The additive fields of ``stats`` (all but sum_w and n_rows) as one new flat vector."""
    return np.concatenate((stats.s0, stats.s2.reshape(-1), stats.rx.reshape(-1), stats.r0,
                           (stats.loglik, stats.class_loglik, stats.entropy)))


def _views(flat: np.ndarray, m: int, p: int):
    """``(s0, s2, rx, r0)`` of a flat vector (views, no copies)."""
    a = m + m * p * p
    b = a + m * p
    return flat[:m], flat[m:a].reshape(m, p, p), flat[a:b].reshape(m, p), flat[b:b + m]


def _unpack(flat: np.ndarray, m: int, p: int, sum_w: float, n_rows: int,
            center: np.ndarray | None) -> SuffStats:
    s0, s2, rx, r0 = _views(flat, m, p)
    return SuffStats(s0, s2, rx, r0, float(flat[-3]), float(flat[-2]), float(flat[-1]),
                     sum_w, n_rows, center)


def _recentred(flat: np.ndarray, center: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Flat statistics re-centred from ``center`` to ``beta``: :meth:`SuffStats.recentre`."""
    m, p = beta.shape
    _, s2, rx, r0 = _views(flat, m, p)
    delta = beta - center
    s2d = np.einsum("jkl,jl->jk", s2, delta)
    moved = flat.copy()
    _, _, rx_moved, r0_moved = _views(moved, m, p)
    np.subtract(rx, s2d, out=rx_moved)
    np.maximum(r0 - 2.0 * np.einsum("jk,jk->j", delta, rx) + np.einsum("jk,jk->j", delta, s2d),
               0.0, out=r0_moved)
    return moved


def _is_plain_ml(options: MStepOptions) -> bool:
    """Whether ``mstep`` with these options is the plain per-component ML update."""
    return (options.noise == "per_component" and options.ridge == 0
            and not options.has_variance_prior and options.dirichlet_alpha == 1.0
            and not options.df_correction)


try:
    # The gufuncs behind np.linalg.cholesky and np.linalg.solve.  Called directly they
    # give the same bits without the wrappers' per-call checks and error-state set-up
    # (8 of the 15 µs of three calls on a (3, 6, 6) stack); failures then show up as
    # NaN instead of LinAlgError.  A private module: without it, the public functions.
    from numpy.linalg import _umath_linalg

    _CHOLESKY, _SOLVE = _umath_linalg.cholesky_lo, _umath_linalg.solve
except (ImportError, AttributeError):  # pragma: no cover - depends on the numpy build
    _CHOLESKY = _SOLVE = None


def _cholesky_solve(s2: np.ndarray, rx: np.ndarray):
    """Cholesky factors L of the stack ``s2`` and ``s2⁻¹ rx`` by two solves with them.

    The arithmetic of ``mstep`` (``np.linalg.cholesky``, then ``np.linalg.solve``
    with L and Lᵀ).  Returns ``(L, delta)``; a matrix that is not positive
    definite gives a NaN factor (the caller's conditioning test rejects it),
    or None on the np.linalg fallback.
    """
    if _CHOLESKY is None:  # pragma: no cover
        try:
            L = np.linalg.cholesky(s2)
        except np.linalg.LinAlgError:
            return None
        z = np.linalg.solve(L, rx[:, :, None])
        return L, np.linalg.solve(np.swapaxes(L, 1, 2), z)[:, :, 0]
    with np.errstate(all="ignore"):
        L = _CHOLESKY(s2)  # a matrix that is not positive definite comes back as NaN
        z = _SOLVE(L, rx[:, :, None])
        delta = _SOLVE(np.swapaxes(L, 1, 2), z)[:, :, 0]
    return L, delta


def _ml_mstep_arrays(s0: np.ndarray, s2: np.ndarray, rx: np.ndarray, r0: np.ndarray,
                     sum_w: float, beta: np.ndarray, variance_floor: float):
    """The body of :func:`_fast_ml_mstep` on statistics centred at ``beta``, as arrays.

    Returns ``(params, s2d, rss)``: the new parameters, ``s2 δ`` and the
    residual sums of squares at them -- with which the statistics are
    re-centred to the new coefficients (``rx − s2 δ`` and ``rss``, MATH.md
    §1.2) at no further cost.  Returns None whenever ``mstep`` would do
    anything but the plain update: an empty or ill-conditioned component, a
    variance at the floor (or a result that is not finite).
    """
    N = sum_w
    if _stats.use_kernel:  # the same update in one compiled call (to rounding)
        m, p = beta.shape
        beta_new, sigma2, weights = np.empty((m, p)), np.empty(m), np.empty(m)
        s2d, rss = np.empty((m, p)), np.empty(m)
        def c(a):
            return np.require(a, np.float64, ["C", "A"])

        if not _stats._kernel.ml_mstep(c(s0), c(s2), c(rx), c(r0), c(beta), float(N),
                                       float(variance_floor), RCOND_LIMIT, beta_new, sigma2,
                                       weights, s2d, rss):
            return None
        return MixtureParams._unchecked(weights, beta_new, sigma2), s2d, rss
    if not N > 0 or (s0 <= 1e-12 * N).any():
        return None
    solved = _cholesky_solve(s2, rx)
    if solved is None:
        return None
    L, delta = solved
    # mstep's test (d.min() / d.max())² > RCOND_LIMIT per component, on Python floats
    # (cheaper than numpy for a handful of numbers); NaN (a failed factor) fails it.
    for d in np.diagonal(L, axis1=1, axis2=2).tolist():
        hi = max(d)
        if not (hi > 0 and (min(d) / hi) ** 2 > RCOND_LIMIT) or math.isnan(sum(d)):
            return None
    s2d = np.einsum("jkl,jl->jk", s2, delta)
    rss = np.maximum(r0 - 2.0 * np.einsum("jk,jk->j", delta, rx)
                     + np.einsum("jk,jk->j", delta, s2d), 0.0)
    sigma2 = rss / s0
    # Every σ² above the floor (NaN is not) and finite; a non-finite delta would
    # make its σ² NaN or infinite.
    if not all(variance_floor < v < math.inf for v in sigma2.tolist()):
        return None
    weights = s0 / N  # > 0, tested above: mstep's clip at zero changes nothing
    return MixtureParams._unchecked(weights / weights.sum(), beta + delta, sigma2), s2d, rss


def _fast_ml_mstep(stats: SuffStats, params: MixtureParams,
                   options: MStepOptions) -> MixtureParams | None:
    """:func:`~streammix.mstep.mstep` for the plain ML case, vectorised over components.

    With small batches the M-step is a fixed cost per batch next to the E-step,
    and the per-component Python loop of ``mstep`` dominates it.  Same
    arithmetic (Cholesky factor, the same two solves, the same variance
    update); returns None -- the caller then uses ``mstep`` -- whenever
    ``mstep`` would do anything else: priors, shared or fixed noise, the df
    correction, an empty or ill-conditioned component, a variance at the floor.
    """
    if (not _is_plain_ml(options) or stats.center is None
            or not np.array_equal(stats.center, params.beta)):
        return None
    result = _ml_mstep_arrays(stats.s0, stats.s2, stats.rx, stats.r0, stats.sum_w, params.beta,
                              options.variance_floor)
    return None if result is None else result[0]


def _stats_to_dict(s: SuffStats) -> dict:
    return {"s0": s.s0.tolist(), "s2": s.s2.tolist(), "rx": s.rx.tolist(), "r0": s.r0.tolist(),
            "loglik": s.loglik, "class_loglik": s.class_loglik, "entropy": s.entropy,
            "sum_w": s.sum_w, "n_rows": s.n_rows, "center": s.center.tolist()}


def _stats_from_dict(d: dict) -> SuffStats:
    return SuffStats(np.array(d["s0"], float), np.array(d["s2"], float),
                     np.array(d["rx"], float), np.array(d["r0"], float), float(d["loglik"]),
                     float(d["class_loglik"]), float(d["entropy"]), float(d["sum_w"]),
                     int(d["n_rows"]), np.array(d["center"], float))


def _options_to_dict(o: MStepOptions) -> dict:
    d = dataclasses.asdict(o)
    for k in ("fixed_sigma2", "prior_mean"):
        if d[k] is not None:
            d[k] = np.asarray(d[k], float).tolist()
    return d


def _options_from_dict(d: dict) -> MStepOptions:
    d = dict(d)
    for k in ("fixed_sigma2", "prior_mean"):
        if d.get(k) is not None:
            d[k] = np.asarray(d[k], float)
    return MStepOptions(**d)


class OnlineEM:
    """The state of online EM on one stream.

    Create it with :meth:`start` (from the first batch) or :meth:`from_params`
    (from known parameters), then call :meth:`update` once per batch.

    Attributes
    ----------
    params : MixtureParams
        Current parameters θ_k (design space, components in state order).
    stats : SuffStats or None
        Running per-observation statistics, centred at ``stats.center``:
        the current coefficients (or, after an M-step with priors, those
        of the last E-step).
    n_batches, n_rows, sum_w : int, int, float
        Batches, rows and weight consumed.
    n_msteps : int
        M-steps made (0 during burn-in).
    history : deque of dict
        The last ``history_size`` per-batch records (prequential
        log-likelihood at θ_{k−1}, step, weights...).
    totals : dict
        Running prequential totals over the whole stream.
    ledger : dict
        Stream key -> {"next": offset of the next unread row, "status"}.
    """

    def __init__(self, params: MixtureParams, options: MStepOptions, settings: OnlineSettings,
                 fit_intercept: bool, rng: np.random.Generator | None = None):
        self.params = params
        self.options = options
        self.settings = settings
        self.fit_intercept = bool(fit_intercept)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        # The running statistics: a flat vector (see _pack), its centre and row count.
        self._flat: np.ndarray | None = None
        self._center: np.ndarray | None = None
        self._stats_rows = 0
        self._stats: SuffStats | None = None  # built from _flat when asked for
        self._burn_in = (burn_in_rows(params.n_components, params.n_coef)
                         if settings.burn_in is None else int(settings.burn_in))
        self._ones: np.ndarray | None = None  # unit weights, reused from batch to batch
        self.n_batches = 0
        self.n_rows = 0
        self.sum_w = 0.0
        self.n_msteps = 0
        self.n_averaged = 0
        self.avg_sum: dict | None = None
        self.totals = {"loglik": 0.0, "class_loglik": 0.0, "entropy": 0.0, "sum_w": 0.0,
                       "n_rows": 0}
        self.history: deque = deque(maxlen=int(settings.history_size))
        self.ledger: dict[str, dict] = {}

    # -------------------------------------------------------------- creation
    @classmethod
    def start(cls, X, y, w, n_components: int, *, fit_intercept: bool = True,
              options: MStepOptions | None = None, settings: OnlineSettings | None = None,
              init="auto", variance_floor_factor: float = 1e-3, sample_size: int = 100_000,
              rng: np.random.Generator | None = None, where: str = "the first batch",
              ) -> OnlineEM:
        """Initialise from one batch (it is not consumed: pass it to :meth:`update`).

        Starting values come from :func:`streammix.init.initial_params` on
        the rows of the batch with positive weight (a uniform subsample of
        ``sample_size`` rows if there are more); the variance floor is
        ``variance_floor_factor`` times their pooled OLS residual variance.
        """
        options = options if options is not None else MStepOptions(intercept=fit_intercept)
        settings = settings if settings is not None else OnlineSettings()
        rng = rng if rng is not None else np.random.default_rng()
        X = np.asarray(X, float)
        y = np.asarray(y, float)
        w = np.ones_like(y) if w is None else np.asarray(w, float)
        pos = np.flatnonzero(w > 0)
        p = X.shape[1] + int(fit_intercept)
        m = n_components
        n_params = m * (p + 2) - 1
        if pos.size <= n_params:
            raise DataError(
                f"{where} has {pos.size} rows with positive weight, too few to initialise "
                f"{n_params} free parameters ({m} components, {p} coefficients each); "
                "send a larger first batch"
            )
        if pos.size > sample_size:
            pos = np.sort(rng.choice(pos, size=sample_size, replace=False))
        Xs, ys = X[pos], y[pos]
        floor = variance_floor(design_matrix(Xs, fit_intercept), ys, variance_floor_factor)
        options = dataclasses.replace(options, variance_floor=floor)
        params = initial_params(Xs, ys, m, method=init, fit_intercept=fit_intercept,
                                settings=EMSettings(mstep=options), rng=rng)
        if params.n_components != m:
            raise DataError(f"could not initialise {m} components from {where}")
        return cls(params, options, settings, fit_intercept, rng)

    @classmethod
    def from_params(cls, params: MixtureParams, options: MStepOptions,
                    settings: OnlineSettings | None = None, fit_intercept: bool = True,
                    rng: np.random.Generator | None = None) -> OnlineEM:
        """Start from known parameters (e.g. a batch fit); the burn-in still applies."""
        return cls(params, options, settings or OnlineSettings(), fit_intercept, rng)

    @property
    def n_components(self) -> int:
        return self.params.n_components

    @property
    def burn_in(self) -> int:
        """Rows to see before the first M-step (``settings.burn_in`` or :func:`burn_in_rows`)."""
        return self._burn_in

    @property
    def stats(self) -> SuffStats | None:
        """Running per-observation statistics (``sum_w`` 1), centred at
        ``stats.center`` (see the class notes); None before the first batch."""
        if self._stats is None and self._flat is not None:
            m, p = self._center.shape
            self._stats = _unpack(self._flat, m, p, 1.0, self._stats_rows, self._center)
        return self._stats

    @stats.setter
    def stats(self, value: SuffStats | None) -> None:
        self._stats = value
        if value is None:
            self._flat, self._center, self._stats_rows = None, None, 0
        else:
            self._flat = _pack(value)
            self._flat.setflags(write=False)
            self._center, self._stats_rows = value.center, int(value.n_rows)

    # ---------------------------------------------------------------- update
    def step_size(self, k: int, batch_weight: float) -> float:
        """η_k for the k-th batch (1-based) of weight ``batch_weight``."""
        if k <= 1:
            return 1.0
        if self.n_rows < self._burn_in:
            return 1.0 / k
        if self.settings.forget is not None:
            return min(1.0, max(1.0 / k, batch_weight / self.settings.forget))
        return float((k + self.settings.step_offset) ** (-self.settings.step_alpha))

    def effective_n(self) -> float:
        """Weight N_eff that the running statistics stand for."""
        if self.settings.forget is not None:
            return min(self.sum_w, float(self.settings.forget))
        return self.sum_w

    def seen(self, key: str, first_row: int) -> int:
        """Rows of a batch starting at ``first_row`` of ``key`` already consumed."""
        entry = self.ledger.get(key)
        return 0 if entry is None else max(0, int(entry["next"]) - int(first_row))

    def update(self, X, y, w=None, *, key: str | None = None, first_row: int = 0,
               check=None) -> dict | None:
        """Consume one batch: E-step at θ_{k−1}, mix, M-step.

        Parameters
        ----------
        X : ndarray of shape (n, d)
            Raw features (validated by the caller).
        y, w : ndarray of shape (n,)
            Target and non-negative weights; ``w=None`` means unit weights.
        key, first_row : str and int, optional
            Identity of the batch: rows ``first_row ..`` of stream ``key``.
            Rows of ``key`` already consumed (a batch replayed after a crash)
            are skipped, so nothing is counted twice.
        check : callable, optional
            Full validation of the batch, for a caller that did not validate
            it beforehand: called (it should raise an error that names the
            bad values) when the E-step statistics of the batch are not
            finite, and before rows of a replayed batch are skipped.  The
            state is left unchanged when it raises.

        Returns
        -------
        dict or None
            The batch record (also appended to ``history``), or None when
            the whole batch had been consumed before.
        """
        X = np.asarray(X, float)
        y = np.asarray(y, float)
        n = int(y.shape[0])
        w = self._unit_weights(n) if w is None else np.asarray(w, float)
        if key is not None:
            skip = self.seen(key, first_row)
            if skip and check is not None:
                check()  # the rows skipped are not seen by the E-step
            if skip >= n and n > 0:
                logger.info("skipping replayed rows %d-%d of %s", first_row,
                            first_row + n - 1, key)
                return None
            if skip:
                X, y, w = X[skip:], y[skip:], w[skip:]
                first_row += skip
                n = int(y.shape[0])
        number = self.n_batches + 1
        batch_w, loglik, eta, m_step = 0.0, 0.0, 0.0, False
        if n:  # (weights are not summed first: a zero-weight batch is rare and adds nothing)
            if check is None:
                batch = estep_features(features_transposed(X), y, w, self.params,
                                       self.fit_intercept)
            else:  # unvalidated: NaN or inf would warn on the way to check()'s error
                with np.errstate(all="ignore"):
                    batch = estep_features(features_transposed(X), y, w, self.params,
                                           self.fit_intercept)
            batch_w = batch.sum_w
            if batch_w > 0:
                eta, m_step = self._consume(batch, n, check)
                loglik = batch.loglik
        self.n_rows += n
        self.totals["n_rows"] += n
        if key is not None:
            entry = self.ledger.get(key)
            if entry is None:
                entry = self.ledger[key] = {"next": 0, "status": "reading"}
            entry["next"] = int(first_row) + n
        record = {"batch": number, "key": key,
                  "first_row": int(first_row), "rows": n, "sum_w": batch_w, "loglik": loglik}
        if batch_w > 0:
            record["loglik_per_w"] = loglik / batch_w
        record["eta"] = eta
        record["m_step"] = m_step
        record["weights"] = self.params.weights.tolist()
        self.history.append(record)
        return record

    def _unit_weights(self, n: int) -> np.ndarray:
        ones = self._ones
        if ones is None or ones.shape[0] != n:
            ones = np.ones(n)
            ones.setflags(write=False)
            self._ones = ones
        return ones

    def _consume(self, batch: SuffStats, n: int, check) -> tuple[float, bool]:
        """Mix the E-step statistics of a batch of ``n`` rows into the state; M-step.

        Everything is computed first and committed at the end, so that an
        error (or an interrupt) half-way leaves the state as it was.
        Returns the step η and whether an M-step was made.
        """
        batch_w = batch.sum_w
        if not math.isfinite(batch.loglik):
            if check is not None:
                check()
            raise FloatingPointError("log-likelihood of a batch is not finite; check the data "
                                     "scale or the variance floor")
        params = self.params
        k = self.n_batches + 1
        eta = self.step_size(k, batch_w)
        flat = _pack(batch)
        flat *= 1.0 / batch_w  # per-observation means
        center = batch.center
        n_rows = self.n_rows + n
        if self._flat is not None and eta < 1.0:
            old = self._flat
            if self._center is not center and not np.array_equal(self._center, center):
                old = _recentred(old, self._center, center)
            mixed = old * (1.0 - eta)
            mixed += eta * flat
            flat = mixed
        sum_w = self.sum_w + batch_w
        m_step = n_rows >= self._burn_in
        new_params = params
        if m_step:
            new_params, flat, center = self._mstep(flat, sum_w, n_rows, center, params, k)
        flat.setflags(write=False)
        # commit
        self.n_batches, self.sum_w, self.params = k, sum_w, new_params
        self._flat, self._center, self._stats_rows, self._stats = flat, center, n_rows, None
        totals = self.totals
        totals["loglik"] += batch.loglik
        totals["class_loglik"] += batch.class_loglik
        totals["entropy"] += batch.entropy
        totals["sum_w"] += batch_w
        if m_step:
            self.n_msteps += 1
            if self.settings.average is not False:
                self._accumulate_average()
        return eta, m_step

    def _mstep(self, flat: np.ndarray, sum_w: float, n_rows: int, center: np.ndarray,
               params: MixtureParams, k: int):
        """M-step on the per-observation statistics ``flat``, centred at ``center``.

        Returns the new parameters and the statistics with their centre:
        re-centred to the new coefficients by the plain ML update, else
        (``mstep``, which sees them scaled to N_eff for its priors) as they were.
        """
        m, p = params.beta.shape
        options = self.options
        if _is_plain_ml(options) and (center is params.beta
                                      or np.array_equal(center, params.beta)):
            s0, s2, rx, r0 = _views(flat, m, p)
            # ML estimates do not depend on the scale of the statistics: no N_eff here.
            result = _ml_mstep_arrays(s0, s2, rx, r0, 1.0, params.beta, options.variance_floor)
            if result is not None:
                new_params, s2d, rss = result
                moved = flat.copy()
                _, _, rx_moved, r0_moved = _views(moved, m, p)
                np.subtract(rx, s2d, out=rx_moved)
                r0_moved[:] = rss
                return new_params, moved, new_params.beta
        forget = self.settings.forget
        n_eff = sum_w if forget is None or sum_w <= forget else float(forget)
        new_params, flags = mstep(_unpack(flat * n_eff, m, p, n_eff, n_rows, center), params,
                                  options)
        for j, note in flags.items():
            logger.debug("batch %d, component %d: %s", k, j, note)
        return new_params, flat, center

    def _accumulate_average(self) -> None:
        start = self.settings.average_start
        if start is None or self.n_msteps < start:
            return
        p = self.params
        if self.avg_sum is None:
            self.avg_sum = {"weights": np.zeros_like(p.weights), "beta": np.zeros_like(p.beta),
                            "sigma2": np.zeros_like(p.sigma2)}
        self.avg_sum["weights"] = self.avg_sum["weights"] + p.weights
        self.avg_sum["beta"] = self.avg_sum["beta"] + p.beta
        self.avg_sum["sigma2"] = self.avg_sum["sigma2"] + p.sigma2
        self.n_averaged += 1

    def mark(self, key: str, status: str, reason: str | None = None) -> None:
        """Record the end of stream ``key`` in the ledger ("done" or "quarantined")."""
        entry = self.ledger.setdefault(key, {"next": 0, "status": status})
        entry["status"] = status
        if reason is not None:
            entry["reason"] = reason

    # --------------------------------------------------------------- results
    def estimate(self) -> MixtureParams:
        """The reported parameters: the Polyak–Ruppert mean when averaging has
        started, else the current θ_k."""
        if self.n_averaged == 0:
            return self.params
        n = float(self.n_averaged)
        weights = self.avg_sum["weights"] / n
        return MixtureParams(weights / weights.sum(), self.avg_sum["beta"] / n,
                             self.avg_sum["sigma2"] / n)

    @property
    def prequential_loglik(self) -> float:
        """Σ over batches of the log-likelihood of the batch at θ_{k−1}."""
        return float(self.totals["loglik"])

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """Everything needed to resume exactly, JSON-ready (floats round-trip)."""
        return {
            "format": STATE_FORMAT, "version": STATE_VERSION,
            "settings": dataclasses.asdict(self.settings),
            "options": _options_to_dict(self.options),
            "fit_intercept": self.fit_intercept,
            "params": self.params.to_dict(),
            "stats": None if self.stats is None else _stats_to_dict(self.stats),
            "n_batches": self.n_batches, "n_rows": self.n_rows, "sum_w": self.sum_w,
            "n_msteps": self.n_msteps, "n_averaged": self.n_averaged,
            "avg_sum": None if self.avg_sum is None else
            {k: v.tolist() for k, v in self.avg_sum.items()},
            "totals": dict(self.totals),
            "history": list(self.history),
            "ledger": {k: dict(v) for k, v in self.ledger.items()},
            "rng": self.rng.bit_generator.state,
        }

    @classmethod
    def from_dict(cls, d: dict) -> OnlineEM:
        """Inverse of :meth:`to_dict`."""
        if d.get("format") != STATE_FORMAT:
            raise ValueError("not a streammix online state (missing format tag)")
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported online state version {d.get('version')!r}")
        rng_state = d["rng"]
        bitgen = getattr(np.random, rng_state["bit_generator"])()
        bitgen.state = rng_state
        state = cls(MixtureParams.from_dict(d["params"]), _options_from_dict(d["options"]),
                    OnlineSettings(**d["settings"]), d["fit_intercept"],
                    np.random.Generator(bitgen))
        state.stats = None if d["stats"] is None else _stats_from_dict(d["stats"])
        state.n_batches = int(d["n_batches"])
        state.n_rows = int(d["n_rows"])
        state.sum_w = float(d["sum_w"])
        state.n_msteps = int(d["n_msteps"])
        state.n_averaged = int(d["n_averaged"])
        if d["avg_sum"] is not None:
            state.avg_sum = {k: np.array(v, float) for k, v in d["avg_sum"].items()}
        state.totals = dict(d["totals"])
        state.history.extend(d["history"])
        state.ledger = {k: dict(v) for k, v in d["ledger"].items()}
        return state
