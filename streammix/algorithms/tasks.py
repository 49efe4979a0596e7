"""What one pass over the data is made of: the map task of an EM pass, and the engine.

:class:`EStepTask` is the map function of an E-step pass (a chunk -> its
:class:`~streammix.stats.SuffStats`); :func:`resolve_engine` turns the
estimator's ``engine`` setting into something with ``map_reduce``.
"""

from __future__ import annotations

from dataclasses import dataclass

from streammix.core import stats
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, estep_features, features_transposed
from streammix.engines.inprocess import InProcessEngine

__all__ = ["EStepTask", "resolve_engine"]


def resolve_engine(engine):
    """The engine passes run on: in-process by default.

    Accepts None, any object with ``map_reduce`` (an engine), or a
    ``distributed.Client``, which is wrapped in a
    :class:`~streammix.dask_engine.DaskEngine`.
    """
    if engine is None:
        return InProcessEngine()
    if hasattr(engine, "map_reduce"):
        return engine
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        Client = ()
    if isinstance(engine, Client):
        from streammix.engines.dask_engine import DaskEngine
        return DaskEngine(engine)
    raise TypeError(f"engine must be None, an engine (e.g. DaskEngine) or a distributed.Client, "
                    f"got {type(engine).__name__}")


@dataclass(frozen=True)
class EStepTask:
    """Map function of an EM pass: a chunk -> its :class:`SuffStats` at ``params``."""

    params: MixtureParams
    fit_intercept: bool

    @property
    def releases_gil(self) -> bool:
        """Whether the compiled E-step runs (threads then pay: see InProcessEngine)."""
        return stats.use_kernel

    def __call__(self, chunk) -> SuffStats:
        return estep_features(features_transposed(chunk.X), chunk.y, chunk.w, self.params,
                              self.fit_intercept)
