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

import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from streammix.core.checks import check_finite, check_weights
from streammix.data.arrays import as_2d_float
from streammix.exceptions import DataError

__all__ = ["StreamBatch", "batch_arrays", "unchecked_batch_arrays", "check_batch_values",
           "iter_batches", "ArrowStreamSource", "FolderStream",
           "ON_ERROR"]

logger = logging.getLogger(__name__)

#: What a source does with a bad batch or a corrupt file.
ON_ERROR = ("stop", "skip", "quarantine")


@dataclass(frozen=True)
class StreamBatch:
    """One validated batch: raw features, target, weights and its identity.

    ``last`` is True for the final batch of a file (the ledger then marks
    the file done).  ``digest`` (Arrow streams) hashes every row of the
    stream up to the end of this batch; the consumer stores it in the
    ledger, so that a replay can be checked against what was consumed.
    ``name`` (folders) is the file's name, recorded in its ledger entry.
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    key: str
    first_row: int
    feature_names: tuple
    last: bool = False
    digest: str | None = None
    name: str | None = None

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])


def _column(table, name: str, where: str) -> np.ndarray:
    if name not in table.column_names:
        raise DataError(f"{where}: missing column {name!r} (it has {table.column_names})")
    col = table.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
            or pa.types.is_boolean(col.type) or pa.types.is_decimal(col.type)):
        raise DataError(f"{where}: column {name!r} has type {col.type}, expected a number")
    if col.null_count:
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        first = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise DataError(f"{where}: column {name!r} has {col.null_count} null value"
                        f"{'s' if col.null_count != 1 else ''}, first at row {first}")
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _pandas_to_arrow(df):
    return pa.Table.from_pandas(df, preserve_index=False)


def batch_arrays(batch, y=None, sample_weight=None, *, target: str | None = None,
                 features=None, weight: str | None = None, where: str = "batch"):
    """Validated ``(X, y, w, feature_names)`` from one batch.

    Parameters
    ----------
    batch : ndarray, pandas DataFrame, pyarrow RecordBatch or Table
        With ``y`` given, the features (all columns of a table).  Without
        ``y``, a table holding the ``target`` column too.
    y, sample_weight : array-like, optional
    target : str, optional
        Name of the target column (tables, when ``y`` is None).
    features : list of str, optional
        Feature columns; default every column but ``target`` and ``weight``.
    weight : str, optional
        Name of a frequency-weight column.
    where : str
        How error messages name the batch.

    Raises
    ------
    DataError
        Missing or non-numeric columns, nulls, NaN or inf, negative weights,
        mismatched lengths.
    """
    X, y, w, features = unchecked_batch_arrays(batch, y, sample_weight, target=target,
                                               features=features, weight=weight, where=where)
    if w is None:
        w = np.ones(X.shape[0])
    check_batch_values(X, y, w, features, target=target, where=where)
    return X, y, w, features


def unchecked_batch_arrays(batch, y=None, sample_weight=None, *, target: str | None = None,
                           features=None, weight: str | None = None, where: str = "batch"):
    """:func:`batch_arrays` without the value checks of :func:`check_batch_values`.

    Columns, types, nulls and shapes are checked; NaN, inf and negative
    weights are not.  ``w`` is None when the batch has no weights.  Tables
    give an F-ordered ``X`` (each feature contiguous, as the E-step reads it).
    """
    if hasattr(batch, "columns") and hasattr(batch, "dtypes") and not isinstance(
            batch, (pa.Table, pa.RecordBatch)):
        batch = _pandas_to_arrow(batch)
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        if y is None and target is None:
            raise ValueError("a table batch needs y or target= (the name of the target column)")
        names = list(batch.column_names)
        if features is None:
            features = [c for c in names if c != target and c != weight]
        features = [str(f) for f in features]
        X = np.empty((batch.num_rows, len(features)), order="F")
        for k, name in enumerate(features):
            X[:, k] = _column(batch, name, where)
        if y is None:
            y = _column(batch, target, where)
        if weight is not None:
            sample_weight = _column(batch, weight, where)
    else:
        X = as_2d_float(batch, "X", where=f"{where}: ")
        if y is None:
            raise DataError(f"{where}: y is required when X is an array")
        features = ([f"x{k}" for k in range(X.shape[1])] if features is None
                    else [str(f) for f in features])
        if len(features) != X.shape[1]:
            raise DataError(f"{where}: {len(features)} feature names for {X.shape[1]} columns")
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise DataError(f"{where}: X has {X.shape[0]} rows but y has {y.shape[0]}")
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    if w is not None and w.shape != (X.shape[0],):
        raise DataError(f"{where}: sample_weight must have shape ({X.shape[0]},), got {w.shape}")
    return X, y, w, tuple(features)


def check_batch_values(X: np.ndarray, y: np.ndarray, w: np.ndarray | None, features, *,
                       target: str | None = None, where: str = "batch") -> None:
    """Raise :class:`DataError` for NaN or inf in ``X``, ``y`` or ``w``, or a negative weight.

    The first problem in the order features (by column), target, weights is
    reported, with its count and first row; ``w=None`` means unit weights.
    """
    prefix = f"{where}: "
    if not np.isfinite(X).all():  # one vectorised test; name the column only when bad
        for k, name in enumerate(features):
            check_finite(X[:, k], f"X column {name!r}", where=prefix)
    check_finite(y, "y" if target is None else f"y column {target!r}", where=prefix)
    if w is not None:
        check_weights(w, where=prefix)


def iter_batches(iterable: Iterable, *, target: str | None = None, features=None,
                 weight: str | None = None, key: str = "iterator") -> Iterator[StreamBatch]:
    """Validated :class:`StreamBatch` objects from an iterable of batches.

    Items are ``(X, y)`` or ``(X, y, w)`` tuples, pandas DataFrames or
    pyarrow RecordBatches/Tables (with ``target=``).  Batch ids are row
    offsets in ``key``, so restarting the iterable from the beginning after
    a crash replays batches that the state then skips.
    """
    offset = 0
    for index, item in enumerate(iterable):
        where = f"{key} batch {index} (rows from {offset})"
        if isinstance(item, tuple):
            X, y, w, names = batch_arrays(item[0], item[1], item[2] if len(item) > 2 else None,
                                          features=features, where=where)
        else:
            X, y, w, names = batch_arrays(item, target=target, features=features,
                                          weight=weight, where=where)
        yield StreamBatch(X, y, w, key, offset, names)
        offset += X.shape[0]


def _failure(path, exc: Exception) -> str:
    """Why a landed file cannot be used: a data error says so itself."""
    if isinstance(exc, DataError):
        return str(exc)
    return f"{path}: unreadable Parquet file ({exc})"


def _rebatch(batches: Iterable, batch_rows: int | None) -> Iterator:
    """Record batches regrouped into tables of ``batch_rows`` rows (the last may be short)."""
    if batch_rows is None:
        yield from batches
        return
    pending, n = [], 0
    for rb in batches:
        while rb.num_rows:
            take = min(batch_rows - n, rb.num_rows)
            pending.append(rb.slice(0, take))
            rb = rb.slice(take)
            n += take
            if n == batch_rows:
                yield pa.Table.from_batches(pending)
                pending, n = [], 0
    if n:
        yield pa.Table.from_batches(pending)


def _checked(tables: Iterator, name: str) -> Iterator:
    """Arrow decoding errors (a truncated or corrupt stream) as :class:`DataError`."""
    rows = 0
    while True:
        try:
            table = next(tables)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{name}: corrupt or truncated Arrow stream after row {rows} "
                            f"({exc})") from None
        rows += table.num_rows
        yield table


#: Prefix of the ledger key of an Arrow stream (a hash of its schema and first batch).
STREAM_KEY_PREFIX = "arrow:"


def _table_digest(table) -> bytes:
    """A hash of the rows of a record batch or table (their Arrow IPC encoding)."""
    h = hashlib.blake2b(digest_size=16)
    for rb in (table.to_batches() if isinstance(table, pa.Table) else [table]):
        h.update(rb.serialize())
    return h.digest()


def _chain(previous: bytes, digest: bytes) -> bytes:
    return hashlib.blake2b(previous + digest, digest_size=16).digest()


def _schema_text(schema: pa.Schema) -> str:
    return ", ".join(f"{field.name}: {field.type}" for field in schema)


def _at_end(fh) -> bool:
    """True when nothing is left to read on ``fh`` (waits for data on a pipe)."""
    peek = getattr(fh, "peek", None)
    if peek is not None:
        return peek(1) == b""
    position = fh.tell()  # pragma: no cover - sys.stdin.buffer and open(..., "rb") peek
    if fh.read(1) == b"":
        return True
    fh.seek(position)
    return False


class ArrowStreamSource:
    """Batches of an Arrow IPC stream (a file, or ``"-"`` for standard input).

    Streams written one after the other (``cat a.arrows b.arrows``) are read
    as one: every stream with the schema of the first is read; a stream with
    another schema (or bytes that are not an Arrow stream) stops the source
    with a :class:`DataError` that says from which row on the input was left
    unread.

    A stream is identified by its content, not by where it comes from: its
    key is ``"arrow:"`` and a hash of its schema and first batch, and each
    :class:`StreamBatch` carries a running hash (``digest``) of every row up
    to its end.  Given the ledger of a checkpoint, the source checks a
    replayed stream against it: the rows the checkpoint consumed are
    skipped only when they hash to what was consumed; a stream that starts
    like the consumed one but differs later, or ends before its consumed
    rows, is refused with a :class:`DataError`.  Another stream (another
    first batch) is simply a new stream, read from its first row.

    Parameters
    ----------
    path : str or path
        File in the Arrow IPC *streaming* format, or ``"-"``.
    target, features, weight : see :func:`batch_arrays`
    batch_rows : int, optional
        Regroup the stream's record batches into batches of this many rows.
    on_error : {"stop", "skip"}
        A bad batch raises :class:`DataError` ("stop") or is logged and
        skipped ("skip").
    ledger : dict, optional
        The ledger of the online state being resumed (``OnlineEM.ledger``),
        to check a replay against.  A ledger written by an earlier streammix
        (streams keyed ``"stdin"`` or by file path, without hashes) is taken
        over with a warning: its one stream is taken to be this one.
    """

    def __init__(self, path, *, target: str, features=None, weight: str | None = None,
                 batch_rows: int | None = None, on_error: str = "stop",
                 ledger: dict | None = None):
        if on_error not in ("stop", "skip"):
            raise ValueError(f"on_error must be 'stop' or 'skip' for a stream, got {on_error!r}")
        self.path = str(path)
        self.key: str | None = None  # known once the first batch is read
        self.target, self.features, self.weight = target, features, weight
        self.batch_rows = batch_rows
        self.on_error = on_error
        self.ledger = ledger if ledger is not None else {}
        self.n_skipped = 0
        self.n_streams = 0
        self._schema: pa.Schema | None = None

    @property
    def name(self) -> str:
        """How messages name the input."""
        return "standard input" if self.path == "-" else self.path

    def __iter__(self) -> Iterator[StreamBatch]:
        if self.path == "-":
            yield from self._batches(sys.stdin.buffer)
        else:
            with open(self.path, "rb") as fh:
                yield from self._batches(fh)

    def _record_batches(self, fh) -> Iterator[pa.RecordBatch]:
        """The record batches of every stream on ``fh`` with the first one's schema."""
        name, rows = self.name, 0
        self.n_streams = 0
        while True:
            if self.n_streams and _at_end(fh):
                return
            try:
                reader = pa.ipc.open_stream(fh)
            except (pa.ArrowInvalid, OSError) as exc:
                if not self.n_streams:
                    raise DataError(f"{name}: not an Arrow IPC stream ({exc})") from None
                raise DataError(
                    f"{name}: after {self.n_streams} Arrow stream(s) ({rows} rows, read), the "
                    f"rest of the input is not an Arrow IPC stream ({exc}); it was left "
                    "unread") from None
            if self._schema is None:
                self._schema = reader.schema
            elif not reader.schema.equals(self._schema):
                raise DataError(
                    f"{name}: Arrow stream {self.n_streams + 1} (from row {rows}) has another "
                    f"schema ({_schema_text(reader.schema)}) than the first "
                    f"({_schema_text(self._schema)}); it and everything after it were left "
                    f"unread ({rows} rows of {self.n_streams} stream(s) were read)")
            self.n_streams += 1
            for rb in reader:
                rows += rb.num_rows
                yield rb

    def _batches(self, fh) -> Iterator[StreamBatch]:
        name = self.name
        self.key, self._schema = None, None
        offset, chain, entry = 0, b"", None
        tables = _checked(_rebatch(self._record_batches(fh), self.batch_rows), name)
        for index, table in enumerate(tables):
            digest = _table_digest(table)
            if self.key is None:
                head = hashlib.blake2b(self._schema.serialize().to_pybytes() + digest,
                                       digest_size=16)
                self.key = STREAM_KEY_PREFIX + head.hexdigest()
                chain = head.digest()
                entry = self._entry(self.key)
            chain = _chain(chain, digest)
            end = offset + table.num_rows
            if entry is not None:
                self._check_replay(entry, offset, end, chain.hex())
            where = f"{name} batch {index} (rows {offset}-{end - 1})"
            try:
                X, y, w, names = batch_arrays(table, target=self.target,
                                              features=self.features, weight=self.weight,
                                              where=where)
            except DataError as exc:
                if self.on_error == "stop":
                    raise
                logger.error("skipped bad batch: %s", exc)
                self.n_skipped += 1
            else:
                yield StreamBatch(X, y, w, self.key, offset, names, digest=chain.hex())
            offset = end
        if entry is not None and int(entry.get("next", 0)) > offset:
            raise DataError(
                f"{name}: the stream ended after {offset} rows, but the checkpoint consumed "
                f"{entry['next']} rows of a stream that began with the same rows: this is "
                "another stream, refused (use a new checkpoint folder for it)")

    def _entry(self, key: str) -> dict | None:
        """The ledger entry of this stream: its own, or an earlier version's."""
        entry = self.ledger.get(key)
        if entry is None:
            legacy = [k for k in self.ledger if not k.startswith((STREAM_KEY_PREFIX,
                                                                  FILE_KEY_PREFIX))]
            ours = [k for k in self.ledger if k.startswith(STREAM_KEY_PREFIX)]
            if len(legacy) == 1 and not ours:
                old = legacy[0]
                entry = self.ledger[key] = self.ledger.pop(old)
                logger.warning(
                    "%s: the checkpoint was written by an earlier streammix, which knew its "
                    "stream by name (%s), not by content; taking this stream to be that one "
                    "(its first %s rows were consumed then)", self.name, old,
                    entry.get("next", 0))
        if entry is not None and int(entry.get("next", 0)) > 0:
            logger.warning("%s: the checkpoint consumed the first %s rows of this stream "
                           "(same content); skipping them", self.name, entry["next"])
        return entry

    def _check_replay(self, entry: dict, start: int, end: int, digest: str) -> None:
        consumed = int(entry.get("next", 0))
        if start < consumed < end:
            raise DataError(
                f"{self.name}: the checkpoint consumed {consumed} rows of this stream, "
                f"which is not a batch boundary now (a batch has rows {start}-{end - 1}); "
                "refusing to resume it with other batches")
        if end == consumed and entry.get("digest") not in (None, digest):
            raise DataError(
                f"{self.name}: rows 0-{end - 1} differ from the rows the checkpoint consumed "
                "(the stream starts with the same batch, then differs); refusing to skip "
                "them as replayed: use a new checkpoint folder for a new stream")


#: Prefix of the ledger key of a landed file (its content identity).
FILE_KEY_PREFIX = "file:"


def _footer_hash(path: Path, size: int) -> str:
    """A hash of a Parquet file's footer (its metadata and trailer).

    A file that does not end like Parquet (truncated, not Parquet) is hashed
    by its last 64 KiB instead, so that it too has an identity to be
    quarantined under.
    """
    with open(path, "rb") as fh:
        take = min(size, 1 << 16)
        if size >= 12:
            fh.seek(size - 8)
            trailer = fh.read(8)
            length = int.from_bytes(trailer[:4], "little")
            if trailer[4:] == b"PAR1" and length + 12 <= size:
                take = length + 8
        fh.seek(size - take)
        return hashlib.blake2b(fh.read(take), digest_size=8).hexdigest()


class FolderStream:
    """Parquet files landing in a folder, each read once, in arrival order.

    Landing protocol: a writer must create the file under a temporary name
    -- starting with ``.`` or ending with ``.tmp`` -- and *rename* it to its
    final ``*.parquet`` name once complete (rename is atomic on POSIX file
    systems).  Such temporary names are never read, so a half-written file is
    never seen.  Files are taken in order of (modification time, name).

    Which files were read is kept in the online state's ledger (saved with
    the checkpoint), keyed by each file's *content identity*: its size, its
    modification time (ns) and a hash of its Parquet footer
    (``"file:<size>-<mtime_ns>-<hash>"``); an entry holds the offset of the
    next unread row, a status (``"reading"``, ``"done"``,
    ``"quarantined"``) and the file's name when it was read.  A file whose
    identity is in the ledger as done or quarantined is never read again --
    also when it was renamed or moved within the folder since (a rename
    keeps size, time and footer).  A file interrupted by a crash is re-read
    and its consumed rows skipped.

    A *re-landed* file -- one under the name of a file read before, with
    another size, time or footer -- is new data: it is read, and a warning
    says that it replaced a file read before.  (A copy of a read file that
    gets a new modification time is new data too; ``cp -p`` keeps the time.)
    Entries of a ledger written by an earlier streammix are keyed by file
    name; such an entry is matched by name, then re-keyed by identity (saved
    so when the checkpoint is next written).

    A corrupt file (unreadable Parquet, missing or non-numeric columns, NaN,
    nulls, negative weights) is, with ``on_error="quarantine"`` (default),
    moved to the ``quarantine/`` subfolder, logged and recorded in the
    ledger, and the stream goes on; rows of the file consumed before the bad
    batch stay consumed.  ``on_error="stop"`` raises :class:`DataError`.

    Parameters
    ----------
    folder : str or path
    target, features, weight : see :func:`batch_arrays`
    ledger : dict
        The ledger to consult and update (``OnlineEM.ledger``).
    watch : bool
        Keep polling for new files (until the consumer stops iterating);
        otherwise stop when no unread file is left.
    poll : float
        Seconds between two scans of the folder when watching.
    batch_rows : int, optional
        Split files into batches of this many rows, read incrementally
        (default: each file is one batch).
    on_error : {"quarantine", "stop"}
    """

    QUARANTINE = "quarantine"

    def __init__(self, folder, *, target: str, features=None, weight: str | None = None,
                 ledger: dict | None = None, watch: bool = False, poll: float = 1.0,
                 batch_rows: int | None = None, on_error: str = "quarantine",
                 quarantine_hook=None):
        if on_error not in ("quarantine", "stop"):
            raise ValueError(f"on_error must be 'quarantine' or 'stop', got {on_error!r}")
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder")
        self.target, self.features, self.weight = target, features, weight
        self.ledger = ledger if ledger is not None else {}
        self.watch, self.poll = watch, float(poll)
        self.batch_rows = batch_rows
        self.on_error = on_error
        self.quarantine_hook = quarantine_hook
        self._identities: dict[tuple, str] = {}  # (name, inode, size, mtime) -> key

    @staticmethod
    def is_candidate(name: str) -> bool:
        """A finished Parquet file: not hidden, not temporary."""
        return (not name.startswith(".") and not name.endswith(".tmp")
                and name.endswith(".parquet"))

    def identity(self, name: str, stat: os.stat_result | None = None) -> str:
        """The ledger key of file ``name`` of the folder (see the class docstring)."""
        if stat is None:
            stat = os.stat(self.folder / name)
        stamp = (name, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        key = self._identities.get(stamp)
        if key is None:  # the footer is read once per file version
            footer = _footer_hash(self.folder / name, stat.st_size)
            key = f"{FILE_KEY_PREFIX}{stat.st_size}-{stat.st_mtime_ns}-{footer}"
            self._identities[stamp] = key
        return key

    def pending(self) -> list[tuple[str, str]]:
        """Unread files as ``(name, key)``, in (mtime, name) order."""
        found = []
        with os.scandir(self.folder) as it:
            for entry in it:
                if not entry.is_file() or not self.is_candidate(entry.name):
                    continue
                try:
                    stat = entry.stat()
                    key = self.identity(entry.name, stat)
                except FileNotFoundError:  # renamed away meanwhile
                    continue
                status = self._adopt(entry.name, key).get("status")
                if status in ("done", "quarantined"):
                    continue
                found.append((stat.st_mtime_ns, entry.name, key))
        return [(name, key) for _, name, key in sorted(found)]

    def _adopt(self, name: str, key: str) -> dict:
        """The ledger entry of a file: by identity, or an earlier version's by name."""
        entry = self.ledger.get(key)
        if entry is not None:
            return entry
        legacy = self.ledger.get(name)
        if legacy is not None and not name.startswith((FILE_KEY_PREFIX, STREAM_KEY_PREFIX)):
            entry = self.ledger[key] = self.ledger.pop(name)
            entry["name"] = name
            logger.info("%s: ledger entry of an earlier streammix (by name) now keyed by the "
                        "file's identity %s", name, key)
            return entry
        earlier = [e for e in self.ledger.values() if e.get("name") == name
                   and e.get("status") == "done"]
        if earlier:
            logger.warning("%s: a new file under the name of a file read before (another "
                           "size, time or footer): reading it as new data", self.folder / name)
        return {}

    def __iter__(self) -> Iterator[StreamBatch]:
        while True:
            files = self.pending()
            for name, key in files:
                yield from self._file(name, key)
            if not self.watch:
                return
            if not files:
                time.sleep(self.poll)

    def _file(self, name: str, key: str) -> Iterator[StreamBatch]:
        import pyarrow.parquet as pq

        path = self.folder / name
        if not path.exists():  # moved away since the scan: nothing to read
            return
        try:
            pf = pq.ParquetFile(path)
            schema = pf.schema_arrow
            wanted = ([self.target] + list(self.features or [])
                      + ([self.weight] if self.weight else []))
            missing = [c for c in wanted if c not in schema.names]
            if missing:
                raise DataError(f"{path}: missing column(s) {missing} (it has {schema.names})")
            columns = None if self.features is None else wanted
            if self.batch_rows is None:
                batches = iter([pf.read(columns=columns)])
            else:
                batches = _rebatch(pf.iter_batches(columns=columns), self.batch_rows)
            table = next(batches, None)
        except (DataError, pa.ArrowException, OSError) as exc:
            yield from self._bad(name, key, _failure(path, exc))
            return
        offset = 0
        while table is not None:
            n = table.num_rows
            where = f"{path} rows {offset}-{offset + n - 1}"
            try:
                X, y, w, names = batch_arrays(table, target=self.target, features=self.features,
                                              weight=self.weight, where=where)
                table = next(batches, None)
            except (DataError, pa.ArrowException, OSError) as exc:
                yield from self._bad(name, key, _failure(path, exc))
                return
            yield StreamBatch(X, y, w, key, offset, names, last=table is None, name=name)
            offset += n
        # The consumer asked for more after the last batch: the file is done.
        entry = self.ledger.setdefault(key, {"next": offset})
        entry["status"] = "done"
        entry["name"] = name

    def _bad(self, name: str, key: str, reason: str) -> Iterator[StreamBatch]:
        if self.on_error == "stop":
            raise DataError(reason)
        qdir = self.folder / self.QUARANTINE
        qdir.mkdir(exist_ok=True)
        try:
            os.replace(self.folder / name, qdir / name)
        except OSError as exc:
            logger.error("could not move %s to %s: %s", name, qdir, exc)
        logger.error("quarantined %s: %s", name, reason)
        entry = self.ledger.setdefault(key, {"next": 0})
        entry["status"] = "quarantined"
        entry["reason"] = reason
        entry["name"] = name
        if self.quarantine_hook is not None:
            self.quarantine_hook(name, reason)
        return
        yield  # a generator that yields nothing
