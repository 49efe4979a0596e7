"""The map functions of E-step passes: a chunk -> its statistics at given parameters.

:class:`EStepTask` makes the :class:`~streammix.core.stats.SuffStats` of one
parameter set; :class:`MultiEStepTask` those of several parameter sets from
one decoding of the chunk (the lock-step passes of
:mod:`streammix.algorithms.restarts`).
Both tell an engine whether they release the GIL (``releases_gil``): the
compiled E-step does, so threads then pay.
"""

from __future__ import annotations

from dataclasses import dataclass

from streammix.algorithms.restarts import StatsBundle
from streammix.core import kernel
from streammix.core.params import MixtureParams
from streammix.core.stats import (
    SuffStats,
    estep_features,
    estep_features_many,
    features_transposed,
)

__all__ = ["EStepTask", "MultiEStepTask"]


@dataclass(frozen=True)
class EStepTask:
    """Map function of an EM pass: a chunk -> its :class:`SuffStats` at ``params``."""

    params: MixtureParams
    fit_intercept: bool

    @property
    def releases_gil(self) -> bool:
        """Whether the compiled E-step runs (threads then pay: see InProcessEngine)."""
        return kernel.enabled()

    def __call__(self, chunk) -> SuffStats:
        return estep_features(features_transposed(chunk.X), chunk.y, chunk.w, self.params,
                              self.fit_intercept)


@dataclass(frozen=True)
class MultiEStepTask:
    """Map function of a lock-step pass: one chunk -> a :class:`StatsBundle`.

    The chunk is decoded and its design matrix built once; the E-step then
    runs for every parameter set on the same arrays.
    """

    params: tuple[MixtureParams, ...]
    fit_intercept: bool

    @property
    def releases_gil(self) -> bool:
        """Whether the compiled E-step runs (threads then pay: see InProcessEngine)."""
        return kernel.enabled()

    def __call__(self, chunk) -> StatsBundle:
        return StatsBundle(estep_features_many(features_transposed(chunk.X), chunk.y, chunk.w,
                                               self.params, self.fit_intercept))
