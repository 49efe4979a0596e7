"""A random sample of the rows of a Parquet data set, or of a CSV file, for figures.

The rows are drawn by the pass-0 reservoir sampler
(:class:`~streammix.algorithms.start.profile.ProfileTask`), one chunk at a
time and only the needed columns, so the data may be larger than memory.
Parquet is read by :class:`streammix.ParquetSource`, so a figure reads what
a fit reads (globs, URLs, hive partitions, filters, ``on_invalid``); CSV
columns are checked as it checks them
(:func:`streammix.data.parquet.columns.to_float`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from streammix.algorithms.start.profile import Profile, ProfileTask
from streammix.core.chunk import Chunk
from streammix.core.reduce import tree_sum
from streammix.data.parquet.columns import to_float
from streammix.exceptions import DataError

__all__ = ["read_sample"]

logger = logging.getLogger(__name__)


def _csv_batches(path: Path, columns: list[str]):
    import pyarrow.csv as pacsv

    try:
        reader = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=columns))
    except Exception as exc:  # pyarrow raises several types for a bad or empty file
        raise DataError(f"{path}: cannot read as CSV ({exc})") from None
    yield str(path), reader


def read_sample(path, target: str, features: list[str], size: int = 5000, seed: int = 0, *,
                on_invalid: str = "error", filters=None, storage_options: dict | None = None,
                formula=None):
    """A chunk-invariant random sample of rows of a Parquet data set or a CSV file.

    Parameters
    ----------
    path : str or path
        What :class:`~streammix.ParquetSource` reads (a file, a folder with
        hive partitions, a glob, a URL), or a CSV file (``.csv``, ``.gz``,
        ``.txt``).
    target : str
    features : list of str
    size : int
        At most this many rows are kept.
    seed : int
        Seed of the reservoir sampler.
    on_invalid, filters, storage_options
        As for :class:`~streammix.ParquetSource` (Parquet only).
    formula : FormulaDesign, optional
        A learned formula (a model's ``formula_``): the rows are read through
        it, X holding its design columns (``target`` and ``features`` are then
        the formula's; Parquet only).

    Returns
    -------
    X, y : ndarray
        The sampled rows; the data is read one chunk at a time and only the
        needed columns.

    Raises
    ------
    DataError
        Naming the file, column and row of what is wrong.
    """
    columns = list(features) + [target]
    if len(set(columns)) != len(columns):
        raise DataError(f"the target {target!r} is also listed as a feature")
    task = ProfileTask(int(seed), int(size))
    local = Path(path)
    if formula is not None:
        from streammix.data.parquet.source import ParquetSource

        source = ParquetSource(path, formula=formula, on_invalid=on_invalid, filters=filters,
                               storage_options=storage_options)
        profile = tree_sum((task(source.read(piece)) for piece in source.plan()),
                           Profile.empty(len(features), int(size)))
    elif local.is_file() and local.suffix.lower() in (".csv", ".gz", ".txt"):
        profile = tree_sum(_csv_profiles(local, columns, features, task),
                           Profile.empty(len(features), int(size)))
    else:
        from streammix.data.parquet.source import ParquetSource

        source = ParquetSource(path, target=target, features=list(features),
                               on_invalid=on_invalid, filters=filters,
                               storage_options=storage_options)
        profile = tree_sum((task(source.read(piece)) for piece in source.plan()),
                           Profile.empty(len(features), int(size)))
    if profile.n_rows == 0:
        raise DataError(f"{path}: no rows")
    logger.info("sampled %d of %d rows from %s", profile.y.size, profile.n_rows, path)
    return profile.X, profile.y


def _csv_profiles(path: Path, columns: list[str], features: list[str], task):
    """The reservoir sample of each record batch of a CSV file."""
    for origin, reader in _csv_batches(path, columns):
        first = 0
        try:
            for batch in reader:
                arrays = []
                rows = np.arange(first, first + batch.num_rows)
                for name in columns:
                    if name not in batch.schema.names:
                        raise DataError(f"{origin}: missing column {name!r}")
                    values, _, problem = to_float(batch.column(name), name, rows, origin)
                    if problem is not None:
                        raise DataError(problem)
                    arrays.append(values)
                n = len(arrays[-1])
                X = np.column_stack(arrays[:-1]) if features else np.empty((n, 0))
                yield task(Chunk(X, arrays[-1], np.ones(n), origin, first))
                first += n
        except DataError:
            raise
        except Exception as exc:  # decoding errors of a corrupt file
            raise DataError(f"{origin}: cannot read rows from {first} on ({exc})") from None
