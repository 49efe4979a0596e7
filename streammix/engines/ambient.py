"""The ambient Dask client: the ``distributed.Client`` the user has running, if any.

A library never starts a cluster behind its user's back, but it uses the one
the user started (as dask-ml and dask-glm do).  :func:`ambient_client` finds
it without importing ``distributed``: a program that never imported it has
no client, and fitting arrays stays light.  :func:`workers_can_read` says
whether the workers of a client can read a source: sources say where they
can be read in their ``readable_on`` attribute.
"""

from __future__ import annotations

import logging
import socket
import sys
from urllib.parse import urlparse

__all__ = ["ambient_client", "workers_can_read", "READABLE_ON"]

logger = logging.getLogger(__name__)

#: Where a source can be read (its ``readable_on``): only in this process (in-memory
#: arrays; the default of a source that does not say), on any host (URLs, Dask
#: collections), or on this host (local paths: a cluster whose workers all run here).
READABLE_ON = ("client", "any host", "this host")


def ambient_client():
    """The default ``distributed.Client`` of this process, or None.

    ``distributed`` is not imported here: without it in ``sys.modules`` no
    client can exist.  Inside a task on a worker the worker's own client is
    not ambient (a task's passes run where the task runs).
    """
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        from distributed import get_worker
        get_worker()
        return None  # in a task: no nested passes on the cluster
    except (ImportError, ValueError):
        pass
    try:
        client = distributed.default_client()
    except (ValueError, AttributeError):
        return None
    if getattr(client, "status", "running") not in ("running", "connecting", "newly-created"):
        return None
    return client


def _local_hosts() -> set[str]:
    hosts = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
    try:
        name = socket.gethostname()
        hosts |= {name, socket.getfqdn()}
        hosts |= {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:  # pragma: no cover - no resolver
        pass
    return hosts


def workers_on_this_host(client) -> bool:
    """True when every worker of ``client`` runs on this machine (a local path is
    then readable by all of them)."""
    try:
        workers = client.scheduler_info().get("workers", {})
    except Exception:  # noqa: BLE001 - a scheduler that does not answer: assume not
        return False
    if not workers:
        return False
    local = _local_hosts()
    for address in workers:
        host = urlparse(address).hostname if "://" in address else address.rsplit(":", 1)[0]
        if host not in local:
            return False
    return True


def workers_can_read(source, client) -> bool:
    """Whether the workers of ``client`` can read ``source`` (see :data:`READABLE_ON`)."""
    where = getattr(source, "readable_on", "client")
    if where == "any host":
        return True
    if where == "this host":
        return workers_on_this_host(client)
    return False
