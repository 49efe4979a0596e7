"""Run the passes on a Dask cluster.

One pass is one flat graph, sent to the scheduler in one message: a task per
chunk descriptor that reads the chunk and applies the map function, and a
tree of ``+`` over the results in plan order, with the same shape as
:func:`streammix.core.reduce.tree_sum` (each ``+`` task computes up to three
levels of it, :func:`~streammix.engines.dask_graph.reduction`).  So a pass on
a cluster gives bit-for-bit the result of the in-process engine, for any number of workers -- on
machines with the same instruction set: the compiled E-step (and BLAS) pick
AVX-512, AVX2 or baseline code at run time, and these round differently.  Only the
descriptors go to the workers and only the reduced value (a few KB) comes
back; nothing is kept between passes unless ``cache=True``.

With ``cache=True`` the chunks already sit in the workers' memory and a map
task is short, so the per-task cost of the scheduler would dominate: one map
task then takes an aligned run of 2**k consecutive chunks (kept on one worker)
and sums their results with ``tree_sum``.  The same is done for chunks read
from storage: a task reads a run of them, one at a time, up to about
:data:`~streammix.engines.dask_graph.MIN_TASK_ROWS` rows (many small files;
and 4 row groups of 131072 rows, so that a pass pays fewer tasks, transfers
and merges of statistics).
The subtrees of a binary counter over aligned power-of-two runs are exactly
those runs' ``tree_sum``, so the result is still bit-for-bit that of the
in-process engine.
"""

from __future__ import annotations

import logging
import numbers
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from streammix.engines.dask_graph import (
    _apply,
    _apply_run,
    _read_apply,
    _read_apply_run,
    _read_input,
    _read_input_apply,
    describe_descriptor,
    fused_levels,
    reduction,
    run_length,
    small_chunk_run,
)
from streammix.exceptions import (
    ChunkCrashError,
    ClusterLostError,
    ClusterTimeoutError,
    NoClientError,
)

__all__ = ["DaskEngine"]

logger = logging.getLogger(__name__)


class DaskEngine:
    """Run each pass as one graph on a ``distributed`` cluster.

    Parameters
    ----------
    client : distributed.Client, optional
        The client to use; default the ambient one
        (``distributed.get_client()``) at each pass.  The engine never
        starts a cluster.
    cache : bool, default=False
        Keep the decoded chunks of the last source on the workers (as
        futures keyed by descriptor), so that later passes skip reading and
        decoding.  The chunks take the memory of the data on the workers;
        :meth:`clear_cache` releases them.
    split_every : int, default=2
        Fan-in of the reduction tree.  With 2 the tree is that of the
        in-process engine, so results are bit-identical to it; other values
        differ in rounding only.
    retries : int, default=2
        A map task (read a chunk, E-step) that raises is run again up to this
        many times (``retries=`` of ``Client.submit``), e.g. after a
        transient read error of a network file system.  A map task's result
        is its return value only, so a retried chunk is counted once.  Tasks
        whose *worker dies* are re-run by the scheduler instead, up to
        ``distributed.scheduler.allowed-failures`` times; a chunk that kills
        that many workers stops the pass with :class:`ChunkCrashError`
        naming the chunk (file and row groups).
    worker_timeout : float, default=60
        Seconds a pass waits for the cluster: for the scheduler to answer
        (it is asked about the pass's progress about once a second while the
        pass runs), and for a worker when none is connected.  Beyond it the
        pass stops with :class:`ClusterTimeoutError` saying which (a
        stopped or unreachable scheduler; no workers).
    pass_timeout : float, default=600
        Seconds a pass may go without any of its tasks finishing (workers
        connected, scheduler answering, nothing done: stuck or dead-locked
        workers, or a single task that takes longer) before it stops with
        :class:`ClusterTimeoutError`.  Give more for data whose chunks take
        longer than that to read and process.
    on_wait : callable, optional
        ``on_wait(message)`` is called while a pass waits on the cluster
        (``"waiting for workers: none connected to tcp://… (4 s of 60)"``)
        and ``on_wait(None)`` when the wait ends; the command line shows it
        on its progress line.

    Notes
    -----
    Sources that read from storage (Parquet files) are read on the workers
    from their descriptors.  In-memory arrays (:class:`~streammix.ArraySource`, or any
    source with ``read_on_client = True``) live on the client, so their
    chunks are sent to the workers with the tasks (once, with ``cache``).
    Sources with ``dask_inputs`` (:class:`streammix.DaskSource`) have their
    partitions computed on the workers.
    """

    def __init__(self, client=None, *, cache: bool = False, split_every: int = 2,
                 retries: int = 2, worker_timeout: float = 60.0, pass_timeout: float = 600.0,
                 on_wait: Callable | None = None):
        if isinstance(split_every, bool) or int(split_every) < 2:
            raise ValueError(f"split_every must be an integer >= 2, got {split_every!r}")
        if isinstance(retries, bool) or int(retries) < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        for name, value in (("worker_timeout", worker_timeout), ("pass_timeout", pass_timeout)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        self.retries = int(retries)
        self.worker_timeout = float(worker_timeout)
        self.pass_timeout = float(pass_timeout)
        self.on_wait = on_wait
        #: ``on_progress(fraction)``: the share of a pass's tasks done, called as
        #: the pass is polled (the command line's progress within a pass).
        self.on_progress: Callable | None = None
        self.client = client
        self.cache = bool(cache)
        self.split_every = int(split_every)
        self._cached_source = None
        self._cached: dict = {}
        self._chunk_keys: dict = {}

    def get_client(self):
        """The client passes run on: the given one, or the ambient one."""
        if self.client is not None:
            return self.client
        try:
            from distributed import get_client
            return get_client()
        except (ImportError, ValueError):
            raise NoClientError(
                "DaskEngine needs a running Dask cluster: pass a distributed.Client "
                "(DaskEngine(client)) or create one first, e.g. "
                "distributed.Client('tcp://scheduler:8786'); streammix never starts a "
                "cluster itself") from None

    def map_reduce(self, source, func: Callable, zero: Any) -> Any:
        """``tree_sum(func(source.read(d)) for d in source.plan())`` on the cluster."""
        client = self.get_client()
        plan = source.plan()
        if not plan:
            return zero
        token = uuid.uuid4().hex[:12]
        graph: dict = {}
        if self.cache:
            leaves, runs = self._cached_map(client, source, func, plan, token, graph)
        else:
            leaves, runs = self._map(client, source, func, plan, token, graph)
        top = reduction(graph, token, leaves, self.split_every, fused_levels(func))
        total = client.get(graph, top, sync=False, retries=self.retries)
        error = None
        try:
            return self._wait(client, total, token, len(graph))
        except Exception as exc:  # re-raised below, once the futures are released
            error = _lost_error(exc, client) or _crash_error(exc, source, plan, runs,
                                                             self._chunk_keys)
            exc.with_traceback(None)  # its frames hold the futures of this pass
        finally:
            graph.clear()  # release every future of this pass
            del total
        # Without its traceback, the error no longer holds the frames (and so the
        # futures) of the failed pass: the scheduler can forget them.
        raise error.with_traceback(None)

    def _map(self, client, source, func, plan, token, graph):
        keys = [f"streammix-map-{token}-{i}" for i in range(len(plan))]
        if getattr(source, "read_on_client", False):
            for key, d in zip(keys, plan, strict=True):
                graph[key] = (_apply, func, source.read(d))
        elif hasattr(source, "dask_inputs"):
            inputs = client.compute(source.dask_inputs(plan))
            for key, d, value in zip(keys, plan, inputs, strict=True):
                graph[key] = (_read_input_apply, source, func, d, value)
        else:
            g = 1
            if self.split_every == 2:
                g = small_chunk_run(plan, sum(self._nthreads(client).values()))
            if g > 1:
                return self._runs(graph, token, plan, g, _read_apply_run, source, func)
            for key, d in zip(keys, plan, strict=True):
                graph[key] = (_read_apply, source, func, d)
        return keys, {key: [i] for i, key in enumerate(keys)}

    @staticmethod
    def _runs(graph, token, items, g, fn, *head):
        """Map tasks ``fn(*head, *run)`` over aligned runs of ``g`` items."""
        leaves, runs = [], {}
        for start in range(0, len(items), g):
            key = f"streammix-map-{token}-{start}"
            graph[key] = (fn, *head, *items[start:start + g])
            leaves.append(key)
            runs[key] = list(range(start, min(start + g, len(items))))
        return leaves, runs

    def _cached_map(self, client, source, func, plan, token, graph):
        nthreads = self._nthreads(client)  # one round trip to the scheduler
        g = run_length(len(plan), sum(nthreads.values())) if self.split_every == 2 else 1
        chunks = self._chunk_futures(client, source, plan, g, sorted(nthreads))
        return self._runs(graph, token, chunks, g, _apply_run, func)

    def _chunk_futures(self, client, source, plan, run: int, workers: list) -> list:
        if self._cached_source is not source:
            self.clear_cache()
            self._cached_source = source
        missing = [d for d in plan if d not in self._cached]
        if missing:
            token = uuid.uuid4().hex[:12]
            keys = [f"streammix-chunk-{token}-{i}" for i in range(len(missing))]
            # Each run of ``run`` chunks (aligned in the plan) is read on one
            # worker, round robin, so that its map task finds them all in place.
            position = {d: i for i, d in enumerate(plan)}

            def place(d) -> dict:
                if not workers:  # none yet (an adaptive cluster): the scheduler decides
                    return {}
                return {"workers": [workers[(position[d] // run) % len(workers)]],
                        "allow_other_workers": True}

            if getattr(source, "read_on_client", False):
                futures = [client.scatter(source.read(d), workers=place(d).get("workers"))
                           for d in missing]
            elif hasattr(source, "dask_inputs"):
                inputs = client.compute(source.dask_inputs(missing))
                futures = [client.submit(_read_input, source, d, inputs[i], key=keys[i],
                                         **place(d))
                           for i, d in enumerate(missing)]
            else:
                futures = [client.submit(source.read, d, key=keys[i], retries=self.retries,
                                         **place(d))
                           for i, d in enumerate(missing)]
            self._cached.update(zip(missing, futures, strict=True))
            self._chunk_keys.update({f.key: d for d, f in zip(missing, futures, strict=True)})
            logger.info("caching %d chunks on the workers", len(missing))
        return [self._cached[d] for d in plan]

    def clear_cache(self) -> None:
        """Release the chunks kept on the workers."""
        for future in self._cached.values():
            future.release()
        self._cached = {}
        self._chunk_keys = {}
        self._cached_source = None

    # ------------------------------------------------------------ waiting
    def _nthreads(self, client) -> dict:
        """``client.nthreads()``, or :class:`ClusterTimeoutError` if the scheduler is mute."""
        try:
            return client.nthreads(callback_timeout=self.worker_timeout)
        except TimeoutError:
            raise self._mute(client) from None
        except OSError:  # CommClosedError, a reset connection: the scheduler went away
            raise _lost(client) from None

    def _mute(self, client) -> ClusterTimeoutError:
        return ClusterTimeoutError(
            f"the scheduler at {_address(client)} did not answer for {self.worker_timeout:g} s "
            "(stopped, overloaded or unreachable); the pass was abandoned (worker_timeout, "
            "--worker-timeout)")

    def _waiting(self, message: str | None) -> None:
        if self.on_wait is not None:
            self.on_wait(message)
        if message is not None:
            logger.debug("%s", message)

    def _wait(self, client, total, token: str, n_tasks: int):
        """The result of the pass's ``total`` future, within the timeouts."""
        poll = min(1.0, self.worker_timeout / 4, self.pass_timeout / 4)
        start = last_progress = time.monotonic()
        left, no_workers_since, waiting = n_tasks, None, False
        # Wait on an event, not on total.result(timeout=...): each TimeoutError of
        # the latter leaves a traceback whose frames hold the future in a reference
        # cycle, so the scheduler kept the pass's result until a garbage collection.
        done = threading.Event()
        total.add_done_callback(lambda _future: done.set())
        while True:
            if done.wait(poll):
                return total.result()
            try:
                n_workers, now_left = client.run_on_scheduler(
                    _pass_state, token, callback_timeout=self.worker_timeout)
            except TimeoutError:
                raise self._mute(client) from None
            except OSError:
                raise _lost(client) from None
            now = time.monotonic()
            if now_left < left:
                left, last_progress = now_left, now
                if self.on_progress is not None:
                    self.on_progress((n_tasks - left) / n_tasks)
            if n_workers == 0:
                no_workers_since = now if no_workers_since is None else no_workers_since
                waited = now - no_workers_since
                if waited > self.worker_timeout:
                    raise ClusterTimeoutError(
                        f"no worker was connected to the scheduler at {_address(client)} for "
                        f"{self.worker_timeout:g} s; the pass was abandoned with {left} of "
                        f"{n_tasks} tasks left (worker_timeout, --worker-timeout)")
                self._waiting(f"waiting for workers: none connected to {_address(client)} "
                              f"({waited:.0f} s of {self.worker_timeout:g})")
                waiting = True
                continue
            no_workers_since = None
            stalled = now - last_progress
            if stalled > self.pass_timeout:
                raise ClusterTimeoutError(
                    f"no task of the pass finished in {self.pass_timeout:g} s ({left} of "
                    f"{n_tasks} tasks left, {n_workers} workers connected to "
                    f"{_address(client)}); the pass was abandoned (pass_timeout, "
                    "--pass-timeout)")
            if stalled >= max(min(5.0, self.pass_timeout / 2), 2 * poll):
                self._waiting(f"waiting for tasks: {left} of {n_tasks} left, none finished "
                              f"for {stalled:.0f} s ({n_workers} workers; "
                              f"{now - start:.0f} s into the pass)")
                waiting = True
            elif waiting:
                self._waiting(None)
                waiting = False

    def __deepcopy__(self, memo) -> DaskEngine:
        # A copy (e.g. by sklearn.clone) keeps the same client, not the cached chunks.
        return type(self)(self.client, cache=self.cache, split_every=self.split_every,
                          retries=self.retries, worker_timeout=self.worker_timeout,
                          pass_timeout=self.pass_timeout, on_wait=self.on_wait)

    def __repr__(self) -> str:
        where = "ambient client" if self.client is None else repr(self.client)
        return (f"DaskEngine({where}, cache={self.cache}, split_every={self.split_every}, "
                f"retries={self.retries})")


def _address(client) -> str:
    try:
        return str(client.scheduler.address)
    except AttributeError:  # pragma: no cover - a client without a scheduler rpc
        return "the scheduler"


def _pass_state(token: str, dask_scheduler=None) -> tuple[int, int]:
    """On the scheduler: (workers connected, tasks of pass ``token`` not yet done)."""
    done = ("memory", "released", "forgotten", "erred")
    left = sum(1 for key, ts in dask_scheduler.tasks.items()
               if token in str(key) and ts.state not in done)
    return len(dask_scheduler.workers), left


def _lost_error(exc: Exception, client) -> ClusterLostError | None:
    """A pass's futures cancelled because the scheduler went away -> :class:`ClusterLostError`."""
    reason = str(getattr(exc, "reason", "")) or " ".join(
        str(getattr(e, "reason", "")) for e in getattr(exc, "errors", ()))
    if "scheduler-connection-lost" not in reason:
        return None  # (a ClusterLostError of a scheduler call passes through _crash_error)
    return _lost(client)


def _lost(client) -> ClusterLostError:
    return ClusterLostError(
        f"lost the connection to the scheduler at {_address(client)} (its process ended or "
        "the network failed); the pass was abandoned")


def _crash_error(exc: Exception, source, plan, runs: dict, chunk_keys: dict) -> Exception:
    """``KilledWorker`` of a map or cache-read task -> :class:`ChunkCrashError` naming the chunk."""
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - distributed is a dependency
        return exc
    if not isinstance(exc, KilledWorker):
        return exc
    key = str(exc.task)
    tries = exc.allowed_failures + 1
    if key in runs or key in chunk_keys:
        run = [chunk_keys[key]] if key in chunk_keys else [plan[i] for i in runs[key]]
        what = describe_descriptor(source, run[0])
        if len(run) > 1:
            what = (f"one of {len(run)} consecutive chunks read by one task, from {what} "
                    f"to {describe_descriptor(source, run[-1])}")
            how = "reading or processing one of these chunks"
        else:
            how = "reading or processing this chunk"
        return ChunkCrashError(
            f"{what}: {how} killed {tries} worker processes in a "
            "row, so the fit stopped (the chunk may crash its reader or need more memory "
            "than a worker has; check the file, or give workers more memory)",
            run[0] if len(run) == 1 else None, run)
    return ChunkCrashError(f"task {key} killed {tries} worker processes in a row, so the fit "
                           "stopped (see the worker logs)")
