"""One BLAS thread while a fit runs: the engine's threads are the parallelism.

The in-process engine runs a pass on one thread per core, and pass 0's
moments (small, tall products such as XᵀX of a chunk) call BLAS from each of
them.  OpenBLAS would start its own threads inside every call, so two engine
threads each ran two BLAS threads on two cores: on a busy machine they spin
against each other, and pass 0 at n = 2M, d = 5 took 1.2–1.9 s instead of
0.3–0.6 s (``benchmarks/bench_fit.py``).  The sample work between passes
(least squares and M-steps on at most ``init_sample_size`` rows, matrices of
a few columns) gains nothing from BLAS threads either.  So a fit limits BLAS
to one thread for its duration (threadpoolctl, the mechanism scikit-learn
uses) and restores the caller's setting afterwards.  Results do not depend
on it: each product is the same sum, computed by one thread.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

__all__ = ["one_blas_thread"]


@functools.lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Limit the BLAS libraries loaded in this process to one thread, then restore."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
