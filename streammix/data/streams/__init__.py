"""Stream sources for online EM: iterators, Arrow IPC streams, watched folders.

Every source yields :class:`StreamBatch` objects: validated arrays plus an
identity ``(key, first_row)`` (the stream a batch comes from and the offset
of its first row there), which the online state's ledger uses so that a
batch replayed after a restart is not counted twice.

* :func:`iter_batches` -- a Python iterable of ``(X, y)``, ``(X, y, w)``,
  pandas DataFrames or pyarrow RecordBatches/Tables; key ``"iterator"``
  (or one you give), offsets counted in rows.
* :class:`ArrowStreamSource` -- an Arrow IPC *stream* (or several, one
  after the other) from a file or from standard input (``"-"``); key
  ``"arrow:<hash>"``, a hash of the schema and the first batch, so a
  stream is known by its content wherever it comes from.
* :class:`FolderStream` -- a folder where Parquet files land.  See its
  docstring for the landing protocol; each file is known by its content
  identity (``"file:<size>-<mtime>-<footer hash>"``), not its name.

Bad batches get the errors of batch fitting (:class:`DataError` naming the
batch or file, the column and the rows), through :mod:`streammix.core.checks`.
"""

from __future__ import annotations

from streammix.data.streams.arrow_stream import ArrowStreamSource
from streammix.data.streams.batches import (
    ON_ERROR,
    StreamBatch,
    batch_arrays,
    check_batch_values,
    iter_batches,
    unchecked_batch_arrays,
)
from streammix.data.streams.folder_stream import FolderStream

__all__ = ["StreamBatch", "batch_arrays", "unchecked_batch_arrays", "check_batch_values",
           "iter_batches", "ArrowStreamSource", "FolderStream", "ON_ERROR"]
