"""Block moments in a per-thread scratch matrix: unit and general weights, reuse, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from streammix.core import moments
from streammix.core.moments import Moments

NAMES = ("sy", "sx", "sxx", "mean", "m2")


def data(seed: int, n: int = 3000, d: int = 4, weights: str = "unit"):
    rng = np.random.default_rng(seed)
    X = np.asfortranarray(rng.normal(size=(n, d)) * 3.0 + seed)
    y = rng.normal(size=n) - seed
    w = np.ones(n) if weights == "unit" else rng.uniform(0.0, 2.0, size=n)
    return X, y, w


def assert_equal_to_direct(got: Moments, X, y, w) -> None:
    ref = Moments._direct(X, y, w)
    for name in NAMES:
        a, b = getattr(got, name), getattr(ref, name)
        scale = max(np.abs(b).max(initial=0.0), 1.0)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * scale, err_msg=name)


@pytest.mark.parametrize("weights", ["unit", "general"])
def test_a_block_after_another_block_in_the_same_scratch_is_its_own(weights):
    first, second = data(1, weights=weights), data(2, n=1700, d=6, weights=weights)
    a = Moments._of_block(*first)
    b = Moments._of_block(*second)  # reuses (and grows) the thread's scratch matrix
    assert_equal_to_direct(a, *first)  # a holds no view of the scratch
    assert_equal_to_direct(b, *second)
    assert_equal_to_direct(Moments._of_block(*first), *first)


def test_unit_weights_skip_the_scaling_but_give_the_weighted_sums():
    X, y, w = data(3)
    unit = Moments._of_block(X, y, w)
    near = Moments._of_block(X, y, np.nextafter(w, 2.0))  # weights just above 1: scaled
    for name in NAMES:
        np.testing.assert_allclose(getattr(unit, name), getattr(near, name), rtol=1e-12,
                                   atol=1e-9, err_msg=name)


def test_threads_have_their_own_scratch_and_large_blocks_use_none(monkeypatch):
    sets = [data(seed, n=2500 + 100 * seed, weights="general") for seed in range(8)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: Moments.of(*s, block=700), sets))
    for result, s in zip(got, sets, strict=True):
        assert_equal_to_direct(result, *s)
    monkeypatch.setattr(moments, "SCRATCH_BYTES", 0)  # every block a fresh matrix
    X, y, w = sets[0]
    again = Moments.of(X, y, w, block=700)
    for name in NAMES:
        np.testing.assert_array_equal(getattr(again, name), getattr(got[0], name))
