"""Several EM runs in lock-step over the same scans of the data.

With ``n_init = R`` starting values (or several numbers of components), every
pass decodes each chunk once and computes the statistics of all live runs
from it: the map task takes a tuple of parameter sets and returns a
:class:`StatsBundle`, a tuple of :class:`~streammix.SuffStats` that
adds element-wise.  Each run is a step generator
(:func:`streammix.algorithms.em.em_steps`, :func:`streammix.algorithms.squarem.squarem_steps`),
so it sees exactly the statistics it would see alone and ends at the same
parameters as when run by itself.

Culling rules (:class:`CullRule`), checked after every pass from pass
``after`` on, against the *leader* of the run's group (the run with the
highest log-likelihood so far):

* hopeless: a run whose best log-likelihood is more than ``gap`` nats per
  unit weight (``gap * N`` in total) below the leader's is stopped.  EM never
  lowers the likelihood, so such a run must climb more than ``gap * N`` to
  overtake the leader, which a start still that far behind rarely does;
* duplicate: a run whose parameters, under the best matching of component
  labels, lie within ``duplicate`` nats of the leader's in the leader's
  complete-data information metric (½ dᵀ I_c d, d the difference in the
  unconstrained coordinates of :mod:`streammix.algorithms.squarem`, free from the
  leader's statistics of the same pass) is following the leader to the same
  optimum and is stopped.  The default threshold is P/2, P the number of
  free parameters: the mean of ½ χ²_P, the distance at which an estimate
  typically lies from the truth, so the two runs differ by less than the
  sampling error of either (and I_c ≥ I_obs makes the test conservative).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from streammix.algorithms.em import EMResult
from streammix.algorithms.squarem import em_step_size, to_unconstrained
from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats

__all__ = ["StatsBundle", "CullRule", "LockstepRuns", "run_lockstep",
           "information_distance", "relabellings"]

logger = logging.getLogger(__name__)


class StatsBundle:
    """A sequence of :class:`SuffStats` (one per parameter set) that adds element-wise.

    Deliberately not a ``tuple`` subclass, so that no framework mistakes it
    for a plain tuple (whose ``+`` concatenates).
    """

    __slots__ = ("stats",)

    def __init__(self, stats):
        self.stats = tuple(stats)

    @classmethod
    def zeros(cls, params: Sequence[MixtureParams]) -> StatsBundle:
        """The identity: zero statistics shaped like each parameter set."""
        return cls(SuffStats.zeros(p.n_components, p.n_coef) for p in params)

    def __add__(self, other: StatsBundle) -> StatsBundle:
        if not isinstance(other, StatsBundle):
            return NotImplemented
        if len(self) != len(other):
            raise ValueError(f"cannot add bundles of {len(self)} and {len(other)} statistics")
        return StatsBundle(a + b for a, b in zip(self.stats, other.stats, strict=True))

    def __len__(self) -> int:
        return len(self.stats)

    def __iter__(self):
        return iter(self.stats)

    def __getitem__(self, index):
        return self.stats[index]

    def __getstate__(self):
        return self.stats

    def __setstate__(self, state) -> None:
        self.stats = state

    def __repr__(self) -> str:
        return f"StatsBundle({len(self)} statistics)"


@dataclass(frozen=True)
class CullRule:
    """When a run is hopeless (see the module notes).

    Parameters
    ----------
    after : int
        First pass at which runs may be culled.
    gap : float
        Margin in nats per unit weight below the group's leader.
    duplicate : float, optional
        Distance in nats to the leader under which a run is a duplicate;
        default P/2 (P free parameters); 0 disables this rule.
    options : MStepOptions, optional
        Noise model of the runs (for the coordinates of the distance); the
        duplicate rule needs it.
    distance, size : callable, optional
        The duplicate rule's distance and parameter count, for runs whose points
        are not :class:`MixtureParams` (gated runs).
    """

    after: int = 5
    gap: float = 0.05
    duplicate: float | None = None
    options: MStepOptions | None = None
    #: ``distance(a, b, stats_b, options)`` and ``size(b, options)`` (P) of the
    #: duplicate rule: :func:`information_distance` and the size of
    #: :func:`~streammix.algorithms.squarem.to_unconstrained` by default; gated runs,
    #: whose points are ``(params, coef)``, give those of
    #: :mod:`streammix.algorithms.gate_distance`.
    distance: Callable | None = None
    size: Callable | None = None

    def __post_init__(self) -> None:
        if self.after < 1 or not self.gap >= 0 or not (self.duplicate is None
                                                       or self.duplicate >= 0):
            raise ValueError(f"CullRule needs after >= 1, gap >= 0 and duplicate >= 0, "
                             f"got {self}")


def information_distance(a: MixtureParams, b: MixtureParams, stats_b: SuffStats,
                         options: MStepOptions) -> float:
    """½ dᵀ I_c(b) d between ``a`` and ``b``, minimised over relabellings of ``a``.

    ``stats_b`` are the statistics of a pass at ``b``.  Infinite when the
    numbers of components differ.  All m! labellings are tried for m ≤ 6; a
    greedy matching on the coefficients is used above that.
    """
    m = b.n_components
    if a.n_components != m or a.n_coef != b.n_coef:
        return float("inf")
    return min(em_step_size(stats_b, b, a.permute(list(order)), options)[0]
               for order in relabellings(a, b))


def relabellings(a: MixtureParams, b: MixtureParams) -> list:
    """The orders of ``a``'s components to try against ``b``'s: all m! for m ≤ 6, else
    one greedy matching on the coefficients."""
    m = b.n_components
    if m <= 6:
        return list(itertools.permutations(range(m)))
    cost = np.linalg.norm(a.beta[:, None, :] - b.beta[None, :, :], axis=2)
    order = np.empty(m, dtype=int)
    for _ in range(m):
        i, j = np.unravel_index(np.argmin(cost), cost.shape)
        order[j] = i
        cost[i, :] = np.inf
        cost[:, j] = np.inf
    return [tuple(order)]


@dataclass
class LockstepRuns:
    """Outcome of :func:`run_lockstep`.

    Attributes
    ----------
    results : list of EMResult or None
        One per run, in the order given; None for culled runs.
    n_passes : int
        Number of lock-step passes (scans of the data).
    culled : list of int
        Indices of the culled runs.
    stopped : list of int
        Indices of runs stopped by ``dominated``; their results hold the
        best point they evaluated, with ``converged=False``, a history of
        log-likelihoods only and ``settings=None``.
    """

    results: list[EMResult | None]
    n_passes: int
    culled: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)


def run_lockstep(runs: Sequence[Generator[MixtureParams, SuffStats, EMResult]],
               pass_many: Callable[[tuple[MixtureParams, ...]], Sequence[SuffStats]], *,
               groups: Sequence | None = None, cull: CullRule | None = None,
               dominated: Callable | None = None) -> LockstepRuns:
    """Advance several step generators in lock-step, one pass per round for all.

    Parameters
    ----------
    runs : sequence of generators
        Each yields the parameters of its next pass, is sent that pass's
        statistics and returns an :class:`EMResult`.
    pass_many : callable
        ``pass_many(params_tuple)`` returns the statistics of one pass for
        each parameter set, in order (e.g. an engine's ``map_reduce`` with
        :class:`MultiEStepTask`).
    groups : sequence, optional
        A label per run; runs are culled only against runs of their group
        (e.g. the number of components).  Default: one group.
    cull : CullRule, optional
        Stop hopeless and duplicate runs; default none.
    dominated : callable, optional
        ``dominated(i, logliks, best)``, called after every pass for each
        live run with the log-likelihoods of its passes so far and the best
        log-likelihood of every run so far (an array, −inf before its first
        pass); True stops the run (kept as a result).

    Returns
    -------
    LockstepRuns
    """
    n = len(runs)
    groups = list(groups) if groups is not None else [0] * n
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group labels for {n} runs")
    results: list[EMResult | None] = [None] * n
    best = np.full(n, -np.inf)
    best_point: list = [None] * n
    last: list = [None] * n
    lls: list[list[float]] = [[] for _ in range(n)]
    pending = {i: next(gen) for i, gen in enumerate(runs)}
    culled: list[int] = []
    stopped: list[int] = []
    n_passes = 0
    while pending:
        ids = sorted(pending)
        bundle = pass_many(tuple(pending[i] for i in ids))
        n_passes += 1
        sum_w = 0.0
        for i, stats in zip(ids, bundle, strict=True):
            sum_w = stats.sum_w
            last[i] = (pending[i], stats)
            if np.isfinite(stats.loglik):
                lls[i].append(float(stats.loglik))
                if stats.loglik > best[i]:
                    best[i], best_point[i] = stats.loglik, last[i]
            try:
                pending[i] = runs[i].send(stats)
            except StopIteration as stop:
                results[i] = stop.value
                last[i] = (_point(stop.value), stop.value.stats)
                del pending[i]
        if dominated is not None:
            for i in sorted(pending):
                if best_point[i] is not None and dominated(i, lls[i], best):
                    params, stats = best_point[i]
                    history = [{"iteration": t, "loglik": v, "objective": v}
                               for t, v in enumerate(lls[i])]
                    results[i] = EMResult(params, float(stats.loglik), float(stats.loglik),
                                          len(lls[i]) - 1, False, history, stats, None)
                    _close(runs, pending, i)
                    stopped.append(i)
                    logger.info("run %d stopped after %d passes: dominated", i, n_passes)
        if cull is None or n_passes < cull.after:
            continue
        for i in sorted(pending, key=lambda k: (best[k], -k)):
            same = [k for k in range(n) if groups[k] == groups[i] and k not in culled]
            leader = max(same, key=lambda k: (best[k], -k))
            if leader == i:
                continue
            why = None
            if best[i] < best[leader] - cull.gap * sum_w:
                why = "hopeless"
            elif cull.duplicate != 0 and cull.options is not None and last[leader] is not None:
                (p_lead, s_lead), (p_i, _) = last[leader], last[i]
                distance = cull.distance or information_distance
                limit = cull.duplicate
                if limit is None:
                    limit = 0.5 * (cull.size(p_lead, cull.options) if cull.size is not None
                                   else to_unconstrained(p_lead, cull.options).size)
                if distance(p_i, p_lead, s_lead, cull.options) < limit:
                    why = "duplicate"
            if why is not None:
                logger.info("run %d culled after %d passes (%s): loglik %.6g, leader %d %.6g",
                            i, n_passes, why, best[i], leader, best[leader])
                _close(runs, pending, i)
                culled.append(i)
    return LockstepRuns(results, n_passes, culled, stopped)


def _point(result):
    """The point a run ended at: its parameters, with its gate ``coef`` if it has one."""
    coef = getattr(result, "coef", None)
    return result.params if coef is None else (result.params, coef)


def _close(runs, pending, i) -> None:
    runs[i].close()
    del pending[i]
