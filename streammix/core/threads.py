"""Worker threads kept between passes: one pool per number of threads, per process.

A fit runs ten or so threaded passes (pass 0, the starts' refinement, the EM
passes), and a new :class:`~concurrent.futures.ThreadPoolExecutor` for each
started its threads again: ``Thread.start`` waits until the new thread runs,
about 0.1 ms on an idle machine and 2-8 ms on a loaded one (a pool of 2
threads, created, given 4 tasks and shut down: 4.1 ms median against
0.04 ms for the same tasks on a kept pool, load average 5.8 on 2 cores).
:func:`shared_executor` gives every pass the same threads instead; their
per-thread scratch memory (:mod:`streammix.core.moments`) is then kept too.

A pass waits for its own tasks only and, however it ends, cancels those not
started and waits for those running (:func:`finish`), as leaving a ``with``
block of its own pool did.  A pass run inside one of these threads (a map
function that runs a pass) gets None from :func:`shared_executor` and, from
:func:`thread_pool`, a pool of its own, so that it never waits for tasks
queued behind itself; a child process after ``fork`` starts its own pools.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

__all__ = ["shared_executor", "thread_pool", "finish"]

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}
_local = threading.local()


def _mark_worker() -> None:
    _local.worker = True


def _forget_pools() -> None:  # in a forked child: the parent's threads are not there
    global _lock
    _lock = threading.Lock()
    _pools.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def shared_executor(threads: int) -> ThreadPoolExecutor | None:
    """The kept pool of ``threads`` worker threads (made at its first use); None when
    called from one of these workers (the caller then makes a pool of its own)."""
    if getattr(_local, "worker", False):
        return None
    with _lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = ThreadPoolExecutor(threads, thread_name_prefix="streammix",
                                      initializer=_mark_worker)
            _pools[threads] = pool
        return pool


@contextlib.contextmanager
def thread_pool(threads: int) -> Iterator[ThreadPoolExecutor]:
    """The kept pool of ``threads`` threads (:func:`shared_executor`); in one of its
    workers, a pool of its own, shut down (its tasks waited for) on leaving."""
    pool = shared_executor(threads)
    if pool is not None:
        yield pool
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="streammix") as own:
        yield own


def finish(futures) -> None:
    """Cancel the ``futures`` not started and wait for those running (none of them
    is left working when a pass returns or raises)."""
    futures = [f for f in futures if isinstance(f, Future)]
    for future in futures:
        future.cancel()
    wait(futures)
