"""Online EM for streams: the state and its update rule.

See the mathematics page (docs/mathematics.rst), §2.

Mini-batch stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009).  The
state holds *per-observation* sufficient statistics s (a :class:`SuffStats`
whose ``sum_w`` is 1) in the residual form.  For batch k, at the current
parameters θ_{k-1}:

* ŝ_k = E-step statistics of the batch divided by the batch weight;
* s is centred at θ_{k-1} too (re-centring is exact, the mathematics page (docs/mathematics.rst),
  §1.2), so
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
    this is the same as dividing every prior constant by N_eff
    (the mathematics page (docs/mathematics.rst), §2.2).

Averaging
    ``average=True`` (or an integer) keeps the Polyak–Ruppert mean of the
    parameters θ_k over M-steps from the ``average``-th on (True means
    from the 10th); it is reported as the estimate but never fed back into
    the recursion.  Components keep their indices inside the state (they are
    only sorted on output), so averaging does not mix labels.  Averaging
    starts early (the 10th M-step) because the first M-steps of a
    well-started run are already near the optimum, and a stream of a few
    hundred batches would otherwise average little.

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

import numpy as np

from streammix.algorithms.em import EMSettings
from streammix.algorithms.online_settings import (
    OnlineSettings,
    burn_in_rows,
)
from streammix.algorithms.online_state import checked_state
from streammix.algorithms.start.candidates import variance_floor
from streammix.algorithms.start.initial import initial_params
from streammix.core.flat_stats import flat_views, flatten, recentred, unflatten
from streammix.core.mstep import MStepOptions, mstep
from streammix.core.params import MixtureParams
from streammix.core.plain_mstep import is_plain_ml, ml_mstep_arrays
from streammix.core.records import options_to_dict, stats_to_dict
from streammix.core.stats import SuffStats, design_matrix, estep_features, features_transposed
from streammix.exceptions import DataError

__all__ = ["OnlineEM", "OnlineSettings", "burn_in_rows", "STATE_FORMAT"]

logger = logging.getLogger(__name__)

STATE_FORMAT = "streammix-online-state"
STATE_VERSION = 1

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
        # The running statistics: a flat vector (see core.flat_stats), its centre and row count.
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
              init="auto", variance_floor_factor: float = 1e-4, sample_size: int = 100_000,
              rng: np.random.Generator | None = None, where: str = "the first batch",
              ) -> OnlineEM:
        """Initialise from one batch (it is not consumed: pass it to :meth:`update`).

        Starting values come from :func:`streammix.algorithms.start.initial.initial_params` on
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
            self._stats = unflatten(self._flat, m, p, 1.0, self._stats_rows, self._center)
        return self._stats

    @stats.setter
    def stats(self, value: SuffStats | None) -> None:
        self._stats = value
        if value is None:
            self._flat, self._center, self._stats_rows = None, None, 0
        else:
            self._flat = flatten(value)
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
                batch = self._estep(X, y, w)
            else:  # unvalidated: NaN or inf would warn on the way to check()'s error
                with np.errstate(all="ignore"):
                    batch = self._estep(X, y, w)
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

    def _estep(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> SuffStats:
        """E-step statistics of a batch at the current parameters (a subclass may extend)."""
        return estep_features(features_transposed(X), y, w, self.params, self.fit_intercept)

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
        flat = flatten(batch)
        flat *= 1.0 / batch_w  # per-observation means
        center = batch.center
        n_rows = self.n_rows + n
        if self._flat is not None and eta < 1.0:
            old = self._flat
            if self._center is not center and not np.array_equal(self._center, center):
                old = recentred(old, self._center, center)
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
        if is_plain_ml(options) and (center is params.beta
                                      or np.array_equal(center, params.beta)):
            s0, s2, rx, r0 = flat_views(flat, m, p)
            # ML estimates do not depend on the scale of the statistics: no N_eff here.
            result = ml_mstep_arrays(s0, s2, rx, r0, 1.0, params.beta, options.variance_floor)
            if result is not None:
                new_params, s2d, rss = result
                moved = flat.copy()
                _, _, rx_moved, r0_moved = flat_views(moved, m, p)
                np.subtract(rx, s2d, out=rx_moved)
                r0_moved[:] = rss
                return new_params, moved, new_params.beta
        forget = self.settings.forget
        n_eff = sum_w if forget is None or sum_w <= forget else float(forget)
        new_params, flags = mstep(unflatten(flat * n_eff, m, p, n_eff, n_rows, center), params,
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
            "options": options_to_dict(self.options),
            "fit_intercept": self.fit_intercept,
            "params": self.params.to_dict(),
            "stats": None if self.stats is None else stats_to_dict(self.stats),
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
        """Inverse of :meth:`to_dict`; the record is checked against the schema first
        (:func:`streammix.algorithms.online_state.checked_state`)."""
        if not isinstance(d, dict) or d.get("format") != STATE_FORMAT:
            raise ValueError("not a streammix online state (missing format tag)")
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported online state version {d.get('version')!r}")
        c = checked_state(d)  # every field checked; the rng's name from an allow-list
        state = cls(c["params"], c["options"], c["settings"], c["fit_intercept"], c["rng"])
        state.stats = c["stats"]
        for name in ("n_batches", "n_rows", "sum_w", "n_msteps", "n_averaged", "avg_sum",
                     "totals", "ledger"):
            setattr(state, name, c[name])
        state.history.extend(c["history"])
        return state
