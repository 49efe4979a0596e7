"""Where the map-reduce of a pass runs.

An engine has one method, ``map_reduce(source, func, zero)``: apply ``func``
to every chunk of the source's plan and sum the results with ``+`` in a
fixed binary tree over the plan order, so that the result does not depend
on where or in which order chunks were computed.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from streammix.core import kernel
from streammix.core.reduce import tree_sum
from streammix.core.threads import finish, thread_pool
from streammix.engines.blas_threads import one_blas_thread

__all__ = ["InProcessEngine", "read_with_retries", "is_transient"]

logger = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """Whether a read error may go away if the read is tried again.

    ``OSError`` (a flaky disk or network file system) and errors marked with
    a true ``transient`` attribute (a :class:`~streammix.DataError`
    that a :class:`~streammix.ParquetSource` raised for an I/O
    error) are; bad data is not.
    """
    return isinstance(exc, OSError) or bool(getattr(exc, "transient", False))


def read_with_retries(source, descriptor, retries: int = 2, backoff: float = 0.1):
    """``source.read(descriptor)``, tried again after transient errors.

    Attempt ``k`` (from 1) that fails with a transient error (see
    :func:`is_transient`) is followed by a pause of ``backoff * 2**(k-1)``
    seconds and another attempt, at most ``retries`` times; the last
    error is raised.  Other errors are raised at once.
    """
    attempt = 0
    while True:
        try:
            return source.read(descriptor)
        except Exception as exc:
            if attempt >= retries or not is_transient(exc):
                raise
            pause = backoff * 2 ** attempt
            attempt += 1
            logger.warning("reading %r failed (%s: %s); attempt %d of %d in %.2g s",
                           descriptor, type(exc).__name__, exc, attempt + 1, retries + 1,
                           pause)
            time.sleep(pause)


def default_threads() -> int:
    """Threads of an :class:`InProcessEngine` made without ``n_threads``."""
    if not kernel.enabled():
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


class InProcessEngine:
    """Run the passes in this process.

    With ``n_threads > 1`` chunks are read and reduced by a pool of threads,
    at most ``n_threads`` chunks at a time, so the memory of a pass is
    bounded by ``n_threads`` decoded chunks plus O(log C) partial
    statistics.  Results are summed in plan order, so they do not depend on
    the number of threads.

    Parameters
    ----------
    n_threads : int, optional
        Worker threads.  Default: one per CPU available to the process (at
        most 8) for map functions that say they release the GIL (a true
        ``releases_gil`` attribute: the E-step tasks when the compiled
        kernel runs, as Parquet decoding does), and 1 for the others, whose
        many short numpy calls contend for the GIL.  A number given here is
        used for every pass.
    retries : int, default=2
        A chunk read that fails with a transient error (``OSError``, or an
        error marked ``transient``) is tried again up to this many times.
    backoff : float, default=0.1
        Seconds before the first retry; doubled before each further one
        (0.1 s, 0.2 s, ...).

    Notes
    -----
    While a pass runs, numpy's and scipy's BLAS are held to one thread each
    (:func:`~streammix.engines.blas_threads.one_blas_thread`): a threaded
    pass already uses every CPU, and on one thread the products of a chunk's
    blocks are too narrow for BLAS threads to pay (the numpy information pass
    at n = 2M took 0.8 s on one BLAS thread and 0.8–8.6 s on OpenBLAS's
    default two on a busy machine, ``benchmarks/bench_se.py``).
    """

    def __init__(self, n_threads: int | None = None, *, retries: int = 2,
                 backoff: float = 0.1):
        self._fixed = n_threads is not None
        if n_threads is None:
            n_threads = default_threads()
        if int(n_threads) < 1:
            raise ValueError(f"n_threads must be >= 1, got {n_threads}")
        if isinstance(retries, bool) or int(retries) < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        if not backoff >= 0:
            raise ValueError(f"backoff must be >= 0, got {backoff!r}")
        self.n_threads = int(n_threads)
        self.retries = int(retries)
        self.backoff = float(backoff)
        #: ``on_progress(fraction)`` is called as each chunk of a pass is done
        #: (the command line's progress within a pass); None: not called.
        self.on_progress: Callable | None = None

    def _read(self, source, descriptor):
        return read_with_retries(source, descriptor, self.retries, self.backoff)

    def map_reduce(self, source, func: Callable, zero: Any) -> Any:
        plan = source.plan()
        threads = self.threads_for(func)
        if threads > 1 and len(plan) > 1:
            values = self._threaded(source, func, plan, threads)
        else:
            values = (func(self._read(source, d)) for d in plan)
        if self.on_progress is not None:
            values = _reporting(values, len(plan), self.on_progress)
        with one_blas_thread():
            return tree_sum(values, zero)

    def threads_for(self, func) -> int:
        """Threads a pass of ``func`` runs on (see ``n_threads``)."""
        if self._fixed or getattr(func, "releases_gil", False):
            return self.n_threads
        return 1

    def _threaded(self, source, func, plan, threads: int) -> Iterator[Any]:
        def task(descriptor):
            return func(self._read(source, descriptor))

        # threads kept between passes (a pool of its own inside one of them)
        with thread_pool(threads) as pool:
            pending: deque = deque()
            try:
                for descriptor in plan:
                    if len(pending) >= threads:
                        yield pending.popleft().result()
                    pending.append(pool.submit(task, descriptor))
                while pending:
                    yield pending.popleft().result()
            finally:
                finish(pending)

    def __repr__(self) -> str:
        return (f"InProcessEngine(n_threads={self.n_threads}, retries={self.retries}, "
                f"backoff={self.backoff})")


def _reporting(values: Iterator[Any], n: int, report: Callable) -> Iterator[Any]:
    """``values``, calling ``report(done / n)`` after each."""
    for done, value in enumerate(values, start=1):
        yield value
        report(done / n)
