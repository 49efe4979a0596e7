"""One BLAS thread while a fit or an in-process pass runs: the engine's threads are the parallelism.

The in-process engine runs a pass on one thread per core, and BLAS is
called from each of them (pass 0's moments, small tall products such as XᵀX
of a chunk; the numpy E-step and information pass).  OpenBLAS would start
its own threads inside every call, so two engine threads each ran two BLAS
threads on two cores: on a busy machine they spin against each other, and
pass 0 at n = 2M, d = 5 took 1.2–1.9 s instead of 0.3–0.6 s
(``benchmarks/bench_fit.py``).  The sample work between passes (least
squares and M-steps on at most ``init_sample_size`` rows, matrices of a few
columns) gains nothing from BLAS threads either.  So a fit limits BLAS to one
thread for its duration, and so does every pass of
:class:`~streammix.engines.inprocess.InProcessEngine` (``compute_se``,
predictions), with threadpoolctl, the mechanism scikit-learn uses; the
caller's setting is restored afterwards.  The limit is process-wide while it
holds.  Results do not depend on it: each product is the same sum, computed
by one thread.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from typing import Any

__all__ = ["one_blas_thread"]

#: The threadpoolctl controller of the BLAS libraries loaded when it was made, by
#: whether ``scipy.linalg`` (whose OpenBLAS is not numpy's) was loaded then.
_controllers: dict[bool, Any] = {}


def one_blas_thread() -> AbstractContextManager:
    """A ``with`` block in which the BLAS libraries loaded in this process use one thread."""
    from threadpoolctl import ThreadpoolController  # a dependency: pyproject.toml says why

    key = "scipy.linalg" in sys.modules
    controller = _controllers.get(key)
    if controller is None:  # inspecting the loaded libraries takes about 2 ms
        controller = _controllers[key] = ThreadpoolController()
    return controller.limit(limits=1, user_api="blas")
