"""The user's arrays are read, never written, now that a C-ordered X is not copied.

With the compiled kernel an :class:`~streammix.data.arrays.ArraySource`
keeps a C-ordered float64 X as it is, so every chunk is a view of the
user's array.  Nothing in a fit may write to it: a read-only X (the way a
memory-mapped file or a frozen array comes) goes through every public door,
and a writable one is left byte for byte as it was.  And the arrays numpy
hands over in other ways (big-endian, memory-mapped, off 8-byte alignment,
columns reversed, broadcast) fit as their plain copies do, to the bit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions
from streammix.exceptions import InferenceWarning


def _data(n=2400, d=3):
    X, y, _ = make_mixture(n, [0.5, 0.5], [2.0, -2.0], [[1.0, -1.0, 0.5], [-1.0, 0.5, 2.0]],
                           [0.5, 0.8], seed=3)
    return np.ascontiguousarray(X[:, :d]), y


def _frozen(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


def _model(**kw):
    return MixtureOfLinearRegressions(2, random_state=0, chunk_rows=500, **kw)


def _uses(X, y, w, groups, Z):
    """Every public door an array goes through (each call reads X, y and the rest)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        model = _model().fit(X, y, se=True)
        model.predict(X), model.predict_proba(X, y), model.score(X, y), model.bic(X, y)
        model.compute_se(X, y, method="sandwich")
        _model(standardize=True).fit(X, y, w).compute_se(X, y, w)
        _model(init="spectral", n_init=2).fit(X, y)
        grouped = _model().fit(X, y, groups=groups)
        grouped.predict_proba(X, y, groups=groups)
        gated = _model().fit(X, y, concomitant=Z)
        gated.predict(X, concomitant=Z)
        GridSearchCV(_model(), {"n_components": [1, 2]}, cv=2).fit(X, y)
        _model().partial_fit(X, y)


def test_read_only_arrays_go_through_every_public_door_and_are_left_unchanged():
    X, y = _data()
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, size=y.size).astype(float)
    groups = np.repeat(np.arange(y.size // 4), 4)
    Z = rng.normal(size=(y.size, 1))
    _uses(*(_frozen(a) for a in (X, y, w, groups, Z)))  # a write would raise here
    arrays = [a.copy() for a in (X, y, w, groups, Z)]
    _uses(*arrays)
    for before, after in zip((X, y, w, groups, Z), arrays, strict=True):
        assert before.tobytes() == after.tobytes()


def _fitted(X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InferenceWarning)
        model = _model().fit(X, y, se=True)
    return np.concatenate([model.weights_, model.intercept_, model.coef_.ravel(),
                           model.sigma_, [model.loglik_], model.vcov_.ravel(),
                           model.predict(X)])


def _misaligned(X):
    raw = np.zeros(X.nbytes + 8, dtype=np.uint8)
    out = raw[1:1 + X.nbytes].view(np.float64).reshape(X.shape)
    out[...] = X
    assert not out.flags.aligned
    return out


@pytest.mark.parametrize("how", ["big-endian", "memmap", "misaligned", "reversed columns"])
def test_arrays_numpy_hands_over_otherwise_fit_as_their_plain_copies(how, tmp_path):
    X, y = _data()
    if how == "big-endian":
        Xv = X.astype(">f8")
    elif how == "memmap":
        np.save(tmp_path / "X.npy", X)
        Xv = np.load(tmp_path / "X.npy", mmap_mode="r")
    elif how == "misaligned":
        Xv = _misaligned(X)
    else:
        Xv = np.ascontiguousarray(X[:, ::-1])[:, ::-1]
    np.testing.assert_array_equal(_fitted(Xv, y), _fitted(X, y))


def test_a_broadcast_array_fits_as_its_copy():
    X, y = _data()
    Xb = np.broadcast_to(X[:, :1], X.shape)  # one column repeated, strides (8, 0)
    assert Xb.strides[1] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the repeated columns make the fit singular
        np.testing.assert_array_equal(_fitted(Xb, y), _fitted(np.array(Xb), y))
