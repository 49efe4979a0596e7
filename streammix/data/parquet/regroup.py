"""Rewrite a Parquet lake so that every group lies in one file: :func:`regroup`.

A fit with grouped classes (``ParquetSource(..., groups="id")``) needs each
group whole in one map task; when a lake's groups are spread over many
files, the tasks that join their chunks grow beyond ``max_task_rows``.
:func:`regroup` reads the lake with ``dask.dataframe.read_parquet``,
shuffles the rows on the group column (every group then sits in one
partition), sorts each partition by group (stable: the rows of a group keep
their order) and writes one file per partition with ``to_parquet``.  It
runs on the Dask scheduler in use (a ``distributed.Client`` if one is
active, else Dask's local threads).

The output is written to a temporary folder next to ``out`` and renamed into
place when complete, so ``out`` is either absent or whole.  An existing
``out`` is refused unless ``overwrite=True``; an ``out`` equal to, inside,
or containing the input is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path

from streammix.data.parquet.files import protocol_of, redact_url
from streammix.exceptions import DataError

__all__ = ["regroup"]

logger = logging.getLogger(__name__)


def regroup(path_or_url, groups: str, out, *, overwrite: bool = False,
            npartitions: int | None = None, storage_options: dict | None = None) -> Path:
    """Rewrite the lake ``path_or_url`` into ``out``, clustered by the column ``groups``.

    Parameters
    ----------
    path_or_url : str or path
        The lake: a Parquet file, folder or glob, local or an fsspec URL.
    groups : str
        The group column.
    out : str or path
        The local folder to create.
    overwrite : bool, default=False
        Replace an existing ``out`` (only once the new lake is complete).
    npartitions : int, optional
        Files to write (default: as many as the partitions Dask reads).
    storage_options : dict, optional
        Passed to fsspec for a remote input.

    Returns
    -------
    Path
        ``out``, resolved.

    Raises
    ------
    DataError
        When ``out`` exists (without ``overwrite``), is or holds or lies inside
        the input, the group column is missing, or a group id is null.
    """
    import dask.dataframe as dd

    out = Path(out).resolve()
    _check_places(path_or_url, out, overwrite)
    shown = redact_url(path_or_url)
    where = [os.fspath(p) for p in path_or_url] if isinstance(path_or_url, (list, tuple)) \
        else os.fspath(path_or_url)
    try:
        frame = dd.read_parquet(where, storage_options=storage_options)
    except (OSError, ValueError) as exc:
        raise DataError(f"{shown}: cannot read the lake: {exc}") from None
    if groups not in frame.columns:
        raise DataError(f"{shown}: the group column {groups!r} is missing (the lake has "
                        f"columns {', '.join(map(str, frame.columns))})")
    n_null = int(frame[groups].isna().sum().compute())
    if n_null:
        raise DataError(f"{shown}: column {groups!r} has {n_null} null group "
                        f"id{'s' if n_null != 1 else ''}: every row needs a group")
    n = frame.npartitions if npartitions is None else int(npartitions)
    if n < 1:
        raise ValueError(f"npartitions must be >= 1, got {npartitions!r}")
    clustered = frame.shuffle(on=groups, npartitions=n).map_partitions(
        _sorted_by, groups, meta=frame._meta)
    temporary = out.parent / f".{out.name}.regroup-{uuid.uuid4().hex[:8]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # dask's own use of a deprecated pandas keyword
            warnings.filterwarnings("ignore", message="The inplace keyword")
            clustered.to_parquet(os.fspath(temporary), write_index=False,
                                 write_metadata_file=False)
        _move_into_place(temporary, out, overwrite)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    logger.info("regrouped %s by %r into %s (%d files)", shown, groups, out, n)
    return out


def _sorted_by(part, column: str):
    return part.sort_values(column, kind="stable")


def _check_places(path_or_url, out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists: choose another --out, or give --overwrite "
                        "(overwrite=True) to replace it")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder: it cannot be replaced by a lake")
    items = path_or_url if isinstance(path_or_url, (list, tuple)) else [path_or_url]
    for item in items:
        item = os.fspath(item)
        if protocol_of(item) != "file":
            continue
        source = Path(item.removeprefix("file://")).resolve()
        if source == out or out in source.parents or source in out.parents:
            raise DataError(f"--out {out} must be outside the input {source} and must not "
                            "contain it")


def _move_into_place(temporary: Path, out: Path, overwrite: bool) -> None:
    """Rename the complete lake to ``out``; an old ``out`` is removed only afterwards."""
    old = None
    if out.exists():
        if not overwrite:  # appeared while writing
            raise DataError(f"{out} appeared while the lake was written: not replaced")
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
    try:
        os.rename(temporary, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
