"""The profiling pass's building blocks: the top-key selection and the block moments."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from streammix.algorithms.start.profile import Profile, ProfileTask, top_keys
from streammix.core.moments import Moments
from streammix.data.arrays import ArraySource


@pytest.mark.parametrize("size", [0, 1, 7, 50, 99, 100, 150])
def test_top_keys_picks_what_a_stable_sort_picks(size):
    rng = np.random.default_rng(size)
    keys = rng.integers(-6, 0, size=100).astype(float)  # many ties
    want = np.sort(np.argsort(-keys, kind="stable")[:size])
    np.testing.assert_array_equal(top_keys(keys, size), want)


def test_profile_sample_does_not_depend_on_chunking():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 2))
    y = rng.normal(size=3000)
    w = rng.integers(0, 3, size=3000).astype(float)
    got = []
    for rows in (97, 1000, 3000):
        source = ArraySource(X, y, w, chunk_rows=rows)
        task = ProfileTask(seed=4, size=400)
        got.append(sum((task(source.read(d)) for d in source.plan()), Profile.empty(2, 400)))
    for prof in got[1:]:
        np.testing.assert_array_equal(prof.keys, got[0].keys)
        np.testing.assert_array_equal(prof.X, got[0].X)
        np.testing.assert_array_equal(prof.y, got[0].y)
    assert got[0].keys.size == 400 and np.all(np.diff(got[0].keys) != 0)


@pytest.mark.parametrize("offset", [0.0, 1e4])
@pytest.mark.parametrize("d", [0, 1, 5, 21])
def test_block_moments_equal_the_direct_sums(d, offset):
    rng = np.random.default_rng(d)
    n = 2000
    X = np.asfortranarray(rng.normal(size=(n, d)) * 2.0 + offset)
    y = rng.normal(size=n) + 0.5 * offset
    w = rng.integers(0, 3, size=n).astype(float)
    fast, ref = Moments._of_block(X, y, w), Moments._direct(X, y, w)
    for name in ("sy", "sx", "sxx", "mean", "m2"):
        a, b = getattr(fast, name), getattr(ref, name)
        scale = max(np.abs(b).max(initial=0.0), 1.0)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * scale, err_msg=name)
    np.testing.assert_allclose(fast.m2, fast.m2.T, rtol=0, atol=0)


def _splitmix64_as_written(x):
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@pytest.mark.parametrize("n, removed", [(0, False), (1, False), (5000, False), (5000, True)])
def test_row_uniforms_are_the_hash_as_written(n, removed):
    """The in-place hash gives every row the number of the formula, bit for bit."""
    import zlib

    from streammix.algorithms.start.profile import row_uniforms

    rng = np.random.default_rng(n)
    rows = np.sort(rng.choice(3 * n, size=n, replace=False)) if removed else None
    ids = rows.astype(np.uint64) if removed else np.arange(77, 77 + n, dtype=np.uint64)
    base = (np.uint64(5) << np.uint64(32)) ^ np.uint64(zlib.crc32(b"part-1.parquet"))
    h = _splitmix64_as_written(_splitmix64_as_written(np.full(n, base, dtype=np.uint64)) ^ ids)
    want = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0 ** -53
    given = None if rows is None else rows.copy()
    got = row_uniforms(5, "part-1.parquet", 77, n, rows)
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_array_equal(got, want)
    if removed:  # the caller's row ids are left alone
        np.testing.assert_array_equal(rows, given)


@pytest.mark.parametrize("weights", ["unit", "integer", "none positive"])
def test_a_chunk_profile_is_the_one_of_the_keys_as_defined(weights):
    """Keys log(u)/w of the rows of positive weight; with unit weights and a floor,
    exactly the rows whose key is above it (the floor tested on u first)."""
    from streammix.algorithms.start.profile import key_floor, row_uniforms

    rng = np.random.default_rng(11)
    n, size = 20_000, 300
    X = rng.normal(size=(n, 3)) * [1.0, -50.0, 1e-3]
    y = rng.normal(size=n) - 4.0
    w = {"unit": np.ones(n), "integer": rng.integers(0, 3, size=n).astype(float),
         "none positive": np.zeros(n)}[weights]
    source = ArraySource(X, y, w, chunk_rows=n)
    chunk = source.read(source.plan()[0])
    floor = key_floor(size, n)
    u = row_uniforms(9, chunk.origin, chunk.first_row, n)
    pos = w > 0
    with np.errstate(divide="ignore"):
        keys = np.where(pos, np.log(u) / np.where(pos, w, 1.0), -np.inf)
    if weights == "unit":
        kept = np.flatnonzero(keys > floor)
        assert 0 < kept.size < n
    else:
        kept = np.flatnonzero(pos)
    want = kept[top_keys(keys[kept], size)]
    got = ProfileTask(9, size, floor)(chunk)
    np.testing.assert_array_equal(got.keys, keys[want])
    np.testing.assert_array_equal(got.X, X[want])
    np.testing.assert_array_equal(got.y, y[want])
    assert got.n_positive == pos.sum() and got.floored == (n - kept.size if weights == "unit"
                                                          else 0)
    want_max = (np.append(np.abs(X[pos]).max(axis=0), np.abs(y[pos]).max()) if pos.any()
                else np.zeros(4))
    np.testing.assert_array_equal(got.max_abs, want_max)


def _sample_of(source, task, d, size):
    return sum((task(source.read(c)) for c in source.plan()), Profile.empty(d, size))


@pytest.mark.parametrize("rows", [97, 1000, 4096])
@pytest.mark.parametrize("weighted", [False, True])
def test_a_lazy_pass_draws_the_eager_pass_sample_bit_for_bit(rows, weighted):
    rng = np.random.default_rng(rows)
    n, size = 5000, 700
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    w = rng.integers(0, 3, size=n).astype(float) if weighted else None
    source = ArraySource(X, y, w, chunk_rows=rows)
    for floor in (-np.inf, np.log1p(-0.4)):  # with a key floor most chunks keep a few rows
        eager = _sample_of(source, ProfileTask(5, size, floor), 3, size)
        lazy = _sample_of(source, ProfileTask(5, size, floor, lazy=True), 3, size)
        assert lazy.lazy and not eager.lazy
        got = lazy.settled()
        for name in ("keys", "X", "y", "w"):
            np.testing.assert_array_equal(getattr(got, name), getattr(eager, name),
                                          err_msg=name)
        assert got.X.flags.c_contiguous and got.X.dtype == np.float64
        assert (got.n_rows, got.n_positive, got.sum_w, got.floored) == \
            (eager.n_rows, eager.n_positive, eager.sum_w, eager.floored)
        np.testing.assert_array_equal(got.moments.m2, eager.moments.m2)


def test_a_lazy_profile_is_settled_when_pickled_and_bounds_what_it_refers_to():
    import pickle

    from streammix.algorithms.start import profile as module

    rng = np.random.default_rng(1)
    n, size = 6000, 100
    X, y = rng.normal(size=(n, 2)), rng.normal(size=n)
    source = ArraySource(X, y, chunk_rows=50)  # every chunk kept whole, copied
    task = ProfileTask(2, size, lazy=True)
    parts = [task(source.read(c)) for c in source.plan()]
    assert not np.shares_memory(parts[0].parts[0][0], source.X)
    total = sum(parts, Profile.empty(2, size))
    referred = sum(part[1].shape[0] for part in total.parts)
    assert referred <= module.LAZY_ROWS_FACTOR * size + 50
    back = pickle.loads(pickle.dumps(total))
    assert not back.lazy and back.parts == ()
    want = _sample_of(source, ProfileTask(2, size), 2, size)
    np.testing.assert_array_equal(back.X, want.X)
    np.testing.assert_array_equal(back.y, want.y)
    np.testing.assert_array_equal(back.keys, want.keys)


def _moment_arrays(moments):
    return None if moments is None else [getattr(moments, f) for f in
                                         ("sy", "sx", "sxx", "mean", "m2")]


@pytest.mark.parametrize("rows", [97, 1000, 5000])
@pytest.mark.parametrize("weights", ["unit", "counts", "fractions"])
@pytest.mark.parametrize("moments,spectral", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("grouped", [False, True])
def test_the_profile_of_whole_arrays_is_the_pass_profile_bit_for_bit(rows, weights, moments,
                                                                      spectral, grouped):
    from streammix.algorithms.start.profile import profile_arrays
    from streammix.data.grouped_arrays import GroupedArraySource
    from streammix.engines.inprocess import InProcessEngine

    rng = np.random.default_rng(rows)
    n, size = 5000, 700
    X, y = rng.normal(size=(n, 3)) * [1.0, 1e3, 1e-3] + 5.0, rng.normal(size=n)
    w = {"unit": None, "counts": rng.integers(0, 3, size=n).astype(float),
         "fractions": rng.uniform(0.0, 2.0, size=n)}[weights]
    if grouped:  # groups of 1-9 rows, constant weights within a group
        groups = np.repeat(np.arange(n), rng.integers(1, 10, size=n))[:n]
        w = None if w is None else w[groups]
        source = GroupedArraySource(X, y, groups, chunk_rows=rows, sample_weight=w)
    else:
        source = ArraySource(X, y, w, chunk_rows=rows)
    engine = InProcessEngine(2)
    for floor in (-np.inf, np.log1p(-0.4), np.log1p(-0.1)):  # the last: too few above it
        task = ProfileTask(5, size, floor, moments=moments, spectral=spectral, lazy=True)
        want = engine.map_reduce(source, task, Profile.empty(3, size))
        if not want.exact(floor):  # the pass again without the floor, as a fit takes it
            want = engine.map_reduce(source, dataclasses.replace(task, floor=-np.inf),
                                     Profile.empty(3, size))
        want = want.settled()
        with ThreadPoolExecutor(2) as pool:
            got = profile_arrays(task, source.X, source.y, source.w, source.plan(),
                                 map=pool.map)
        for name in ("keys", "X", "y", "w", "max_abs"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name),
                                          err_msg=name)
        assert got.X.flags.c_contiguous and got.X.dtype == np.float64 and not got.lazy
        assert (got.n_rows, got.n_positive, got.sum_w, got.floored) == \
            (want.n_rows, want.n_positive, want.sum_w, want.floored)
        if moments:
            for a, b in zip(_moment_arrays(got.moments), _moment_arrays(want.moments),
                            strict=True):
                np.testing.assert_array_equal(a, b)
        else:
            assert got.moments is None and want.moments is None


def test_the_profile_of_whole_arrays_needs_chunks_that_cover_the_rows_in_order():
    from streammix.algorithms.start.profile import profile_arrays

    X, y, w = np.zeros((10, 2)), np.zeros(10), np.ones(10)
    task = ProfileTask(1, 5)
    assert profile_arrays(task, X[:0], y[:0], w[:0], []).n_rows == 0
    for bounds in ([(0, 4), (5, 10)], [(0, 4), (4, 9)], [(1, 10)]):
        with pytest.raises(ValueError, match="cover the rows"):
            profile_arrays(task, X, y, w, bounds)


@pytest.mark.parametrize("n,d", [(1, 3), (2047, 2), (8192, 4), (200_001, 5), (9000, 40)])
def test_largest_magnitudes_are_the_columnwise_ones_in_either_layout(n, d):
    from streammix.algorithms.start.profile import _max_abs

    rng = np.random.default_rng(n + d)
    X = rng.normal(size=(n, d)) * np.logspace(-3, 3, d)
    X[rng.integers(0, n, size=3), rng.integers(0, d, size=3)] = [0.0, -0.0, -1e300]
    y = rng.normal(size=n)
    want = np.append(np.abs(X).max(axis=0), np.abs(y).max())
    for layout in (X, np.asfortranarray(X)):
        np.testing.assert_array_equal(_max_abs(layout, y, None), want)
    pos = rng.random(n) < 0.7
    if pos.any():
        np.testing.assert_array_equal(
            _max_abs(X, y, pos), np.append(np.abs(X[pos]).max(axis=0), np.abs(y[pos]).max()))
    X[n // 2, d - 1] = np.nan
    assert np.isnan(_max_abs(X, y, None)[d - 1])
