"""An in-process pass holds numpy's and scipy's BLAS to one thread.

The engine already runs one thread per CPU; OpenBLAS's own threads inside
each of them would spin against the engine's.  A pass on one thread is
limited too (its products are too narrow for BLAS threads to pay).  The
limit holds only while the pass runs.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.linalg  # noqa: F401 - its OpenBLAS is a second library to limit
from threadpoolctl import threadpool_info, threadpool_limits

from streammix import InProcessEngine
from streammix.data.arrays import ArraySource


def _blas_threads() -> list[int]:
    return sorted(info["num_threads"] for info in threadpool_info()
                  if info["user_api"] == "blas")


class RecordBlasThreads:
    """A map function that records the BLAS threads its chunk saw (and a matrix product)."""

    releases_gil = True

    def __init__(self):
        self.seen: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, chunk):
        with self.lock:
            self.seen.append(_blas_threads())
        return float(np.sum(chunk.X.T @ chunk.X))


@pytest.fixture
def source():
    rng = np.random.default_rng(0)
    return ArraySource(rng.normal(size=(4000, 3)), rng.normal(size=4000), chunk_rows=500)


def test_a_threaded_pass_runs_blas_on_one_thread_and_restores_it(source):
    assert len(source.plan()) == 8
    record = RecordBlasThreads()
    with threadpool_limits(limits=3, user_api="blas"):
        assert set(_blas_threads()) == {3}
        total = InProcessEngine(2).map_reduce(source, record, 0.0)
        assert set(_blas_threads()) == {3}
    assert len(record.seen) == 8
    assert all(set(seen) == {1} for seen in record.seen), record.seen
    # the products are those of one thread: the limit does not change the result
    assert total == InProcessEngine(1).map_reduce(source, RecordBlasThreads(), 0.0)


def test_a_pass_on_one_thread_runs_blas_on_one_thread_too(source):
    record = RecordBlasThreads()
    with threadpool_limits(limits=3, user_api="blas"):
        InProcessEngine(1).map_reduce(source, record, 0.0)
        assert set(_blas_threads()) == {3}
    assert all(set(seen) == {1} for seen in record.seen), record.seen
