"""Arrow IPC streams (a file or standard input) as stream batches.

An Arrow stream is known by its content: its ledger key is
``"arrow:<hash>"``, a hash of the schema and the first batch, so a replayed
stream is recognised wherever it comes from, and each batch carries a running
hash of the rows read so far (see :class:`ArrowStreamSource`).
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Iterator

import pyarrow as pa

from streammix.data.streams.batches import (
    FILE_KEY_PREFIX,
    STREAM_KEY_PREFIX,
    StreamBatch,
    batch_arrays,
    rebatch,
)
from streammix.exceptions import DataError

__all__ = ["ArrowStreamSource"]

logger = logging.getLogger(__name__)


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
        tables = _checked(rebatch(self._record_batches(fh), self.batch_rows), name)
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
