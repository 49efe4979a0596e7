"""The compiled E-step kernel is held equal to the numpy E-step it replaces."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
from support.mixtures import information_problem, kernel_and_numpy

from streammix import MixtureOfLinearRegressions, MixtureParams
from streammix.algorithms.information import information_stats
from streammix.core import kernel, stats
from streammix.core.stats import estep_features_many

needs_kernel = pytest.mark.skipif(not kernel.available(), reason="compiled kernel not built")

FIELDS = ("s0", "s2", "rx", "r0", "loglik", "class_loglik", "entropy", "sum_w")


def _params(rng, m, p, spread=1.0):
    return MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, p)) * spread,
                         rng.uniform(0.3, 3.0, size=m))


def _assert_close(a, b, rtol=1e-12):
    for name in FIELDS:
        x, ref = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
        if name == "entropy":  # derived from loglik by a difference: its rounding is loglik's
            scale = max(scale, abs(b.loglik))
        np.testing.assert_allclose(x, ref, rtol=0, atol=rtol * scale, err_msg=name)
    assert a.n_rows == b.n_rows
    np.testing.assert_array_equal(a.center, b.center)


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "x86_64"
                         and (shutil.which("gcc") or shutil.which("cc"))),
                    reason="the kernel is only required where it can be compiled")
def test_kernel_is_built_where_a_compiler_exists():
    # CI builds on x86-64 Linux with GCC: a silently skipped extension would
    # leave the numpy path running and this suite would not notice otherwise.
    assert kernel.available()
    assert kernel.enabled() or os.environ.get("STREAMMIX_KERNEL") == "0"


@needs_kernel
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("d,m", [(0, 1), (1, 2), (4, 3), (9, 4), (6, 7), (22, 2)])
@pytest.mark.parametrize("n", [0, 1, 255, 256, 257, 3001])
def test_kernel_equals_numpy_estep(kernel_switch, intercept, d, m, n):
    if d == 0 and not intercept:
        pytest.skip("no columns at all")
    rng = np.random.default_rng(d * 100 + m * 10 + n)
    FT = rng.normal(size=(d, n)) * rng.uniform(0.1, 10, size=(d, 1))
    y = rng.normal(size=n) * 4
    w = rng.uniform(0.0, 3.0, size=n)
    w[::7] = 0.0
    p = d + int(intercept)
    params_seq = [_params(rng, m, p), _params(rng, m, p, spread=3.0)]
    fast, slow = kernel_and_numpy(kernel_switch, FT, y, w, params_seq, intercept)
    for a, b in zip(fast, slow, strict=True):
        _assert_close(a, b)


@needs_kernel
@pytest.mark.parametrize("tile_min_d", [0, 1000])
@pytest.mark.parametrize("d,m", [(1, 3), (3, 3), (5, 3), (8, 3), (13, 3), (19, 5), (20, 4),
                                 (23, 9), (60, 4)])
def test_kernel_gram_paths_equal_numpy(kernel_switch, tile_min_d, d, m):
    # The E-step forms its Gram matrices with dot4 below a number of features
    # and in 4 x 4 tiles from it on: both paths, at every d, in both layouts.
    # The tiles cover the columns [x, 1] padded to a multiple of 4 and the
    # components padded to a multiple of 4 (d + 1 = 20 and 24 need no padding,
    # m = 4 neither), and the last block has 1500 mod 256 = 220 rows.  The tiles'
    # sums stay in vector lanes over the chunk up to 512 tiles in all (d = 60,
    # m = 4 has 544: the tiles that sum each block), in blocks of 128 rows (the
    # last has 1500 mod 128 = 92), padded to a multiple of 8 (more in
    # test_kernel_gram.py).
    rng = np.random.default_rng(d + tile_min_d)
    X = rng.normal(size=(1500, d)) * rng.uniform(0.1, 10, size=d)
    y, w = rng.normal(size=1500) * 3, rng.uniform(0, 2, size=1500)
    prm = [_params(rng, m, d + 1)]
    previous = kernel.set_tile_min_d(tile_min_d)
    try:
        for FT in (X.T, np.ascontiguousarray(X.T)):
            fast, slow = kernel_and_numpy(kernel_switch, FT, y, w, prm, True)
            _assert_close(fast[0], slow[0])
    finally:
        kernel.set_tile_min_d(previous)




@needs_kernel
def test_kernel_reads_a_row_slice_of_a_fortran_array(kernel_switch):
    # The layout features_transposed hands over for a row range of an
    # F-ordered chunk: rows of FT are contiguous but far apart.
    rng = np.random.default_rng(3)
    X = np.asfortranarray(rng.normal(size=(5000, 5)))
    y, w = rng.normal(size=5000), np.ones(5000)
    FT = stats.features_transposed(X[1234:4321])
    assert FT.strides[0] > 8 * FT.shape[1]
    prm = _params(rng, 3, 6)
    fast, slow = kernel_and_numpy(kernel_switch, FT, y[1234:4321], w[1234:4321], [prm], True)
    _assert_close(fast[0], slow[0])
    # ... and the transpose of an F-ordered copy (rows contiguous) is read in place
    fast2, _ = kernel_and_numpy(kernel_switch, X[1234:4321].T.copy(order="F"), y[1234:4321],
                     w[1234:4321], [prm], True)
    _assert_close(fast2[0], slow[0])


@needs_kernel
@pytest.mark.parametrize("d", [1, 2, 5, 11])
def test_kernel_reads_row_major_features_in_place(kernel_switch, d):
    # X.T of a C-ordered X (a batch as most callers hold it): no copy is made,
    # the kernel transposes block by block; a row slice and a column slice of
    # a wider array too.
    rng = np.random.default_rng(d)
    wide = rng.normal(size=(3000, d + 3))
    y, w = rng.normal(size=3000), rng.uniform(0, 2, size=3000)
    prm = _params(rng, 3, d + 1)
    for X in (np.ascontiguousarray(wide[:, :d]), wide[17:2900, 2:2 + d]):
        rows = slice(0, 3000) if X.shape[0] == 3000 else slice(17, 2900)
        assert np.shares_memory(stats.kernel_layout(X.T), X)
        fast, slow = kernel_and_numpy(kernel_switch, X.T, y[rows], w[rows], [prm], True)
        _assert_close(fast[0], slow[0])


@needs_kernel
def test_kernel_handles_outliers_and_vanishing_components(kernel_switch):
    # Residuals of 1e6 make every density underflow; a weight of 1e-300 and a
    # tiny sigma push log-densities to -700 and beyond: the log-sum-exp must
    # keep the row finite in both paths.
    rng = np.random.default_rng(4)
    n = 2000
    FT = rng.normal(size=(3, n))
    y = rng.normal(size=n)
    y[::50] = 1e6
    prm = MixtureParams(np.array([1 - 2e-300, 1e-300, 1e-300]), rng.normal(size=(3, 4)),
                        np.array([1.0, 1e-8, 50.0]))
    fast, slow = kernel_and_numpy(kernel_switch, FT, y, np.ones(n), [prm], True)
    assert np.isfinite(fast[0].loglik)
    _assert_close(fast[0], slow[0], rtol=1e-11)


@needs_kernel
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_kernel_propagates_bad_values_like_numpy(kernel_switch, bad):
    # Every field, not only the log-likelihood: a bad row must not leave a
    # finite classification log-likelihood (ICL) behind in one path only.
    rng = np.random.default_rng(5)
    FT = rng.normal(size=(2, 600))
    y = rng.normal(size=600)
    y[300] = bad
    with np.errstate(invalid="ignore"):  # the numpy path's inf - inf
        fast, slow = kernel_and_numpy(kernel_switch, FT, y, np.ones(600), [_params(rng, 2, 3)],
                                      True)
    # (-inf or NaN may differ: the kernel's log-sum-exp gives -inf where numpy's gives NaN)
    for name in ("loglik", "class_loglik", "entropy"):
        a, b = getattr(fast[0], name), getattr(slow[0], name)
        assert not np.isfinite(a) and not np.isfinite(b), name


@needs_kernel
def test_misaligned_or_oddly_strided_arrays_are_copied_not_misread(kernel_switch):
    rng = np.random.default_rng(6)
    n, d = 1000, 3
    raw = np.zeros(n * d * 8 + 1, dtype=np.uint8)
    X = np.frombuffer(raw.data, dtype=np.float64, count=n * d, offset=1).reshape(n, d)
    assert not X.flags.aligned
    values = rng.normal(size=(n, d))
    raw[1:1 + values.nbytes] = values.view(np.uint8).reshape(-1)
    record = np.zeros(n, dtype=[("x", "f8", (d,)), ("k", "i4")])  # strides of 28 bytes
    record["x"] = values
    y, w = rng.normal(size=n), np.ones(n)
    prm = _params(rng, 2, d + 1)
    kernel_switch(False)
    want = estep_features_many(values.T.copy(), y, w, [prm], True)[0]
    kernel_switch(True)
    for arr in (X, record["x"]):
        got = estep_features_many(stats.features_transposed(arr), y, w, [prm], True)[0]
        _assert_close(got, want)
        model = MixtureOfLinearRegressions(2, random_state=0)
        model.partial_fit(arr, y)  # the online path goes through the same layout check
    m = 2
    args = [X.T, y, w, np.zeros((m, d)), np.zeros(m), np.zeros(m), np.ones(m),
            np.zeros((2 * m, d)), np.zeros(2 * m), np.zeros((m, d * (d + 1) // 2)), np.zeros(m),
            np.zeros(2)]
    with pytest.raises(ValueError, match="FT is not aligned to 8 bytes"):
        kernel.estep_chunk(*args)


@needs_kernel
def test_kernel_rejects_bad_arrays():
    k = kernel
    m, d, n = 2, 3, 10
    good = [np.zeros((d, n)), np.zeros(n), np.ones(n), np.zeros((m, d)), np.zeros(m),
            np.zeros(m), np.ones(m), np.zeros((2 * m, d)), np.zeros(2 * m),
            np.zeros((m, d * (d + 1) // 2)), np.zeros(m), np.zeros(2)]
    k.estep_chunk(*good)
    bad = list(good)
    bad[0] = good[0].astype(np.float32)
    with pytest.raises(TypeError, match="FT must hold float64"):
        k.estep_chunk(*bad)
    bad = list(good)
    bad[1] = np.zeros(n + 1)
    with pytest.raises(ValueError, match="inconsistent array sizes"):
        k.estep_chunk(*bad)
    bad = list(good)
    bad[0] = np.zeros((d, 2 * n))[:, ::2]  # neither features nor rows contiguous
    with pytest.raises(ValueError, match="FT must have contiguous rows or contiguous columns"):
        k.estep_chunk(*bad)
    bad = list(good)
    bad[7] = np.zeros((2 * m, d)).copy()
    bad[7].flags.writeable = False
    with pytest.raises((BufferError, ValueError, TypeError)):
        k.estep_chunk(*bad)
    with pytest.raises(TypeError, match="takes 12 arguments"):
        k.estep_chunk(*good[:5])


@needs_kernel
def test_fit_with_kernel_equals_fit_without(kernel_switch, small_mixture):
    X, y, _ = small_mixture
    # three components for two: a flat optimum that EM reaches in about 900 iterations
    kw = dict(n_components=3, random_state=0, tol=1e-8, max_iter=1500)
    kernel_switch(True)
    fast = MixtureOfLinearRegressions(**kw).fit(X, y)
    kernel_switch(False)
    slow = MixtureOfLinearRegressions(**kw).fit(X, y)
    assert fast.loglik_ == pytest.approx(slow.loglik_, rel=1e-11)
    np.testing.assert_allclose(fast.coef_, slow.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fast.weights_, slow.weights_, rtol=1e-7)


def _infokernel_and_numpy(kernel_switch, X, y, w, params, noise):
    kernel_switch(True)
    fast = information_stats(X, y, w, params, noise)
    kernel_switch(False)
    slow = information_stats(X, y, w, params, noise)
    return fast, slow


def _assert_info_close(a, b, rtol=1e-12):
    for name in ("score", "opg", "louis", "loglik", "sum_w"):
        x, ref = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
        np.testing.assert_allclose(x, ref, rtol=0, atol=rtol * scale, err_msg=name)
    assert a.n_rows == b.n_rows


@needs_kernel
@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
@pytest.mark.parametrize("p,m", [(1, 1), (2, 2), (4, 3), (7, 4), (12, 2), (12, 10)])
@pytest.mark.parametrize("n", [1, 255, 257, 2100])
def test_compiled_information_pass_equals_numpy(kernel_switch, noise, p, m, n):
    # The standard-error pass (score, OPG and Louis' part) of the compiled
    # kernel against the numpy path, for all noise models and sizes that
    # leave partial 4 x 4 tiles and partial row blocks.  The OPG's tiles keep
    # their sums in vector lanes up to 512 tiles (P = 128); p = 12, m = 10
    # (P = 138 or 139) takes the tiles that sum each block.
    rng = np.random.default_rng(p * 1000 + m * 100 + n)
    X, y, w, params = information_problem(rng, n, p, m, noise)
    fast, slow = _infokernel_and_numpy(kernel_switch, X, y, w, params, noise)
    _assert_info_close(fast, slow)


@needs_kernel
def test_compiled_information_pass_reads_any_layout_and_vanishing_components(kernel_switch):
    # An F-ordered design and a row slice of a wider C-ordered one (the
    # kernel reads both in place); components whose responsibilities
    # underflow (set to 0 below 1e-260 in both paths) and outlying rows.
    rng = np.random.default_rng(8)
    n = 3000
    wide = rng.normal(size=(n + 40, 9))
    wide[:, 2] = 1.0
    y = rng.normal(size=n)
    y[::97] = 1e3
    w = rng.uniform(0.5, 2.0, size=n)
    params = MixtureParams(np.array([0.6, 0.4 - 1e-200, 1e-200]), rng.normal(size=(3, 5)),
                           np.array([1.0, 1e-4, 30.0]))
    for X in (np.asfortranarray(wide[:n, 2:7]), wide[20:n + 20, 2:7]):
        fast, slow = _infokernel_and_numpy(kernel_switch, X, y, w, params, "per_component")
        _assert_info_close(fast, slow, rtol=1e-11)


@needs_kernel
def test_compiled_information_pass_rejects_bad_arrays():
    k = kernel
    m, p, P = 2, 3, 9
    args = [np.ones((p, 10)), np.ones(10), np.ones(10), np.ones((m, p)), np.zeros(m),
            np.ones(m), np.ones(m - 1), 2, np.zeros((P, P)), np.zeros((m, p, p)),
            np.zeros((2 * m, p)), np.zeros(P), np.zeros(3 * m + 1), False]
    k.info_chunk(*args)
    with pytest.raises(ValueError, match="inconsistent"):
        k.info_chunk(*args[:8], np.zeros((P - 1, P)), *args[9:])
    with pytest.raises(ValueError, match="noise"):
        k.info_chunk(*args[:7], 3, *args[8:])
    with pytest.raises(TypeError, match="float64"):
        k.info_chunk(args[0].astype(np.float32), *args[1:])
    with pytest.raises(TypeError, match="takes 14"):
        k.info_chunk(*args[:13])
    with pytest.raises(ValueError, match="inconsistent"):  # with the ones, p = 4 columns
        k.info_chunk(*args[:13], True)


@needs_kernel
@pytest.mark.parametrize("noise", ["per_component", "shared", "fixed"])
@pytest.mark.parametrize("order", ["F", "C"])
def test_information_task_puts_the_intercept_in_the_kernel(kernel_switch, noise, order):
    # InformationTask hands the kernel the chunk's features and lets it add the
    # column of ones: the same sums as the numpy path on the design matrix.
    from streammix.algorithms.information import InformationTask
    from streammix.core.chunk import Chunk

    rng = np.random.default_rng(11)
    n, d = 1300, 4
    X = np.asarray(rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d), order=order)
    y, w = rng.normal(size=n) * 3, rng.uniform(0, 2, size=n)
    params = _params(rng, 3, d + 1)
    task = InformationTask(params, True, noise)
    kernel_switch(True)
    fast = task(Chunk(X, y, w, "array", 0))
    kernel_switch(False)
    slow = task(Chunk(X, y, w, "array", 0))
    _assert_info_close(fast, slow)


def test_environment_variable_turns_the_kernel_off():
    code = "from streammix.core import kernel; print(kernel.enabled())"
    env = dict(os.environ, STREAMMIX_KERNEL="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


@needs_kernel
def test_ml_mstep_rejects_bad_arrays():
    k = kernel
    m, p = 2, 3
    args = [np.ones(m), np.stack([np.eye(p)] * m), np.zeros((m, p)), np.ones(m),
            np.zeros((m, p)), 2.0, 1e-8, 1e-12, np.empty((m, p)), np.empty(m), np.empty(m),
            np.empty((m, p)), np.empty(m)]
    assert k.ml_mstep(*args) is True
    bad = list(args)
    bad[3] = np.ones(m + 1)
    with pytest.raises(ValueError, match="inconsistent array sizes"):
        k.ml_mstep(*bad)
    bad = list(args)
    bad[1] = np.asfortranarray(np.stack([np.eye(p)] * m))
    with pytest.raises(ValueError, match="s2 must be C-contiguous"):
        k.ml_mstep(*bad)
    bad = list(args)
    bad[5] = "two"
    with pytest.raises(TypeError):
        k.ml_mstep(*bad)
    with pytest.raises(TypeError, match="takes 13 arguments"):
        k.ml_mstep(*args[:4])


def test_in_process_engine_uses_threads_only_with_the_kernel(kernel_switch, small_mixture):
    from streammix.algorithms.tasks import EStepTask
    from streammix.data.arrays import ArraySource
    from streammix.engines.inprocess import InProcessEngine, default_threads
    kernel_switch(False)
    assert default_threads() == 1 and InProcessEngine().n_threads == 1
    if not kernel.available():
        return
    kernel_switch(True)
    assert 1 <= default_threads() <= 8
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_threads() == min(8, cpus)
    # By default only map functions that release the GIL get the threads.
    from streammix.algorithms.information import InformationTask
    from streammix.algorithms.standardize import ScaledTask
    from streammix.algorithms.tasks import MultiEStepTask
    prm0 = _params(np.random.default_rng(1), 2, 3)
    auto, fixed = InProcessEngine(), InProcessEngine(3)
    for task in (EStepTask(prm0, True), MultiEStepTask((prm0,), True),
                 ScaledTask(EStepTask(prm0, True), None)):
        assert task.releases_gil and auto.threads_for(task) == default_threads()
    info = InformationTask(prm0, True, "per_component")
    assert auto.threads_for(info) == default_threads() and fixed.threads_for(info) == 3
    assert auto.threads_for(ScaledTask(info, None)) == default_threads()
    kernel_switch(False)  # the numpy information pass: one thread
    assert InProcessEngine().threads_for(info) == 1
    assert InProcessEngine(3).threads_for(info) == 3
    kernel_switch(True)
    # Threads change nothing: chunks are summed in plan order.
    X, y, _ = small_mixture
    source = ArraySource(X, y, chunk_rows=97)
    prm = _params(np.random.default_rng(0), 2, 3)
    one = InProcessEngine(1).map_reduce(source, EStepTask(prm, True), None)
    many = InProcessEngine(4).map_reduce(source, EStepTask(prm, True), None)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name))
