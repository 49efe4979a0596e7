"""Input checks common to every source: clear errors that say what and where."""

from __future__ import annotations

import numpy as np

from streammix.exceptions import DataError

__all__ = ["check_finite", "check_weights", "describe_bad_values", "check_fitted",
           "feature_names_of"]


def describe_bad_values(values: np.ndarray, name: str, row_offset: int = 0) -> str | None:
    """Describe NaN / inf values in a 1-d float array, or return None if clean.

    The message reads like ``"y has 3 NaN values, first at row 17"``; rows
    are counted from ``row_offset`` (the first row of the chunk).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(values, axis=None)
    if np.isfinite(total):  # a NaN or an inf makes the sum NaN or inf: none here
        return None
    bad = ~np.isfinite(values)  # the sum may also overflow: look at every value
    if not bad.any():
        return None
    rows = np.flatnonzero(bad)
    n_nan = int(np.isnan(values[rows]).sum())
    n_inf = rows.size - n_nan
    parts = []
    if n_nan:
        parts.append(f"{n_nan} NaN value{'s' if n_nan != 1 else ''}")
    if n_inf:
        parts.append(f"{n_inf} infinite value{'s' if n_inf != 1 else ''}")
    return f"{name} has {' and '.join(parts)}, first at row {int(rows[0]) + row_offset}"


def check_finite(values: np.ndarray, name: str, row_offset: int = 0, where: str = "") -> None:
    """Raise :class:`DataError` if ``values`` (1-d) holds NaN or inf."""
    msg = describe_bad_values(values, name, row_offset)
    if msg is not None:
        raise DataError(f"{where}{msg}")


def check_weights(w: np.ndarray, name: str = "sample_weight", row_offset: int = 0,
                  where: str = "") -> None:
    """Weights must be finite and non-negative."""
    check_finite(w, name, row_offset, where)
    neg = np.flatnonzero(w < 0)
    if neg.size:
        raise DataError(
            f"{where}{name} has {neg.size} negative value{'s' if neg.size != 1 else ''}, "
            f"first at row {int(neg[0]) + row_offset} ({w[neg[0]]!r}); weights must be >= 0"
        )


def check_fitted(model) -> None:
    """Raise :class:`~streammix.NotFittedError` unless ``model`` is fitted (has ``params_``)."""
    if not hasattr(model, "params_"):
        from streammix.exceptions import NotFittedError  # scikit-learn's subclass: made lazily

        raise NotFittedError(f"this {type(model).__name__} is not fitted yet; call fit first")


def feature_names_of(model) -> list[str]:
    """A fitted model's feature names (``feature_names_in_``); ``x0``, ``x1``, ... for a
    model fitted on an array without names."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return [f"x{k}" for k in range(model.n_features_in_)]
    return [str(name) for name in names]
