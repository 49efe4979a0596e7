"""The kernel's lane-tiled Gram path (d >= 8 features) held equal to the numpy E-step.

With few enough tiles (all components' 4 x 4 tiles of [x, 1] at most 512), the
kernel forms each component's Gram matrix band by band with the sums in vector
lanes, in blocks of 128 rows.  It reads a block's columns in place when they
sit on cache lines (features contiguous, rows a multiple of 8) and copies them
otherwise (while computing the residuals, or, for a last block whose rows are
not a multiple of 8, before).  The blocks start at multiples of 128 rows
whatever the address of the data, so the same rows give the same bits
wherever they sit in memory.  These tests cover every way in: numbers of
features that are and are not a multiple of the tile, 1 to 6 components,
weights with zeros, chunks of a few rows, both layouts, features on and off
cache lines, bad values, and the build without vector extensions.  The
vector-extension code runs by default only where the CPU has AVX-512
(``kernel.set_vector_lanes``); the lane tests run both it and the plain
loops that run elsewhere, whatever this CPU's default, and whole fits on
this path are held equal across the two, numpy, threads and chunk sizes.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from support.mixtures import information_problem, kernel_and_numpy

from streammix.algorithms.information import information_stats
from streammix.core import kernel
from streammix.core.params import MixtureParams
from streammix.core.stats import estep_features_many

pytestmark = pytest.mark.skipif(not kernel.available(), reason="compiled kernel not built")

FIELDS = ("s0", "s2", "rx", "r0", "loglik", "class_loglik", "entropy", "sum_w")
KERNEL_C = Path(kernel.__file__).with_name("_kernel.c")


def _params(rng, m, p):
    return MixtureParams(rng.dirichlet(np.ones(m)), rng.normal(size=(m, p)) * 0.5,
                         rng.uniform(0.3, 3.0, size=m))


def _on_cache_line(shape) -> np.ndarray:
    """An empty C-ordered float64 array whose data starts on a 64-byte boundary."""
    size = int(np.prod(shape))
    raw = np.empty(size + 8)
    skip = (-raw.ctypes.data % 64) // 8
    out = raw[skip:skip + size].reshape(shape)
    assert out.ctypes.data % 64 == 0
    return out


def _assert_close(fast, slow, rtol=1e-12):
    for name in FIELDS:
        x, ref = np.asarray(getattr(fast, name)), np.asarray(getattr(slow, name))
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
        if name == "entropy":  # a difference with the log-likelihood: its rounding is loglik's
            scale = max(scale, abs(slow.loglik))
        np.testing.assert_allclose(x, ref, rtol=0, atol=rtol * scale, err_msg=name)


@pytest.fixture(params=[True, False], ids=["lanes", "plain"])
def vector_lanes(request):
    """Each lane test with the vector-extension code and with the plain loops,
    whatever this CPU's default (a wheel built on a machine without AVX-512
    runs the lanes on one with it); restored after."""
    before = kernel.set_vector_lanes(request.param)
    yield request.param
    kernel.set_vector_lanes(before)


def _problem(seed, n, d):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, size=d)
    y = rng.normal(size=n) * 3
    w = rng.uniform(0.0, 2.0, size=n)
    w[::5] = 0.0
    return rng, X, y, w


@pytest.mark.parametrize("d", [8, 11, 15, 18, 19, 22, 27])
@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 6])
def test_lane_gram_equals_numpy_for_every_layout(kernel_switch, vector_lanes, d, m):
    # 1000 rows: seven blocks of 128 and a last one of 104 (a multiple of 8);
    # features contiguous on a cache line (read in place), the same features
    # 8 bytes off one with rows 1001 apart (copied by the residual pass),
    # 16 bytes off one with rows 1008 apart (as numpy's large arrays start:
    # every block copied), and rows contiguous
    # (transposed block by block).
    rng, X, y, w = _problem(d * 10 + m, 1000, d)
    aligned = _on_cache_line((d, 1000))
    aligned[...] = X.T
    shifted = _on_cache_line((d, 1001))[:, 1:]
    shifted[...] = X.T
    headed = _on_cache_line((d, 1008))[:, 2:1002]
    headed[...] = X.T
    assert headed.ctypes.data % 64 == 16
    for intercept in (True, False):
        prm = [_params(rng, m, d + int(intercept))]
        for FT in (aligned, shifted, headed, X.T):
            fast, slow = kernel_and_numpy(kernel_switch, FT, y, w, prm, intercept)
            _assert_close(fast[0], slow[0])


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 257, 263])
def test_lane_gram_equals_numpy_on_short_and_ragged_chunks(kernel_switch, vector_lanes, n):
    # Chunks shorter than a block and last blocks of every length mod 8 and 16
    # (the residuals go 16 rows a step, the lanes 8).
    rng, X, y, w = _problem(n, n, 19)
    FT = _on_cache_line((19, n))
    FT[...] = X.T
    prm = [_params(rng, 5, 20), _params(rng, 3, 20)]
    for layout in (FT, X.T):
        fast, slow = kernel_and_numpy(kernel_switch, layout, y, w, prm, True)
        for a, b in zip(fast, slow, strict=True):
            _assert_close(a, b)


def test_lane_gram_reads_a_wide_array_in_place_and_a_slice_of_it(kernel_switch, vector_lanes):
    # Rows of FT far apart (a row slice of a (d, N) array) and a column slice
    # starting 3 rows in (off the cache line: copied); 2000 rows, several blocks.
    rng, X, y, w = _problem(7, 2000, 23)
    big = _on_cache_line((30, 2048))
    big[...] = rng.normal(size=big.shape)
    big[4:27, :2000] = X.T
    prm = [_params(rng, 4, 24)]
    fast, slow = kernel_and_numpy(kernel_switch, big[4:27, :2000], y, w, prm, True)
    _assert_close(fast[0], slow[0])
    fast, slow = kernel_and_numpy(kernel_switch, big[4:27, 3:2000], y[3:], w[3:], prm, True)
    _assert_close(fast[0], slow[0])


@pytest.mark.parametrize("lanes", [True, False])
@pytest.mark.parametrize("n", [1000, 1001])
def test_same_rows_at_any_address_give_the_same_bits(lanes, n):
    # The same features (rows n apart: a whole number of cache lines, or not)
    # starting at each of the 8 doubles of a cache line, as copies of a chunk
    # land wherever malloc puts them: every sum is identical to the bit, with
    # and without the vector lanes (a first block cut at the next cache line
    # made the lanes' sums, and so a fit's last bits, depend on the address).
    rng, X, y, w = _problem(5, n, 20)
    prm = [_params(rng, 5, 21)]
    before = kernel.set_vector_lanes(lanes)
    try:
        with kernel.enabled_as(True):
            runs = []
            for offset in range(8):
                FT = _on_cache_line((20, n + 8))[:, offset:offset + n]
                if n % 8 == 0:
                    FT = _on_cache_line((20 * n + 8,))[offset:offset + 20 * n].reshape(20, n)
                FT[...] = X.T
                assert FT.ctypes.data % 64 == 8 * offset
                runs.append(estep_features_many(FT, y, w, prm, True)[0])
    finally:
        kernel.set_vector_lanes(before)
    for run in runs[1:]:
        for name in FIELDS:
            np.testing.assert_array_equal(np.asarray(getattr(run, name)),
                                          np.asarray(getattr(runs[0], name)), err_msg=name)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["feature", "response"])
def test_lane_gram_propagates_bad_values_like_numpy(kernel_switch, vector_lanes, bad, where):
    # A bad row leaves the same fields non-finite in both paths (the sums
    # that involve that row), whichever block it falls in.
    rng, X, y, w = _problem(11, 700, 19)
    w[:] = 1.0
    if where == "feature":
        X[300, 5] = bad
    else:
        y[300] = bad
    FT = _on_cache_line((19, 700))
    FT[...] = X.T
    with np.errstate(invalid="ignore", over="ignore"):
        fast, slow = kernel_and_numpy(kernel_switch, FT, y, w, [_params(rng, 3, 20)], True)
    for name in ("loglik", "class_loglik", "entropy"):
        assert not np.isfinite(getattr(fast[0], name)), name
        assert not np.isfinite(getattr(slow[0], name)), name
    for name in ("s0", "s2", "rx", "r0"):
        np.testing.assert_array_equal(np.isfinite(getattr(fast[0], name)),
                                      np.isfinite(getattr(slow[0], name)), err_msg=name)


@pytest.fixture
def plain_loops():
    """The kernel's plain loops (as on a CPU without AVX-512); restored after."""
    before = kernel.set_vector_lanes(False)
    yield
    kernel.set_vector_lanes(before)


def test_vector_lanes_switch_reports_and_restores():
    before = kernel.set_vector_lanes(False)
    try:
        assert kernel.set_vector_lanes(True) is False
        assert kernel.set_vector_lanes(before) in (True, False)
    finally:
        kernel.set_vector_lanes(before)


@pytest.mark.parametrize("d,m,n", [(4, 3, 300), (9, 2, 1000), (19, 5, 1000), (22, 6, 263),
                                   (60, 4, 700)])
def test_plain_loops_equal_numpy(kernel_switch, plain_loops, d, m, n):
    # The E-step without the vector-extension code: fused, tiled (summed each
    # block) and in both layouts; then the standard-error pass.
    rng, X, y, w = _problem(d * 7 + m, n, d)
    FT = _on_cache_line((d, n))
    FT[...] = X.T
    prm = [_params(rng, m, d + 1)]
    for layout in (FT, X.T):
        fast, slow = kernel_and_numpy(kernel_switch, layout, y, w, prm, True)
        _assert_close(fast[0], slow[0])
    if d > 22:
        return
    Xd, yd, wd, params = information_problem(rng, n, d, m, "per_component")
    kernel_switch(True)
    fast = information_stats(Xd, yd, wd, params, "per_component")
    kernel_switch(False)
    slow = information_stats(Xd, yd, wd, params, "per_component")
    for name in ("score", "opg", "louis", "loglik"):
        x, ref = np.asarray(getattr(fast, name)), np.asarray(getattr(slow, name))
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-300)
        np.testing.assert_allclose(x, ref, rtol=0, atol=1e-12 * scale, err_msg=name)


def _compile_without_vectors(tmp_path: Path):
    """_kernel.c built with -DSM_NO_VEC (the plain loops), loaded as a module."""
    cc = shutil.which("gcc") or shutil.which("cc")
    out = tmp_path / ("_kernel" + sysconfig.get_config_var("EXT_SUFFIX"))
    base = [cc, "-shared", "-fPIC", "-O2", "-fno-math-errno", "-DSM_NO_VEC",
            "-I" + sysconfig.get_paths()["include"], str(KERNEL_C), "-o", str(out)]
    done = subprocess.run(base + ["-lmvec", "-lm"], capture_output=True, text=True)
    if done.returncode != 0:  # no libmvec: scalar exp and log, as setup.py retries
        done = subprocess.run(base + ["-DSM_NO_MVEC", "-lm"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    spec = importlib.util.spec_from_file_location("novec._kernel", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "x86_64"
                         and (shutil.which("gcc") or shutil.which("cc"))),
                    reason="needs a C compiler on x86-64 Linux")
def test_build_without_vector_extensions_equals_numpy(kernel_switch, tmp_path, monkeypatch):
    # The -DSM_NO_VEC build (no lanes: 4 x 4 tiles summed each block, residuals
    # by plain loops) for the fused and the tiled Gram, both layouts.
    novec = _compile_without_vectors(tmp_path)
    assert novec.API == kernel.KERNEL_API
    monkeypatch.setattr(kernel, "estep_chunk", novec.estep_chunk)
    for d, m, n in [(4, 3, 300), (19, 5, 1000), (22, 2, 263)]:
        rng, X, y, w = _problem(d + m, n, d)
        prm = [_params(rng, m, d + 1)]
        for FT in (np.ascontiguousarray(X.T), X.T):
            fast, slow = kernel_and_numpy(kernel_switch, FT, y, w, prm, True)
            _assert_close(fast[0], slow[0])


def test_fits_on_the_lane_path_agree_across_paths_threads_and_chunks(kernel_switch):
    # Whole fits at d = 12 (the lanes' path where the CPU has AVX-512): the
    # lanes, the plain loops and numpy agree; 1 and 2 threads give the same
    # bits (chunks are summed in plan order); other chunk sizes agree closely.
    import streammix
    from streammix.data.arrays import ArraySource
    from streammix.engines.inprocess import InProcessEngine

    rng = np.random.default_rng(12)
    n, d = 6000, 12
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)
    beta = rng.normal(size=(2, d)) * 0.3  # overlapping components: EM takes many steps
    z = rng.integers(0, 2, size=n)
    y = np.einsum("ij,ij->i", X, beta[z]) + np.where(z, 0.5, -0.5) + rng.normal(size=n)

    def fit(threads=1, chunk_rows=1000):
        model = streammix.MixtureOfLinearRegressions(
            2, random_state=0, tol=1e-10, max_iter=500, engine=InProcessEngine(threads))
        return model.fit(ArraySource(X, y, chunk_rows=chunk_rows))

    kernel_switch(True)
    before = kernel.set_vector_lanes(True)
    try:
        lanes = fit()
        assert lanes.n_iter_ >= 5
        assert np.array_equal(fit(threads=2).coef_, lanes.coef_)
        rechunked = fit(chunk_rows=777)
        kernel.set_vector_lanes(False)
        plain = fit()
        assert np.array_equal(fit(threads=2).coef_, plain.coef_)
    finally:
        kernel.set_vector_lanes(before)
    kernel_switch(False)
    slow = fit()
    for other in (rechunked, plain, slow):
        assert other.loglik_ == pytest.approx(lanes.loglik_, rel=1e-11)
        np.testing.assert_allclose(other.coef_, lanes.coef_, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(other.weights_, lanes.weights_, rtol=1e-7)
