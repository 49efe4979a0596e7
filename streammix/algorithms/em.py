"""Batch EM driver: iterate E-step passes and M-steps, stop, handle collapse.

The driver does not know where the data is: it is given ``pass_fn(params)``,
which returns the :class:`~streammix.SuffStats` of one full pass at
``params`` (in-process, on a Dask cluster, or on an in-memory sample).
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from streammix.algorithms.degeneracy import (
    DEFAULT_MIN_SIGMA_RATIO,
    DEFAULT_SPIKE_ROWS_FACTOR,
    Degeneracy,
    DegeneracyRule,
    find_degenerate,
)
from streammix.core.mstep import MStepOptions, log_prior, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats
from streammix.exceptions import (
    ComponentCollapseError,
    ComponentCollapseWarning,
    ConvergenceWarning,
)

__all__ = [
    "EMSettings", "EMResult", "run_em", "em_steps", "drive", "warn_not_converged",
    "COLLAPSE_POLICIES", "collapsed_components", "handle_collapse", "Collapse",
]

logger = logging.getLogger(__name__)

COLLAPSE_POLICIES = ("reseed", "drop", "error")


@dataclass(frozen=True)
class EMSettings:
    """Settings of one EM run.

    Parameters
    ----------
    mstep : MStepOptions
    tol : float
        Stop when the objective (log-likelihood, plus log-prior under MAP)
        changes by less than ``tol`` in absolute value between two passes.
    max_iter : int
        Maximum number of M-steps.
    min_weight : float
        A component collapses when its weight falls below this
        (flexmix's ``minprior``; 0 disables).
    min_eff_rows : float, optional
        A component collapses when its effective number of rows (Σwγ scaled
        to rows) falls below this; None means p + 1, the number of its
        parameters (p coefficients and σ).
    min_sigma_ratio : float
        With per-component noise, a component of fewer than
        ``spike_rows_factor * (p + 1)`` effective rows whose σ is below
        ``min_sigma_ratio`` times the pooled OLS σ is a spike and collapses.
    spike_rows_factor : float
    pooled_sigma2 : float, optional
        The pooled OLS residual variance (on the fitting scale); None
        disables the spike rule.
    on_collapse : {"reseed", "drop", "error"}
        ``"reseed"`` needs a ``reseed`` function (else collapsed components
        are dropped).
    max_reseeds : int
        After this many re-seeds in one run, collapsing components are dropped.
    resolution_sigma2 : float, optional
        δ²/12 for y recorded to a step δ (on the fitting scale): in the choice
        among runs only (:attr:`choice_rule`), a per-component σ² below it is
        degenerate; None disables.

    See :mod:`streammix.algorithms.degeneracy` for the rule.
    """

    mstep: MStepOptions = field(default_factory=MStepOptions)
    tol: float = 1e-4
    max_iter: int = 500
    min_weight: float = 0.0
    min_eff_rows: float | None = None
    min_sigma_ratio: float = DEFAULT_MIN_SIGMA_RATIO
    spike_rows_factor: float = DEFAULT_SPIKE_ROWS_FACTOR
    pooled_sigma2: float | None = None
    on_collapse: str = "reseed"
    max_reseeds: int = 3
    resolution_sigma2: float | None = None

    def __post_init__(self) -> None:
        if self.on_collapse not in COLLAPSE_POLICIES:
            raise ValueError(
                f"on_collapse must be one of {COLLAPSE_POLICIES}, got {self.on_collapse!r}"
            )
        if self.tol < 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")
        if self.max_reseeds < 0:
            raise ValueError(f"max_reseeds must be >= 0, got {self.max_reseeds}")
        self.rule  # noqa: B018 -- checks the thresholds

    @property
    def rule(self) -> DegeneracyRule:
        """The degeneracy rule of these settings."""
        return DegeneracyRule(
            min_weight=self.min_weight, min_eff_rows=self.min_eff_rows,
            min_sigma_ratio=self.min_sigma_ratio, spike_rows_factor=self.spike_rows_factor,
            pooled_sigma2=self.pooled_sigma2, spikes=self.mstep.noise == "per_component")

    @property
    def choice_rule(self) -> DegeneracyRule:
        """The rule of the choice among runs: :attr:`rule`, and a σ² pinned at the
        variance floor or below the resolution of y is degenerate too."""
        return dataclasses.replace(self.rule, floor_sigma2=self.mstep.variance_floor,
                                   resolution_sigma2=self.resolution_sigma2)


@dataclass
class EMResult:
    """Outcome of one EM run.

    ``loglik`` and ``stats`` belong to ``params`` (the run ends on an E-step
    pass, never on an M-step).  ``history`` holds one record per pass:
    ``iteration``, ``loglik``, ``objective``, ``n_components``, and where
    something happened, ``event`` (a component dropped or re-seeded before
    this pass) and ``notes`` (component -> what the M-step that produced
    these parameters met: "variance at floor", "rank-deficient design",
    "empty"); with an event, ``collapse`` lists each collapsed component's
    reason and numbers (:meth:`~streammix.algorithms.degeneracy.Degeneracy.as_record`
    and ``"action"``).  ``passed_over`` is the highest-likelihood point of the
    run at which a component was degenerate (``loglik``, ``iteration``,
    ``n_components``, ``reasons``) and so re-seeded or dropped; None if none.
    """

    params: MixtureParams
    loglik: float
    objective: float
    n_iter: int
    converged: bool
    history: list[dict]
    stats: SuffStats
    settings: EMSettings
    passed_over: dict | None = None


def collapsed_components(params: MixtureParams, stats: SuffStats,
                         settings: EMSettings) -> list[Degeneracy]:
    """The components of ``params`` that collapsed in the pass ``stats`` (never the
    last one left): :func:`~streammix.algorithms.degeneracy.find_degenerate` under
    ``settings.rule``."""
    if params.n_components <= 1:
        return []
    return find_degenerate(params, stats, settings.rule)


def _subset_options(options: MStepOptions, keep: list[int]) -> MStepOptions:
    fixed = options.fixed_sigma2
    if fixed is not None and np.ndim(fixed) == 1 and len(fixed) > 1:
        return dataclasses.replace(options, fixed_sigma2=np.asarray(fixed)[keep])
    return options


def run_em(pass_fn: Callable[[MixtureParams], SuffStats], params: MixtureParams,
           settings: EMSettings, *, reseed: Callable | None = None,
           warn: bool = True, callback: Callable[[dict], None] | None = None) -> EMResult:
    """Run batch EM from ``params``.

    Parameters
    ----------
    pass_fn : callable
        ``pass_fn(params) -> SuffStats``: one full E-step pass.
    params : MixtureParams
        Starting values.
    settings : EMSettings
    reseed : callable, optional
        ``reseed(params, j) -> MixtureParams`` replaces component j; needed
        for ``on_collapse="reseed"``.
    warn : bool
        Emit :class:`ConvergenceWarning` when ``max_iter`` is reached.
    callback : callable, optional
        Called after each pass with a copy of its history record (e.g. to
        display progress).

    Returns
    -------
    EMResult
    """
    result = drive(em_steps(params, settings, reseed=reseed, callback=callback), pass_fn)
    if warn:
        warn_not_converged(result, stacklevel=3)
    return result


def drive(steps: Generator[MixtureParams, SuffStats, EMResult],
          pass_fn: Callable[[MixtureParams], SuffStats]) -> EMResult:
    """Run a step generator (:func:`em_steps` and the like) to its end.

    The generator yields the parameters at which it needs the next pass and
    is sent that pass's statistics; its return value is the result.
    """
    try:
        params = next(steps)
        while True:
            params = steps.send(pass_fn(params))
    except StopIteration as stop:
        return stop.value


def warn_not_converged(result: EMResult, stacklevel: int = 2) -> None:
    """Emit :class:`ConvergenceWarning` if ``result`` stopped at ``max_iter``."""
    settings = result.settings
    if result.converged or settings.max_iter <= 0 or len(result.history) < 2:
        return
    last = abs(result.history[-1]["objective"] - result.history[-2]["objective"])
    warnings.warn(
        f"EM did not converge in {settings.max_iter} iterations "
        f"(last change {last:.3g} > tol {settings.tol:g}); increase max_iter or tol",
        ConvergenceWarning, stacklevel=stacklevel + 1,
    )


def em_steps(params: MixtureParams, settings: EMSettings, *, reseed: Callable | None = None,
             callback: Callable[[dict], None] | None = None,
             ) -> Generator[MixtureParams, SuffStats, EMResult]:
    """Batch EM as a generator: the body of :func:`run_em` without the passes.

    Yields the parameters of each pass, receives that pass's
    :class:`SuffStats`, and returns the :class:`EMResult`.  Several runs in
    this form can run in lock-step over the same scans (:mod:`streammix.algorithms.restarts`).
    """
    options = settings.mstep
    history: list[dict] = []
    prev_obj = None
    collapse = Collapse(settings, reseed)
    n_iter = 0
    converged = False
    event: str | None = None
    notes: dict[str, str] = {}
    reasons: list[dict] = []
    while True:
        stats = yield params
        if not np.isfinite(stats.loglik):
            raise FloatingPointError(
                f"log-likelihood is not finite at iteration {n_iter}; "
                "check the data scale or set a variance floor"
            )
        obj = stats.loglik + log_prior(params, options)
        record = {"iteration": n_iter, "loglik": stats.loglik, "objective": obj,
                  "n_components": params.n_components}
        if event is not None:
            record["event"] = event
            record["collapse"] = reasons
        if notes:
            record["notes"] = notes
        history.append(record)
        if callback is not None:
            callback(dict(record))
        logger.debug("EM iteration %d: loglik %.10g", n_iter, stats.loglik)
        if prev_obj is not None and event is None and abs(obj - prev_obj) < settings.tol:
            converged = True
            break
        if n_iter >= settings.max_iter:
            break
        prev_obj = obj
        event = None
        found = collapsed_components(params, stats, settings)
        if found:
            params, stats, options, event, reasons = collapse.handle(
                found, params, stats, options, n_iter, stats.loglik)
            if stats is None:  # re-seeded: the statistics no longer apply
                n_iter += 1
                continue
        params, flags = mstep(stats, params, options)
        notes = {str(j): note for j, note in sorted(flags.items())}
        for j, note in flags.items():
            logger.debug("iteration %d, component %d: %s", n_iter, j, note)
        n_iter += 1
    return EMResult(params, stats.loglik, obj, n_iter, converged, history, stats,
                    dataclasses.replace(settings, mstep=options), collapse.passed_over)


class Collapse:
    """The collapse handling of one run (plain EM and SQUAREM alike).

    Applies ``settings.on_collapse`` to the components that
    :func:`collapsed_components` found: re-seed them (up to
    ``settings.max_reseeds`` times per run), then drop them; or raise.  Every
    re-seed and drop is warned about (:class:`~streammix.ComponentCollapseWarning`,
    with each component's reason and numbers) and returned as a history
    event.  ``passed_over`` keeps the highest log-likelihood at which a
    component was found degenerate, with the reasons (None if none was).
    """

    def __init__(self, settings: EMSettings, reseed: Callable | None):
        self.settings = settings
        self.reseed = reseed
        self.n_reseeds = 0
        self.passed_over: dict | None = None

    def handle(self, found: list[Degeneracy], params, stats, options, n_iter: int,
               loglik: float):
        """Returns ``(params, stats, options, event, reasons)``; ``stats`` is None
        after a re-seed (the pass no longer applies)."""
        return handle_collapse(found, params, stats, options, self, n_iter, loglik)


def handle_collapse(found, params, stats, options, state: Collapse, n_iter: int,
                    loglik: float):
    """Apply ``state.settings.on_collapse`` to the collapsed components ``found``.

    Returns ``(params, stats, options, event, reasons)``: the components
    dropped or re-seeded, with a history event and one record per component
    (:meth:`Degeneracy.as_record` plus ``"action"``); raises
    :class:`~streammix.ComponentCollapseError` under ``"error"``.  A fit never
    drops all its components: the one with the most weight stays.
    """
    settings = state.settings
    small = [d.component for d in found]
    why = "; ".join(d.message for d in found)
    s0 = ", ".join(f"{j} (weight {stats.s0[j] / stats.sum_w:.3g})" for j in small)
    if any(d.reason != "small weight" for d in found) and np.isfinite(loglik) and (
            state.passed_over is None or loglik > state.passed_over["loglik"]):
        state.passed_over = {"loglik": float(loglik), "iteration": n_iter,
                             "n_components": params.n_components,
                             "reasons": [d.message for d in found]}
    policy = settings.on_collapse
    if policy == "error":
        raise ComponentCollapseError(
            f"component(s) {s0} collapsed at iteration {n_iter} ({why}); use fewer "
            "components, on_collapse='reseed' or 'drop', or a variance prior"
        )
    if policy == "reseed" and state.reseed is not None and state.n_reseeds < settings.max_reseeds:
        for j in small:
            params = state.reseed(params, j)
        state.n_reseeds += 1
        msg = (f"EM iteration {n_iter}: re-seeded collapsed component(s) {s0} "
               f"(re-seed {state.n_reseeds} of {settings.max_reseeds}): {why}")
        warnings.warn(msg, ComponentCollapseWarning, stacklevel=5)
        logger.warning("%s", msg)
        reasons = [{**d.as_record(), "action": "reseeded"} for d in found]
        return params, None, options, f"reseeded {small}", reasons
    keep = [j for j in range(params.n_components) if j not in small]
    if not keep:
        keep = [int(np.argmax(stats.s0))]
        small = [j for j in small if j not in keep]
    msg = f"EM iteration {n_iter}: dropped collapsed component(s) {s0}: {why}"
    warnings.warn(msg, ComponentCollapseWarning, stacklevel=5)
    logger.warning("%s", msg)
    options = _subset_options(options, keep)
    reasons = [{**d.as_record(), "action": "dropped" if d.component in small else "kept"}
               for d in found]
    return (params.subset(keep), stats.subset(keep), options, f"dropped {small}", reasons)
