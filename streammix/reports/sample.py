"""A random sample of the rows of a Parquet file or folder, or of a CSV file, for figures.

The rows are drawn by the pass-0 reservoir sampler
(:class:`~streammix.algorithms.start.profile.ProfileTask`), one record batch
at a time and only the needed columns, so the data may be larger than
memory; columns are checked as :class:`streammix.ParquetSource` checks them
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


def _parquet_batches(path: Path, columns: list[str]):
    import pyarrow.parquet as pq

    files = sorted(p for p in path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .parquet files in this folder")
    for file in files:
        try:
            pf = pq.ParquetFile(file)
        except Exception as exc:
            raise DataError(f"{file}: not a readable Parquet file ({exc})") from None
        names = pf.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{file}: missing column(s) {missing}; it has {names}")
        yield str(file), pf.iter_batches(columns=columns, batch_size=65_536)


def read_sample(path, target: str, features: list[str], size: int = 5000, seed: int = 0):
    """A chunk-invariant random sample of rows of a Parquet file/folder or CSV file.

    Returns ``(X, y)`` with at most ``size`` rows; the data is read one record
    batch at a time and only the needed columns.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    columns = list(features) + [target]
    if len(set(columns)) != len(columns):
        raise DataError(f"the target {target!r} is also listed as a feature")
    is_csv = path.is_file() and path.suffix.lower() in (".csv", ".gz", ".txt")
    batches = _csv_batches(path, columns) if is_csv else _parquet_batches(path, columns)
    task = ProfileTask(int(seed), int(size))

    def profiles():
        for origin, reader in batches:
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

    profile = tree_sum(profiles(), Profile.empty(len(features), int(size)))
    if profile.n_rows == 0:
        raise DataError(f"{path}: no rows")
    logger.info("sampled %d of %d rows from %s", profile.y.size, profile.n_rows, path)
    return profile.X, profile.y
