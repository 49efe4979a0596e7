"""Internal standardisation: exact back-transformation, same optimum.

See the mathematics page (docs/mathematics.rst), §1.6.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.mixtures import make_mixture
from support.r_reference import CASES, REFERENCE, load_case

from streammix import MixtureOfLinearRegressions
from streammix.algorithms.standardize import Scaling
from streammix.core.moments import Moments
from streammix.core.params import MixtureParams
from streammix.core.stats import design_matrix, estep


@pytest.fixture(scope="module")
def scaled_data():
    rng = np.random.default_rng(8)
    X = rng.normal(loc=[1e3, -50.0], scale=[200.0, 0.01], size=(3000, 2))
    y = 5e4 + (X - [1e3, -50.0]) @ [3.0, 2e4] + rng.normal(scale=30.0, size=3000)
    w = rng.integers(1, 4, size=3000).astype(float)
    return X, y, w


@pytest.mark.parametrize("intercept", [True, False])
def test_loglik_and_parameters_map_exactly(scaled_data, intercept):
    X, y, w = scaled_data
    scaling = Scaling.from_moments(Moments.of(X, y, w), intercept)
    rng = np.random.default_rng(0)
    p = X.shape[1] + int(intercept)
    params = MixtureParams([0.3, 0.7], rng.normal(size=(2, p)) * [1e4, 3.0, 2e4][-p:],
                           [900.0, 2500.0])
    back = scaling.backward(scaling.forward(params))
    np.testing.assert_allclose(back.beta, params.beta, rtol=1e-12)
    np.testing.assert_allclose(back.sigma2, params.sigma2, rtol=1e-12)
    Xs, ys = scaling.data(X, y)
    original = estep(design_matrix(X, intercept), y, w, params)
    standard = estep(design_matrix(Xs, intercept), ys, w, scaling.forward(params))
    assert original.loglik == pytest.approx(
        standard.loglik + scaling.loglik_shift(w.sum()), rel=1e-10)
    np.testing.assert_allclose(standard.s0, original.s0, rtol=1e-9)  # same responsibilities
    if intercept:
        np.testing.assert_allclose(np.average(Xs, axis=0, weights=w), 0.0, atol=1e-9)
        np.testing.assert_allclose(np.average(Xs**2, axis=0, weights=w), 1.0, rtol=1e-9)
        assert np.average(ys, weights=w) == pytest.approx(0.0, abs=1e-9)
    # Means and co-moments are merged centred (Chan et al.): exact at any offset.
    moments = scaling.moments(Moments.of(X, y, w))
    direct = Moments.of(Xs, ys, w)
    np.testing.assert_allclose(moments.mean, direct.mean, atol=1e-9)
    np.testing.assert_allclose(moments.m2, direct.m2, rtol=1e-9, atol=1e-9 * w.sum())
    # The raw sums for the spectral matrix map exactly too, at moderate offsets
    # (far from zero they lose digits, as the module says).
    Xm = rng.normal(loc=[1.0, -2.0], scale=[2.0, 0.5], size=(3000, 2))
    ym = Xm @ [1.0, -1.0] + rng.normal(size=3000)
    sc = Scaling.from_moments(Moments.of(Xm, ym, w), intercept)
    got, want = sc.moments(Moments.of(Xm, ym, w)), Moments.of(*sc.data(Xm, ym), w)
    for key in ("sy", "sx", "sxx"):
        np.testing.assert_allclose(getattr(got, key), getattr(want, key), rtol=1e-8,
                                   atol=1e-8 * w.sum())


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_optimum_as_r_when_standardised(name):
    ref = REFERENCE[name]
    target = ref.get("polished", ref)
    X, y = load_case(name)
    kw = dict(n_init=5, random_state=0, tol=1e-11, max_iter=5000, **CASES[name])
    raw = MixtureOfLinearRegressions(ref["k"], **kw).fit(X, y)
    std = MixtureOfLinearRegressions(ref["k"], standardize=True, **kw).fit(X, y)
    assert std.converged_
    assert std.loglik_ == pytest.approx(target["loglik"], rel=1e-9)
    assert std.params_.max_abs_diff(raw.params_) < 1e-5
    assert std.information_criteria()["icl"] == pytest.approx(
        raw.information_criteria()["icl"], rel=1e-8)
    assert std.score_samples(X, y).sum() == pytest.approx(std.loglik_, rel=1e-10)


def test_badly_scaled_data_and_fixed_noise(scaled_data):
    X, y, w = scaled_data
    std = MixtureOfLinearRegressions(1, standardize=True, tol=1e-8, random_state=0)
    std.fit(X, y, sample_weight=w)
    # One component: weighted least squares, in the original units.
    Xd = design_matrix(X, True)
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(Xd * sw[:, None], y * sw, rcond=None)[0]
    np.testing.assert_allclose(np.r_[std.intercept_, std.coef_[0]], coef, rtol=1e-8)
    resid = y - Xd @ coef
    assert std.sigma_[0] ** 2 == pytest.approx(np.average(resid**2, weights=w), rel=1e-8)
    fixed = MixtureOfLinearRegressions(1, noise="fixed", sigma=40.0, standardize=True,
                                       tol=1e-8).fit(X, y, sample_weight=w)
    assert fixed.sigma_[0] == pytest.approx(40.0, rel=1e-12)
    X2, y2, _ = make_mixture(3000, [0.4, 0.6], [-3e3, 3e3], [[2e3], [-1e3]], [500.0, 700.0],
                             seed=3, x_scale=1e-3)
    a = MixtureOfLinearRegressions(2, standardize=True, random_state=0, tol=1e-8).fit(X2, y2)
    b = MixtureOfLinearRegressions(2, random_state=0, tol=1e-8).fit(X2, y2)
    assert a.loglik_ == pytest.approx(b.loglik_, abs=1e-4)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-4)
