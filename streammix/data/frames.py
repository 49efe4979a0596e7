"""In-memory tables (pandas and polars DataFrames, pyarrow Tables) as named columns.

A table's columns are taken by name, never by position: :func:`split_frame`
takes the features, target and weight of a table given to ``fit``, and
:func:`select_features` the columns a fitted model was fitted on from a
table given to ``predict`` or ``score`` -- in the order of the fit, whatever
the table's order, refusing a table that lacks one of them.  Arrays have no
names: they are taken by position (with a :class:`~streammix.FeatureNamesWarning`
when the model was fitted on names).  Nothing here imports pandas or polars.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streammix.exceptions import DataError, FeatureNamesWarning

__all__ = ["is_frame", "frame_names", "frame_column", "frame_matrix", "split_frame",
           "select_features", "names_mismatch_message", "computed_dask_frame"]


def _module(obj) -> str:
    return type(obj).__module__.split(".")[0]


def is_frame(obj) -> bool:
    """True for a pandas or polars DataFrame, or a pyarrow Table or RecordBatch
    (not for a Dask DataFrame, which is a source of its own)."""
    if isinstance(obj, (pa.Table, pa.RecordBatch)):
        return True
    if callable(getattr(type(obj), "__dask_graph__", None)):
        return False
    return _module(obj) in ("pandas", "polars") and hasattr(obj, "columns") \
        and hasattr(obj, "shape") and len(obj.shape) == 2


def computed_dask_frame(obj, names: list[str] | None = None):
    """A Dask DataFrame computed into the pandas DataFrame it stands for (only its
    columns ``names``, when it has them all), so that ``predict`` and the like take
    its columns by name as for pandas; anything else is returned as it is.

    Their results are in-memory arrays of one row per input row, so the columns
    they need are brought to this process.
    """
    if not (callable(getattr(type(obj), "__dask_graph__", None)) and hasattr(obj, "columns")):
        return obj
    if names is not None and set(names) <= {str(c) for c in obj.columns}:
        obj = obj[list(names)]
    return obj.compute()


def frame_names(obj) -> list[str] | None:
    """Column names of a table, or None for anything else (arrays, lists)."""
    if not is_frame(obj):
        return None
    if isinstance(obj, (pa.Table, pa.RecordBatch)):
        return [str(c) for c in obj.column_names]
    return [str(c) for c in obj.columns]


def _as_arrow(obj):
    if isinstance(obj, (pa.Table, pa.RecordBatch)):
        return obj
    if _module(obj) == "polars":
        return obj.to_arrow()
    return None


def frame_column(obj, name: str, where: str = "the data") -> np.ndarray:
    """Column ``name`` of table ``obj`` as float64 (nulls become NaN).

    Raises
    ------
    DataError
        The column is missing or not numeric; the message names it and the
        columns the table has.
    """
    names = frame_names(obj)
    if name not in names:
        raise DataError(f"{where} has no column {name!r} (it has {', '.join(names)})")
    table = _as_arrow(obj)
    if table is None:  # pandas
        keys = [c for c in obj.columns if str(c) == name]
        column = obj[keys[0]]
        try:
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: column {name!r} has dtype {column.dtype}, which cannot "
                            f"be read as float64 (need a numeric type): {exc}") from None
    column = table.column(table.column_names.index(name))
    typ = column.type
    if not (pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_boolean(typ)
            or pa.types.is_decimal(typ)):
        raise DataError(f"{where}: column {name!r} has type {typ}, which cannot be read as "
                        "float64 (need a numeric type)")
    column = pc.fill_null(pc.cast(column, pa.float64()), np.nan)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)


def frame_matrix(obj, names, where: str = "the data") -> np.ndarray:
    """Columns ``names`` of table ``obj`` as an F-ordered float64 (n, len(names)) matrix."""
    names = [str(n) for n in names]
    X = np.empty((obj.shape[0] if not isinstance(obj, (pa.Table, pa.RecordBatch))
                  else obj.num_rows, len(names)), order="F")
    for k, name in enumerate(names):
        X[:, k] = frame_column(obj, name, where)
    return X


def split_frame(obj, target: str, weight=None, features=None, where: str = "the data"):
    """Features, target and weights of a table holding them all, by name.

    Parameters
    ----------
    obj : pandas or polars DataFrame, pyarrow Table or RecordBatch
    target : str
        Column of the target.
    weight : str or array-like, optional
        Column of frequency weights, or the weights themselves.
    features : list of str, optional
        Feature columns (default: every column but the target and weight).

    Returns
    -------
    X : ndarray (n, d), y : ndarray (n,), w : ndarray (n,) or None, names : list of str
    """
    names = frame_names(obj)
    skip = {str(target)} | ({str(weight)} if isinstance(weight, str) else set())
    features = [c for c in names if c not in skip] if features is None \
        else [str(f) for f in features]
    if str(target) in features:
        raise ValueError(f"the target {target!r} must not be among the features")
    y = frame_column(obj, str(target), where)
    if isinstance(weight, str):
        w = frame_column(obj, weight, where)
    else:
        w = None if weight is None else np.asarray(weight, dtype=np.float64)
    return frame_matrix(obj, features, where), y, w, features


def names_mismatch_message(fitted, given) -> str | None:
    """Why table columns ``given`` cannot supply features ``fitted`` (None if they can).

    Worded as scikit-learn words it (its first line is the same), listing
    the names the fit had that the table lacks.
    """
    missing = [name for name in fitted if name not in given]
    if not missing:
        return None
    unseen = [name for name in given if name not in fitted]
    text = ("The feature names should match those that were passed during fit.\n"
            "Feature names seen at fit time, yet now missing:\n"
            + "".join(f"- {name}\n" for name in missing))
    if unseen:
        text += "Columns of the data that were not seen at fit time:\n" + "".join(
            f"- {name}\n" for name in unseen[:10])
    return text


def select_features(X, fitted_names, n_features: int, owner: str = "the model",
                    stacklevel: int = 3) -> np.ndarray:
    """The features a model was fitted on, from ``X``, as a float (n, d) matrix.

    A table gives its columns named ``fitted_names``, in that order (other
    columns, such as the target, are ignored).  An array gives its columns
    by position.  ``fitted_names`` is None for a model fitted on arrays:
    then a table's columns are taken by position too, with a warning.

    Raises
    ------
    DataError
        A table lacks a column the fit had (the message lists them), or the
        number of columns is not the fit's.

    Warns
    -----
    FeatureNamesWarning
        An array for a model fitted on names, or a table for a model fitted
        on an array.
    """
    names = frame_names(X)
    if names is not None and fitted_names is not None:
        message = names_mismatch_message(list(fitted_names), names)
        if message is not None:
            raise DataError(message)
        return frame_matrix(X, list(fitted_names))
    if names is not None:
        warnings.warn(f"X has feature names, but {owner} was fitted without feature names; "
                      "its columns are taken by position", FeatureNamesWarning,
                      stacklevel=stacklevel)
        X = frame_matrix(X, names)
    elif fitted_names is not None:
        warnings.warn(f"X does not have valid feature names, but {owner} was fitted with "
                      f"feature names ({', '.join(map(str, fitted_names))}); its columns are "
                      "taken by position", FeatureNamesWarning, stacklevel=stacklevel)
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"X must be numeric: {exc}") from None
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != n_features:
        raise DataError(f"X has shape {X.shape}; {owner} was fitted on {n_features} features")
    return X
