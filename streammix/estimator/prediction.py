"""Predictions of a fitted model over a Parquet source, written as Parquet, all or nothing.

One output file per input file (same relative path under the output
folder), written chunk by chunk, so memory is bounded by one chunk.
Everything is written into a temporary folder beside the output folder (a
local folder or any fsspec URL) and claimed at the end
(:mod:`streammix.estimator.destination`): a failed or interrupted run
leaves nothing at the destination.
"""

from __future__ import annotations

import itertools
import logging
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix.core.checks import check_fitted
from streammix.core.gating import gating_loglik, log_gate, with_intercept
from streammix.core.stats import design_matrix, log_responsibilities
from streammix.data.parquet.files import protocol_of
from streammix.data.parquet.text_formats import output_name
from streammix.estimator.destination import check_apart_from_inputs, open_destination
from streammix.estimator.grouped_prediction import group_posteriors
from streammix.exceptions import DataError

__all__ = ["write_predictions", "check_apart_from_inputs", "PredictionSummary",
           "prediction_columns", "predict_source", "QUANTILES", "check_finite_mean"]

#: The mixture quantiles written for rows without a target (columns q05, q50, q95).
QUANTILES = (0.05, 0.5, 0.95)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionSummary:
    """What :func:`write_predictions` wrote.

    ``out_dir`` is the local folder (a Path), or the URL with any
    credentials masked (a str).
    """

    out_dir: Path | str
    files: tuple[str, ...]
    n_rows: int


def prediction_columns(n_components: int, with_target: bool = True) -> list[str]:
    """Names of the computed columns.

    With the target: mean, component, loglik, prob_1 .. prob_m (posteriors).
    Without: mean, sd, q05, q50, q95 (the mixture's standard deviation and
    quantiles of y given x), prior_1 .. prior_m (the component probabilities
    given x alone: the weights π_j).
    """
    if with_target:
        return ["mean", "component", "loglik"] + [f"prob_{j + 1}" for j in range(n_components)]
    return (["mean", "sd"] + [_quantile_name(q) for q in QUANTILES]
            + [f"prior_{j + 1}" for j in range(n_components)])


def _quantile_name(q: float) -> str:
    return f"q{round(q * 100):02d}"


def predict_source(model, source) -> np.ndarray:
    """The mixture mean of every row of ``source``, in plan order (read in this process).

    The source may lack a target (``ParquetSource(..., target=None)``); its
    features must be the fit's (:func:`streammix.estimator.base.source_like_fit`).
    """
    check_fitted(model)
    check_concomitant_columns(model, source)
    params = model.params_
    means = []
    for chunk in map(source.read, source.plan()):
        component_means = design_matrix(chunk.X, model.fit_intercept) @ params.beta.T
        means.append(_weighted(component_means, row_weights(model, chunk), model))
    return np.concatenate(means) if means else np.empty(0)


def check_concomitant_columns(model, source) -> None:
    """Refuse a source without the concomitant columns of a model fitted with a gate.

    The weights of such a model are π(z): predictions need z on every row,
    matched by name (by position when the gate was fitted on an array, whose
    columns are named z0, z1, ...).
    """
    if getattr(model, "concomitant_coef_", None) is None:
        return
    names = list(model.concomitant_names_)
    given = list(getattr(source, "concomitant_names", None) or [])
    generic = names == [f"z{k}" for k in range(len(names))]
    if len(given) != len(names) or (given != names and not generic):
        gate = getattr(model, "concomitant_formula_", None)
        how = f"concomitant={names}" if gate is None else \
            "concomitant=model.concomitant_formula_, the gate formula with the fit's levels"
        raise DataError(f"the model was fitted with concomitant variables {list(names)}: "
                        f"its weights are pi(z), so the source must carry them (make it with "
                        f"{how}); it has {given or 'none'}")


def _weighted(values: np.ndarray, weights: np.ndarray, model) -> np.ndarray:
    """Σ_j w_ij v_ij by row; a plain model's one weight vector as a product, like predict."""
    if getattr(model, "concomitant_coef_", None) is None:
        return values @ model.params_.weights
    return np.sum(values * weights, axis=1)


def row_weights(model, chunk) -> np.ndarray:
    """The weights of the rows of ``chunk`` (n, m): π(z) under a fitted gate, else π."""
    coef = getattr(model, "concomitant_coef_", None)
    if coef is None:
        return np.broadcast_to(model.params_.weights, (chunk.n_rows, model.params_.n_components))
    if chunk.Z is None:  # pragma: no cover - check_concomitant_columns refuses such sources
        raise DataError(f"{chunk.origin}: no concomitant columns for a model with a gate")
    return np.exp(log_gate(with_intercept(np.asarray(chunk.Z, float)), coef))


def mixture_quantiles(means: np.ndarray, weights, sigma, qs, n_iter: int = 60) -> np.ndarray:
    """Quantiles ``qs`` of the mixture Σ_j π_j N(means[:, j], σ_j²), row by row, shape
    (n, len(qs)): the mixture CDF inverted by bisection (to about 1e-15 of the bracket).
    ``weights`` is (m,), or (n, m) for weights π(z) of each row."""
    from scipy.special import ndtr

    sigma = np.asarray(sigma, float)
    weights = np.broadcast_to(np.asarray(weights, float), means.shape)
    out = np.empty((means.shape[0], len(qs)))
    lo0 = (means - 9 * sigma).min(axis=1)
    hi0 = (means + 9 * sigma).max(axis=1)
    for k, q in enumerate(qs):
        lo, hi = lo0.copy(), hi0.copy()
        for _ in range(n_iter):
            mid = 0.5 * (lo + hi)
            below = np.sum(ndtr((mid[:, None] - means) / sigma) * weights, axis=1) < q
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out[:, k] = 0.5 * (lo + hi)
    return out


def write_predictions(model, source, out_dir, *, keep=None, overwrite: bool = False,
                      storage_options: dict | None = None) -> PredictionSummary:
    """Write the predictions of ``model`` for every row of ``source`` under ``out_dir``.

    Parameters
    ----------
    model : MixtureOfLinearRegressions
        A fitted model.
    source : ParquetSource
        The rows.  With a target column, the posterior probabilities and the
        log-likelihood are written; without one (``target=None``), the
        mixture's standard deviation and quantiles and the prior probabilities.
    out_dir : path or str
        Output folder, local or any fsspec URL (``s3://bucket/pred``); it
        must not exist unless ``overwrite``.
    keep : list of str, optional
        Input columns copied to the output.  Without it, a ``row_id``
        column (the row's index in its input file) identifies each row;
        ``"row_id"`` among them keeps that column too (rows dropped by
        ``on_invalid="drop"`` leave gaps in it).
    overwrite : bool
        Replace an existing ``out_dir`` (only once the new one is complete).
    storage_options : dict, optional
        fsspec options for a URL ``out_dir``; by default the source's when
        it uses the same file system, else none (the environment's
        credentials).  Never shown.

    Raises
    ------
    ValueError
        ``out_dir`` is, lies inside, or holds an input (a lake's folder or
        file, local or at a URL of the same file system): see
        :func:`~streammix.estimator.destination.check_apart_from_inputs`.
    FileExistsError
        ``out_dir`` exists (without ``overwrite``), checked before any
        work, or appeared while the predictions were written: the final
        claim never replaces another run's output
        (:mod:`streammix.estimator.destination`).

    Returns
    -------
    PredictionSummary

    Notes
    -----
    Columns: the passthrough columns or ``row_id``; ``mean``, the mixture
    mean Σ_j π_j (a_jᵀx + b_j); with the target, ``component``, the most
    likely component given x and y, numbered from 1 like the report;
    ``loglik``, log p(y | x); ``prob_j``, the posterior probability of
    component j.  Without the target, ``sd``, the standard deviation of y
    given x under the mixture; ``q05``, ``q50``, ``q95``, its quantiles;
    ``prior_j``, the probability of component j given x alone (π_j, or
    π_j(z) for a model fitted with concomitant variables: the source must
    then carry them, ``concomitant=[...]``, and they enter the mean, the
    quantiles and the posteriors too).  A source with a group column
    (``groups="id"``, with the target) gives every row its group's
    posteriors in ``prob_j`` and ``component`` (grouped classes: one more
    pass sums each group's log-densities, :mod:`.grouped_prediction`);
    ``loglik`` stays the row's own.  Input
    files without rows (after filters) give no output file.  At a URL the
    files are copied into place once all are written, and ``_SUCCESS`` is
    written last.
    """
    check_fitted(model)
    if source.n_features != model.n_features_in_:
        raise DataError(f"the data has {source.n_features} feature columns; the model was "
                        f"fitted on {model.n_features_in_}")
    check_concomitant_columns(model, source)
    keep = list(keep or [])
    computed = prediction_columns(model.n_components_, source.target is not None)
    clash = sorted(set(keep) & set(computed))
    if clash:
        raise ValueError(f"--keep column(s) {clash} clash with the output columns {computed}")
    if len(set(keep)) != len(keep):
        raise ValueError(f"--keep names a column twice: {keep}")
    destination = open_destination(out_dir, storage_options=_output_options(
        source, out_dir, storage_options))
    check_apart_from_inputs(source, out_dir)
    destination.check(overwrite)
    groups = None
    if source.target is not None and getattr(source, "groups", None) is not None:
        groups = group_posteriors(model, source)
    elif source.target is not None and hasattr(model, "n_groups_"):
        logger.warning("the model was fitted with grouped classes but the data have no group "
                       "column: prob_j are those of each row alone (give the group column "
                       "for each group's)")
    destination.start()  # after every pass that may fail: a temporary is never left
    try:
        files, n_rows = _write_all(model, source, destination, keep, groups)
        destination.commit(overwrite)
    except BaseException:
        destination.abort()
        raise
    logger.info("wrote predictions for %d rows in %d files to %s", n_rows, len(files),
                destination.shown)
    return PredictionSummary(destination.location, tuple(files), n_rows)


def _output_options(source, out_dir, storage_options: dict | None) -> dict:
    """The fsspec options of the output: given, else the source's on the same file system."""
    if storage_options is not None:
        return dict(storage_options)
    items = getattr(source, "path_or_url", None)
    items = [items] if isinstance(items, (str, os.PathLike)) else list(items or [])
    same = bool(items) and {protocol_of(os.fspath(i)) for i in items} == {
        protocol_of(os.fspath(out_dir))}
    return dict(getattr(source, "storage_options", None) or {}) if same else {}


def _write_all(model, source, destination, keep: list[str], groups=None):
    params = model.params_
    files: list[str] = []
    n_rows = 0
    for path, pieces in itertools.groupby(source.plan(), key=lambda piece: piece.path):
        writer = handle = relative = None
        try:
            for piece in pieces:
                chunk = source.read(piece)
                table = _predict_chunk(model, params, chunk,
                                       _passthrough(source, piece, chunk, keep),
                                       source.target is not None,
                                       where=getattr(source, "shown", str)(path),
                                       groups=groups)
                if writer is None:
                    relative = _safe_relative(chunk.origin, path)
                    handle = destination.open(relative)
                    writer = pq.ParquetWriter(handle, table.schema)
                    files.append(relative)
                writer.write_table(table)
                n_rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
            if handle is not None:
                handle.close()
        if relative is not None:
            destination.file_done(relative)
    return files, n_rows


def check_finite_mean(mean: np.ndarray, params, where: str, first_row: int = 0,
                      tail: str = "") -> np.ndarray:
    """``mean``, or :class:`DataError` naming the first row where it overflowed.

    Finite inputs give a non-finite mixture mean only when the coefficients
    are far out of scale for the data (or the model file was edited).
    """
    finite = np.isfinite(mean)
    if not np.all(finite):
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"{where}: the model predicts {float(mean[row])!r} at row {first_row + row} "
            f"(its largest coefficient is {np.max(np.abs(params.beta)):.3g}); the model does "
            f"not fit these data, or its file was edited{tail}")
    return mean


def _predict_chunk(model, params, chunk, passthrough: pa.Table | None,
                   with_target: bool = True, where: str | None = None,
                   groups=None) -> pa.Table:
    Xd = design_matrix(chunk.X, model.fit_intercept)
    weights = row_weights(model, chunk)
    with np.errstate(over="ignore", invalid="ignore"):
        means = Xd @ params.beta.T
        mean = _weighted(means, weights, model)
    check_finite_mean(mean, params, where or chunk.origin, chunk.first_row,
                      "; no predictions were written")
    columns: dict[str, pa.Array] = {}
    if passthrough is None:
        columns["row_id"] = _row_ids(chunk)
    else:
        for name in passthrough.column_names:
            columns[name] = passthrough.column(name)
    columns["mean"] = pa.array(mean)
    m = params.n_components
    if not with_target:
        sigma = np.sqrt(params.sigma2)
        second = _weighted(means**2 + params.sigma2, weights, model)
        columns["sd"] = pa.array(np.sqrt(np.maximum(second - mean**2, 0.0)))
        quantiles = mixture_quantiles(means, weights, sigma, QUANTILES)
        for k, q in enumerate(QUANTILES):
            columns[_quantile_name(q)] = pa.array(quantiles[:, k])
        for j in range(m):
            columns[f"prior_{j + 1}"] = pa.array(np.ascontiguousarray(weights[:, j]))
        return pa.table(columns)
    if chunk.n_rows and getattr(model, "concomitant_coef_", None) is not None:
        loglik, log_resp = gating_loglik(Xd, chunk.y, with_intercept(np.asarray(chunk.Z, float)),
                                         params, model.concomitant_coef_)
    elif chunk.n_rows:
        loglik, log_resp, _ = log_responsibilities(Xd, chunk.y, params)
    else:
        loglik, log_resp = np.empty(0), np.empty((0, m))
    if groups is not None and chunk.n_rows:  # grouped classes: the posteriors of the group
        log_resp = groups.rows(chunk.groups)
    columns["component"] = pa.array((np.argmax(log_resp, axis=1) + 1).astype(np.int32))
    columns["loglik"] = pa.array(loglik)
    prob = np.exp(log_resp)
    for j in range(m):
        columns[f"prob_{j + 1}"] = pa.array(prob[:, j])
    return pa.table(columns)


def _row_ids(chunk) -> pa.Array:
    """Each row's index in its input file."""
    row_ids = (chunk.row_ids if chunk.row_ids is not None
               else np.arange(chunk.first_row, chunk.first_row + chunk.n_rows))
    return pa.array(np.asarray(row_ids, dtype=np.int64))


def _passthrough(source, piece, chunk, keep: list[str]) -> pa.Table | None:
    """The ``keep`` columns of the chunk's rows, in the chunk's row order.

    ``"row_id"`` is the row's index in its file (:func:`_row_ids`).
    """
    if not keep:
        return None
    partition = dict(piece.partition)
    in_file = [name for name in keep if name not in partition and name != "row_id"]
    if getattr(source, "format", "parquet") != "parquet":  # CSV, JSON lines: whole files
        missing = [name for name in in_file if not source.has_column(name)]
        if missing:
            raise DataError(f"--keep column {missing[0]!r} is missing in some files of the data")
        table = source.read_columns(piece, in_file).select(in_file)
    else:
        table = _parquet_columns(source, piece, in_file)
    if chunk.row_ids is not None:
        table = table.take(pa.array(chunk.row_ids - piece.first_row))
    elif table.num_rows != chunk.n_rows:  # pragma: no cover - the source read the same rows
        raise DataError(f"{piece.path}: read {table.num_rows} rows for --keep, expected "
                        f"{chunk.n_rows}")
    columns = {}
    for name in keep:
        if name == "row_id":
            columns[name] = _row_ids(chunk)
        elif name in partition:
            typ = source.partition_types[name]
            columns[name] = pa.array([partition[name]] * chunk.n_rows, typ)
        else:
            columns[name] = table.column(name)
    return pa.table(columns)


def _parquet_columns(source, piece, in_file: list[str]) -> pa.Table:
    """Columns ``in_file`` of the row groups of a Parquet chunk."""
    try:
        with source.filesystem().open_input_file(piece.path) as fh:
            reader = pq.ParquetFile(fh)
            names = reader.schema_arrow.names
            missing = [name for name in in_file if name not in names]
            if missing:
                raise DataError(f"{piece.path}: --keep column {missing[0]!r} is missing (the "
                                f"file has columns {', '.join(names)})")
            return reader.read_row_groups(list(piece.row_groups), columns=in_file,
                                          use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{piece.path}: cannot read --keep columns: {exc}") from None


def _safe_relative(origin: str, path: str) -> str:
    relative = posixpath.normpath(origin.replace(os.sep, "/")).lstrip("/")
    if relative in ("", ".") or relative.startswith("../"):
        relative = posixpath.basename(path)
    return output_name(relative)
