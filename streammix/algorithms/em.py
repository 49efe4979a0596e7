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

from streammix.core.mstep import MStepOptions, log_prior, mstep
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats
from streammix.exceptions import ComponentCollapseError, ConvergenceWarning

__all__ = [
    "EMSettings", "EMResult", "run_em", "em_steps", "drive", "warn_not_converged",
    "COLLAPSE_POLICIES", "collapsed_components", "handle_collapse",
]

logger = logging.getLogger(__name__)

COLLAPSE_POLICIES = ("drop", "reseed", "error")


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
    min_rows_factor : float
        A component collapses when its effective number of rows
        (Σwγ scaled to rows) falls below ``min_rows_factor * (p + 1)``.
    min_weight : float
        A component also collapses when its weight falls below this
        (flexmix's ``minprior``; 0 disables).
    on_collapse : {"drop", "reseed", "error"}
    max_reseeds : int
        After this many re-seeds in one run, collapsing components are dropped.
    """

    mstep: MStepOptions = field(default_factory=MStepOptions)
    tol: float = 1e-4
    max_iter: int = 500
    min_rows_factor: float = 5.0
    min_weight: float = 0.0
    on_collapse: str = "drop"
    max_reseeds: int = 3

    def __post_init__(self) -> None:
        if self.on_collapse not in COLLAPSE_POLICIES:
            raise ValueError(
                f"on_collapse must be one of {COLLAPSE_POLICIES}, got {self.on_collapse!r}"
            )
        if self.tol < 0:
            raise ValueError(f"tol must be >= 0, got {self.tol}")
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")


@dataclass
class EMResult:
    """Outcome of one EM run.

    ``loglik`` and ``stats`` belong to ``params`` (the run ends on an E-step
    pass, never on an M-step).  ``history`` holds one record per pass:
    ``iteration``, ``loglik``, ``objective``, ``n_components``, and where
    something happened, ``event`` (a component dropped or re-seeded before
    this pass) and ``notes`` (component -> what the M-step that produced
    these parameters met: "variance at floor", "rank-deficient design",
    "empty").
    """

    params: MixtureParams
    loglik: float
    objective: float
    n_iter: int
    converged: bool
    history: list[dict]
    stats: SuffStats
    settings: EMSettings


def collapsed_components(stats: SuffStats, settings: EMSettings) -> list[int]:
    """Components that collapsed in a pass: too few effective rows, or weight below
    ``settings.min_weight``."""
    p = stats.n_coef
    rows_per_weight = stats.n_rows / stats.sum_w
    eff_rows = stats.s0 * rows_per_weight
    weights = stats.s0 / stats.sum_w
    small = (eff_rows < settings.min_rows_factor * (p + 1)) | (weights < settings.min_weight)
    return [int(j) for j in np.flatnonzero(small)]


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
    n_reseeds = 0
    n_iter = 0
    converged = False
    event: str | None = None
    notes: dict[str, str] = {}
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
        small = collapsed_components(stats, settings) if params.n_components > 1 else []
        if small:
            params, stats, options, event, n_reseeds = handle_collapse(
                small, params, stats, options, settings, reseed, n_reseeds, n_iter)
            if stats is None:  # re-seeded: the statistics no longer apply
                n_iter += 1
                continue
        params, flags = mstep(stats, params, options)
        notes = {str(j): note for j, note in sorted(flags.items())}
        for j, note in flags.items():
            logger.debug("iteration %d, component %d: %s", n_iter, j, note)
        n_iter += 1
    return EMResult(params, stats.loglik, obj, n_iter, converged, history, stats,
                    dataclasses.replace(settings, mstep=options))


def handle_collapse(small, params, stats, options, settings, reseed, n_reseeds, n_iter):
    """Apply ``settings.on_collapse`` to the collapsed components ``small``.

    Returns ``(params, stats, options, event, n_reseeds)``: the components
    dropped or re-seeded, with a history event; raises
    :class:`~streammix.ComponentCollapseError` under ``"error"``.
    """
    s0 = ", ".join(f"{j} (weight {stats.s0[j] / stats.sum_w:.3g})" for j in small)
    policy = settings.on_collapse
    if policy == "error":
        raise ComponentCollapseError(
            f"component(s) {s0} collapsed at iteration {n_iter}; use fewer components, "
            "on_collapse='drop' or 'reseed', or a variance prior"
        )
    if policy == "reseed" and reseed is not None and n_reseeds < settings.max_reseeds:
        for j in small:
            params = reseed(params, j)
        logger.warning("iteration %d: re-seeded collapsed component(s) %s", n_iter, s0)
        return params, None, options, f"reseeded {small}", n_reseeds + 1
    keep = [j for j in range(params.n_components) if j not in small]
    if not keep:
        keep = [int(np.argmax(stats.s0))]
    warnings.warn(f"EM iteration {n_iter}: dropped collapsed component(s) {s0}",
                  RuntimeWarning, stacklevel=4)
    logger.warning("iteration %d: dropped collapsed component(s) %s", n_iter, s0)
    options = _subset_options(options, keep)
    return (params.subset(keep), stats.subset(keep), options, f"dropped {small}", n_reseeds)
