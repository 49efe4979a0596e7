"""Several EM runs sharing the scans of the data.

With ``n_init = R`` starting values (or several numbers of components), every
pass decodes each chunk once and computes the statistics of all live runs
from it: the map task takes a tuple of parameter sets and returns a
:class:`StatsBundle`, a tuple of :class:`~streammix.stats.SuffStats` that
adds element-wise.  Each run is a step generator
(:func:`streammix.em.em_steps`, :func:`streammix.squarem.squarem_steps`),
so it sees exactly the statistics it would see alone and ends at the same
parameters as when run by itself.

Culling rule (:class:`CullRule`): from pass ``after`` on, a run whose best
objective so far is more than ``gap`` nats per unit weight (``gap * N`` in
total) below the best objective of its group is stopped.  EM never lowers
the likelihood, so such a run must climb more than ``gap * N`` to overtake
the leader, which a start that is still that far behind after ``after``
passes rarely does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .em import EMResult
from .params import MixtureParams
from .stats import SuffStats, design_transposed, estep_transposed

__all__ = ["StatsBundle", "MultiEStepTask", "CullRule", "SharedRuns", "run_shared"]

logger = logging.getLogger(__name__)


class StatsBundle(tuple):
    """A tuple of :class:`SuffStats` (one per parameter set) that adds element-wise."""

    __slots__ = ()

    @classmethod
    def zeros(cls, params: Sequence[MixtureParams]) -> StatsBundle:
        """The identity: zero statistics shaped like each parameter set."""
        return cls(SuffStats.zeros(p.n_components, p.n_coef) for p in params)

    def __add__(self, other: StatsBundle) -> StatsBundle:
        if not isinstance(other, StatsBundle):
            return NotImplemented
        if len(self) != len(other):
            raise ValueError(f"cannot add bundles of {len(self)} and {len(other)} statistics")
        return StatsBundle(a + b for a, b in zip(self, other, strict=True))

    def __repr__(self) -> str:
        return f"StatsBundle({len(self)} statistics)"


@dataclass(frozen=True)
class MultiEStepTask:
    """Map function of a shared pass: one chunk -> a :class:`StatsBundle`.

    The chunk is decoded and its design matrix built once; the E-step then
    runs for every parameter set on the same arrays.
    """

    params: tuple[MixtureParams, ...]
    fit_intercept: bool

    def __call__(self, chunk) -> StatsBundle:
        XT = design_transposed(chunk.X, self.fit_intercept)
        return StatsBundle(estep_transposed(XT, chunk.y, chunk.w, p, self.fit_intercept)
                           for p in self.params)


@dataclass(frozen=True)
class CullRule:
    """When a run is hopeless (see the module notes).

    Parameters
    ----------
    after : int
        First pass at which runs may be culled.
    gap : float
        Margin in nats per unit weight below the group's leader.
    """

    after: int = 10
    gap: float = 0.05

    def __post_init__(self) -> None:
        if self.after < 1 or not self.gap >= 0:
            raise ValueError(f"CullRule needs after >= 1 and gap >= 0, got {self}")


@dataclass
class SharedRuns:
    """Outcome of :func:`run_shared`.

    Attributes
    ----------
    results : list of EMResult or None
        One per run, in the order given; None for culled runs.
    n_passes : int
        Number of shared passes (scans of the data).
    culled : list of int
        Indices of the culled runs.
    """

    results: list[EMResult | None]
    n_passes: int
    culled: list[int] = field(default_factory=list)


def run_shared(runs: Sequence[Generator[MixtureParams, SuffStats, EMResult]],
               pass_many: Callable[[tuple[MixtureParams, ...]], Sequence[SuffStats]], *,
               groups: Sequence | None = None, cull: CullRule | None = None) -> SharedRuns:
    """Advance several step generators in lock-step, one shared pass per round.

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
        Stop hopeless runs; default none.

    Returns
    -------
    SharedRuns
    """
    n = len(runs)
    groups = list(groups) if groups is not None else [0] * n
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group labels for {n} runs")
    results: list[EMResult | None] = [None] * n
    best = np.full(n, -np.inf)
    pending = {i: next(gen) for i, gen in enumerate(runs)}
    culled: list[int] = []
    n_passes = 0
    while pending:
        ids = sorted(pending)
        bundle = pass_many(tuple(pending[i] for i in ids))
        n_passes += 1
        sum_w = 0.0
        for i, stats in zip(ids, bundle, strict=True):
            sum_w = stats.sum_w
            if np.isfinite(stats.loglik):
                best[i] = max(best[i], stats.loglik)
            try:
                pending[i] = runs[i].send(stats)
            except StopIteration as stop:
                results[i] = stop.value
                del pending[i]
        if cull is None or n_passes < cull.after:
            continue
        for i in sorted(pending):
            leader = max(best[k] for k in range(n) if groups[k] == groups[i])
            if best[i] < leader - cull.gap * sum_w:
                logger.info("run %d culled after %d passes: loglik %.6g, leader %.6g",
                            i, n_passes, best[i], leader)
                runs[i].close()
                del pending[i]
                culled.append(i)
    return SharedRuns(results, n_passes, culled)
