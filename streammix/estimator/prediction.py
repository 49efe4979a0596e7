"""Predictions of a fitted model over a Parquet source, written as Parquet, atomically.

One output file per input file (same relative path under the output
folder), written chunk by chunk, so memory is bounded by one chunk.
Everything is written into a temporary folder beside the output folder and
renamed into place at the end: a failed or interrupted run leaves nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from streammix.atomic import rename_no_replace, temporary_folder
from streammix.core.checks import check_fitted
from streammix.core.gating import gating_loglik, log_gate, with_intercept
from streammix.core.stats import design_matrix, log_responsibilities
from streammix.data.parquet.files import protocol_of, strip_protocol
from streammix.exceptions import DataError

__all__ = ["write_predictions", "check_apart_from_inputs", "PredictionSummary",
           "prediction_columns", "predict_source", "QUANTILES", "check_finite_mean"]

#: The mixture quantiles written for rows without a target (columns q05, q50, q95).
QUANTILES = (0.05, 0.5, 0.95)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionSummary:
    """What :func:`write_predictions` wrote."""

    out_dir: Path
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
        raise DataError(f"the model was fitted with concomitant variables {list(names)}: "
                        f"its weights are pi(z), so the source must carry them (make it with "
                        f"concomitant={names}); it has {given or 'none'}")


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


def write_predictions(model, source, out_dir, *, keep=None, overwrite: bool = False
                      ) -> PredictionSummary:
    """Write the predictions of ``model`` for every row of ``source`` under ``out_dir``.

    Parameters
    ----------
    model : MixtureOfLinearRegressions
        A fitted model.
    source : ParquetSource
        The rows.  With a target column, the posterior probabilities and the
        log-likelihood are written; without one (``target=None``), the
        mixture's standard deviation and quantiles and the prior probabilities.
    out_dir : path
        Output folder; it must not exist unless ``overwrite``.
    keep : list of str, optional
        Input columns copied to the output.  Without it, a ``row_id``
        column (the row's index in its input file) identifies each row;
        ``"row_id"`` among them keeps that column too (rows dropped by
        ``on_invalid="drop"`` leave gaps in it).
    overwrite : bool
        Replace an existing ``out_dir`` (only once the new one is complete).

    Raises
    ------
    ValueError
        ``out_dir`` is, lies inside, or holds an input (a local lake's folder
        or file): see :func:`check_apart_from_inputs`.
    FileExistsError
        ``out_dir`` exists (without ``overwrite``), or appeared while the
        predictions were written: the final rename is an atomic claim
        (:func:`streammix.atomic.rename_no_replace`) that never replaces
        another run's output.

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
    quantiles and the posteriors too).  Input
    files without rows (after filters) give no output file.
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
    out_dir = Path(out_dir)
    check_apart_from_inputs(source, out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; remove it or pass --overwrite")
    parent = out_dir.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {out_dir}: folder {parent} does not exist")
    tmp = temporary_folder(out_dir)
    try:
        files, n_rows = _write_all(model, source, tmp, keep)
        _sync_folder(tmp)
        _claim(tmp, out_dir, parent, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote predictions for %d rows in %d files to %s", n_rows, len(files), out_dir)
    return PredictionSummary(out_dir, tuple(files), n_rows)


def _claim(tmp: Path, out_dir: Path, parent: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` onto ``out_dir``: an atomic claim that fails if
    ``out_dir`` appeared meanwhile (another run), unless replacing is asked for."""
    old = None
    if overwrite and out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=parent))
        os.replace(out_dir, old / "x")
    try:
        rename_no_replace(tmp, out_dir)
    except FileExistsError:
        kept = "" if old is None else f"; the output it replaced was moved to {old / 'x'}"
        raise FileExistsError(
            f"{out_dir} appeared while these predictions were written (another run wrote "
            f"it?); it was left as it is and these predictions were not written{kept}"
        ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_apart_from_inputs(source, out_dir) -> None:
    """Refuse an output folder that is, holds or lies inside an input of ``source``.

    Predictions written inside a lake would be read as data by the next fit
    of it, and ``--overwrite`` of a folder holding an input would delete the
    input.  Only local inputs are checked (a remote lake cannot overlap a
    local folder).

    Raises
    ------
    ValueError
        Naming the output and the input it overlaps.
    """
    items = getattr(source, "path_or_url", None)
    if items is None or not hasattr(source, "files"):
        return
    items = [items] if isinstance(items, (str, os.PathLike)) else list(items)
    items = [os.fspath(item) for item in items]
    if any(protocol_of(item) != "file" for item in items):
        return
    out = Path(os.path.realpath(out_dir))
    paths = [strip_protocol(item, "file") for item in items]
    inputs = [Path(os.path.realpath(path)) for path in paths if os.path.isdir(path)]
    inputs += [Path(os.path.realpath(f)) for f in source.files]
    for given in inputs:
        if out == given or given in out.parents:
            raise ValueError(f"--out {out_dir} is inside the input {given}: predictions "
                             "there would be read as data by the next fit of it; choose a "
                             "folder outside the input")
        if out in given.parents:
            raise ValueError(f"--out {out_dir} holds the input {given}; writing there "
                             "(--overwrite replaces the folder) would destroy the input; "
                             "choose a folder outside the input")


def _write_all(model, source, tmp: Path, keep: list[str]):
    params = model.params_
    files: list[str] = []
    n_rows = 0
    for path, pieces in itertools.groupby(source.plan(), key=lambda piece: piece.path):
        writer = None
        target = None
        try:
            for piece in pieces:
                chunk = source.read(piece)
                table = _predict_chunk(model, params, chunk,
                                       _passthrough(source, piece, chunk, keep),
                                       source.target is not None,
                                       where=getattr(source, "shown", str)(path))
                if writer is None:
                    relative = _safe_relative(chunk.origin, path)
                    target = tmp / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(target, table.schema)
                    files.append(relative)
                writer.write_table(table)
                n_rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
        if target is not None:
            _sync_file(target)
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
                   with_target: bool = True, where: str | None = None) -> pa.Table:
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
    try:
        with source.filesystem().open_input_file(piece.path) as fh:
            reader = pq.ParquetFile(fh)
            names = reader.schema_arrow.names
            missing = [name for name in in_file if name not in names]
            if missing:
                raise DataError(f"{piece.path}: --keep column {missing[0]!r} is missing (the "
                                f"file has columns {', '.join(names)})")
            table = reader.read_row_groups(list(piece.row_groups), columns=in_file,
                                           use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{piece.path}: cannot read --keep columns: {exc}") from None
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


def _safe_relative(origin: str, path: str) -> str:
    relative = posixpath.normpath(origin.replace(os.sep, "/")).lstrip("/")
    if relative in ("", ".") or relative.startswith("../"):
        relative = posixpath.basename(path)
    if not relative.endswith(".parquet"):
        relative += ".parquet"
    return relative


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    for root, _, _ in os.walk(folder):
        try:
            fd = os.open(root, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)
