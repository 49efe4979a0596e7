"""Which engine a pass runs on: the estimator's ``engine`` setting made concrete.

The rule (documented in the user guide, "Where passes run"):

1. an engine given (``engine=DaskEngine(...)``, ``InProcessEngine()``) is used;
2. a ``distributed.Client`` given is used (wrapped in a :class:`~streammix.DaskEngine`);
3. else, when a ``distributed.Client`` is running in this process (the
   *ambient* client, :func:`streammix.engines.ambient.ambient_client`) and its
   workers can read the source -- a Dask collection, Parquet at a URL
   (``s3://``, ``gs://``, ...), or local Parquet files when every worker runs on
   this machine -- the passes run on that cluster;
4. else in this process: in-memory arrays and tables, streams, or a cluster
   whose workers cannot see the files.
"""

from __future__ import annotations

import logging

from streammix.engines.ambient import ambient_client, workers_can_read
from streammix.engines.inprocess import InProcessEngine

__all__ = ["resolve_engine"]

logger = logging.getLogger(__name__)


def resolve_engine(engine, source=None):
    """The engine passes over ``source`` run on (the rule of this module's docstring).

    Parameters
    ----------
    engine : None, an engine (anything with ``map_reduce``) or a ``distributed.Client``
    source : a source, optional
        What the passes read; with ``engine=None`` it decides whether the
        ambient client is used.  Without it, in-process.
    """
    if engine is None:
        if source is not None:
            client = ambient_client()
            if client is not None:
                if workers_can_read(source, client):
                    from streammix.engines.dask_engine import DaskEngine
                    logger.info("passes run on the ambient Dask client (%s)",
                                getattr(client.scheduler, "address", client))
                    return DaskEngine(client)
                logger.info("a Dask client is running but its workers cannot read %s; "
                            "passes run in this process (pass engine=client to insist)",
                            type(source).__name__)
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
