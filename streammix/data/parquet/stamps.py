"""What identifies the content of a Parquet file while a fit reads it: its stamp.

A :class:`FileStamp` -- size, modification time and a hash of the footer --
is taken when a :class:`~streammix.ParquetSource` plans (from the footer it
reads anyway) and is carried by every chunk descriptor of the file.  The
task that reads a chunk re-opens the file, so it compares the stamp of what
it opened with the planned one for free: the size and the footer are what
it reads to find its row groups, and the time is one ``stat`` (local files
only: on remote file systems it would be one more request per chunk; the
size and footer are still compared).  A file rewritten or removed during a
fit stops it with :class:`~streammix.SourceChangedError`, which names the
file and what changed, instead of a fit that mixes the old data and the
new.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from typing import NamedTuple

import pyarrow as pa

from streammix.exceptions import SourceChangedError

__all__ = ["FileStamp", "footer_hash", "check_stamp", "local_mtime_ns"]


class FileStamp(NamedTuple):
    """Size in bytes, modification time (ns since the epoch, or None) and footer hash."""

    size: int
    mtime_ns: int | None
    footer: str


def footer_hash(metadata) -> str:
    """A 64-bit hash of a file's serialised Parquet footer (``FileMetaData``)."""
    sink = pa.BufferOutputStream()
    metadata.write_metadata_file(sink)
    return hashlib.blake2b(sink.getvalue().to_pybytes(), digest_size=8).hexdigest()


def local_mtime_ns(path: str) -> int | None:
    """The modification time of a local file in ns, or None if it is gone."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


def _time(ns: int | None) -> str:
    if ns is None:
        return "unknown"
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S.%f UTC")


def check_stamp(shown: str, planned: FileStamp | None, size: int | None,
                mtime_ns: int | None, footer: str | None) -> None:
    """Raise :class:`~streammix.SourceChangedError` if a file is not as planned.

    ``None`` for ``size`` means the file is gone; ``None`` for ``mtime_ns``
    or ``footer`` means "not measured" (not compared).
    """
    if planned is None:
        return
    if size is None:
        what = ["it no longer exists"]
    else:
        what = []
        if size != planned.size:
            what.append(f"size {planned.size} then, {size} bytes now")
        if mtime_ns is not None and planned.mtime_ns is not None and mtime_ns != planned.mtime_ns:
            what.append(f"modified {_time(planned.mtime_ns)} then, {_time(mtime_ns)} now")
        if footer is not None and footer != planned.footer:
            what.append("its Parquet footer differs")
    if what:
        raise SourceChangedError(
            f"{shown} changed while the fit was reading it ({'; '.join(what)}): the fit was "
            "planned on the earlier file, and its results would mix the old data and the new. "
            "Fit again once the data stop changing (a checkpoint of this fit cannot be "
            "resumed on the changed data)")
