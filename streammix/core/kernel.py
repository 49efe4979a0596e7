"""The compiled kernel (``streammix/core/_kernel.c``) and the switch that selects it.

This module is the only one that imports the compiled extension
``streammix.core._kernel``.  The kernel holds the E-step of one
chunk for one parameter set in one fused sweep (:func:`estep_chunk`, used by
:mod:`streammix.core.stats`) and the plain maximum-likelihood M-step of
online EM (:func:`ml_mstep`, used by :mod:`streammix.core.plain_mstep`),
and the sums of the standard-error pass (:func:`info_chunk`, used by
:mod:`streammix.algorithms.information`), and the rows' log-densities summed
by group of grouped classes (:func:`group_loglik`, used by
:mod:`streammix.core.grouped_estep`).  All have numpy equivalents,
which give the same results to rounding.

The kernel is optional: it is built where a C compiler was found (importing
this module without it gives a ``RuntimeWarning`` at the user's line that imported
streammix, once for a process and the processes it starts, unless ``STREAMMIX_KERNEL``
is ``0``).  When it
is built it runs unless the environment variable ``STREAMMIX_KERNEL`` is
``0`` at import; :func:`set_enabled` and :func:`enabled_as` switch it (the
tests compare the two paths this way).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: Set by the warning that the kernel is not built to the folder of this installation,
#: so that the child processes that inherit it (a ``LocalCluster``'s workers) and import
#: the same installation do not repeat it; another installation still warns.
_WARNED = "STREAMMIX_KERNEL_MISSING_WARNED"


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside streammix for a warning of the
    caller (the line of the user's code that imported streammix); frames of the import
    machinery are skipped by :func:`warnings.warn` itself and not counted."""
    def bootstrap(frame) -> bool:  # the rule of warnings.warn
        return "importlib" in frame.f_code.co_filename and "_bootstrap" in frame.f_code.co_filename

    frame, level = sys._getframe(1), 1
    while frame is not None and (bootstrap(frame) or frame.f_globals.get(
            "__name__", "").split(".")[0] in ("streammix", "importlib")):
        level += not bootstrap(frame)
        frame = frame.f_back
    return level


def _warn_not_built() -> None:
    """Warn that the kernel is not built, unless switched off or said in a parent process."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get("STREAMMIX_KERNEL", "1") == "0" or os.environ.get(_WARNED) == here:
        return
    os.environ[_WARNED] = here
    warnings.warn(
        "the compiled kernel of streammix (streammix.core._kernel) is not built, so its "
        "numpy code runs: the same results, several times slower.  Install a C compiler "
        "(GCC or clang) and reinstall streammix to build it; STREAMMIX_KERNEL=0 runs the "
        "numpy code without this warning", RuntimeWarning, stacklevel=_outside_stacklevel())


try:  # built by setup.py where a C compiler was found
    from streammix.core import _kernel as _compiled
except ImportError:  # depends on the build (tests/core/test_kernel_build.py imports without it)
    _compiled = None
    _warn_not_built()

#: The calling convention this module expects of the build (``API`` in ``_kernel.c``;
#: 2: ``info_chunk`` takes ``intercept``; 3: ``set_vector_lanes``).
KERNEL_API = 3

if _compiled is not None and getattr(_compiled, "API", 1) != KERNEL_API:  # pragma: no cover
    logging.getLogger(__name__).warning(
        "the compiled kernel %s is a build of another version (API %s, expected %s): "
        "the numpy code runs instead; rebuild it with pip install -e . (or "
        "python setup.py build_ext --inplace)", _compiled.__file__,
        getattr(_compiled, "API", 1), KERNEL_API)
    _compiled = None

__all__ = ["available", "enabled", "set_enabled", "enabled_as", "estep_chunk", "ml_mstep",
           "info_chunk", "set_tile_min_d", "set_vector_lanes", "group_loglik"]

_enabled = _compiled is not None and os.environ.get("STREAMMIX_KERNEL", "1") != "0"


def available() -> bool:
    """Whether the compiled kernel was built."""
    return _compiled is not None


def enabled() -> bool:
    """Whether the compiled kernel runs (else the numpy code it is tested against)."""
    return _enabled


def set_enabled(on: bool) -> None:
    """Run the compiled kernel (``True``) or the numpy code (``False``) from now on.

    Raises ``RuntimeError`` when asked for a kernel that was not built.
    """
    global _enabled
    if on and _compiled is None:
        raise RuntimeError("the compiled kernel of streammix was not built")
    _enabled = bool(on)


@contextmanager
def enabled_as(on: bool) -> Iterator[None]:
    """A ``with`` block in which the kernel is switched on or off, then restored."""
    before = _enabled
    set_enabled(on)
    try:
        yield
    finally:
        set_enabled(before)


def _not_built(*args):
    raise RuntimeError("the compiled kernel of streammix was not built")


if _compiled is not None:
    #: ``estep_chunk(FT, y, w, coef, b0, log_norm, inv2s2, g1, hsum, s2p, r0, out)``:
    #: add one chunk's E-step sums for one parameter set to the output arrays
    #: (the sums the numpy E-step of :mod:`streammix.core.stats` forms).
    estep_chunk = _compiled.estep_chunk
    #: ``ml_mstep(s0, s2, rx, r0, beta, N, floor, rcond, beta_new, sigma2, weights,
    #: s2d, rss) -> bool``: the plain ML M-step into the output arrays; False
    #: when the update is not the plain one (see :mod:`streammix.core.plain_mstep`).
    ml_mstep = _compiled.ml_mstep
    #: ``info_chunk(FT, y, w, beta, log_norm, inv_sigma2, noise, ..., intercept)``: add
    #: one chunk's sums of the standard-error pass (score, OPG and Louis' information;
    #: see :mod:`streammix.algorithms.information`, whose numpy code it is held equal
    #: to); with ``intercept`` true, FT holds the features and the kernel adds the ones.
    info_chunk = _compiled.info_chunk
    #: ``set_tile_min_d(d) -> previous``: the number of features from which the
    #: E-step forms each component's Gram matrix in register tiles (for tests and
    #: ``benchmarks/bench_estep.py``).
    set_tile_min_d = _compiled.set_tile_min_d
    #: ``set_vector_lanes(on) -> previous``: whether the kernel runs its code
    #: written with 8-double vector extensions (register-blocked residuals, the
    #: Gram's sums in vector lanes) or its plain loops; by default the former
    #: exactly where the CPU has AVX-512 (for tests and ``benchmarks/bench_estep.py``).
    set_vector_lanes = _compiled.set_vector_lanes
    #: ``group_loglik(X, beta, y, log_norm, inv2s2, codes, out)``: add each row's
    #: component log-densities (X the C-ordered (n, p) design) to its group's row of
    #: ``out`` (G, m) (used by :mod:`streammix.core.grouped_estep`, whose numpy code
    #: it is held equal to).
    #: None when the extension was built from a ``_kernel.c`` older than this function
    #: (a stale in-place build): the grouped E-step then takes its numpy path.
    group_loglik = getattr(_compiled, "group_loglik", None)
else:  # pragma: no cover - depends on the build
    estep_chunk = ml_mstep = info_chunk = set_tile_min_d = set_vector_lanes = _not_built
    group_loglik = None
