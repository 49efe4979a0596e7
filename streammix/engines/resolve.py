"""Which engine a pass runs on: the estimator's ``engine`` setting made concrete."""

from __future__ import annotations

from streammix.engines.inprocess import InProcessEngine

__all__ = ["resolve_engine"]


def resolve_engine(engine):
    """The engine passes run on: in-process by default.

    Accepts None, any object with ``map_reduce`` (an engine), or a
    ``distributed.Client``, which is wrapped in a
    :class:`~streammix.DaskEngine`.
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
