"""Fixtures of the whole suite; helpers live in the ``support`` package."""

from __future__ import annotations

import pytest
from support.mixtures import make_mixture

from streammix.core import kernel


@pytest.fixture
def kernel_switch():
    """``kernel_switch(on)`` runs the compiled kernel or the numpy code; restored after."""
    before = kernel.enabled()
    yield kernel.set_enabled
    kernel.set_enabled(before)


@pytest.fixture
def small_mixture():
    return make_mixture(3000, [0.4, 0.6], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]], [1.0, 0.7],
                        seed=3)




@pytest.fixture(scope="session")
def two_workers():
    """One ``LocalCluster`` of 2 worker processes (1 thread each) for the whole run.

    Starting a cluster costs seconds (each worker process imports streammix), so the
    tests that only run passes on 2 workers share this one and open their own
    ``Client`` on it (``two_worker_client``).  Tests that need workers started with
    their own environment, a memory limit or a scheduler of their own (the reliability,
    hang, S3 and command-line tests) start their own cluster.  The Nanny restarts a
    worker that a test kills, and ``two_worker_client`` waits for both before a test
    starts.
    """
    import dask
    from distributed import LocalCluster

    # A LocalCluster closes a killed worker's Nanny for good when no worker of that name is
    # back within lost-worker-timeout (15 s by default): too short for a restart on a loaded
    # machine, after which the session would run on one worker.
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "10 minutes"}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address="127.0.0.1:0") as cluster:
        yield cluster


@pytest.fixture
def two_worker_client(two_workers):
    """A ``Client`` of the shared 2-worker cluster, closed after the test."""
    from distributed import Client
    with Client(two_workers) as client:
        client.wait_for_workers(2, timeout=60)
        yield client
