"""CSV and JSON-lines files in a lake: their format, plan and reading, via ``pyarrow.dataset``.

A :class:`~streammix.ParquetSource` made with ``format="csv"`` or
``format="json"`` (or on files whose names end in ``.csv`` or ``.jsonl``,
``.ndjson``, ``.json``, optionally compressed: ``.gz``, ``.bz2``, ``.zst``)
reads them with pyarrow: CSV through :class:`pyarrow.dataset.CsvFileFormat`,
JSON lines through :func:`pyarrow.json.read_json` (the dataset's JSON format
takes a file's columns from its first block of records, so a key that
first appears later would be read as null).  Text files have no footer, no
row groups and no statistics, so:

* **one chunk per file**: planning parses every file once (a row count, the
  columns), and a chunk is a whole file; split a large text file into
  several files to bound the memory of a pass (or convert it to Parquet);
* the columns the model reads as numbers (target, features, weight,
  concomitant variables) are parsed as float64: a value that is not a
  number is a :class:`~streammix.DataError` naming the file, the column, the
  row (counted from 0, the CSV header not counted) and the value; an empty
  field or JSON ``null`` is a null, handled by ``on_invalid`` like a null
  in Parquet;
* filters are applied row by row (hive partitions included), without
  pruning by statistics;
* each file's size and modification time are checked when it is read
  (there is no footer to compare).
"""

from __future__ import annotations

import json
import posixpath

import pyarrow as pa
import pyarrow.dataset as ds
from pyarrow.fs import FileType

from streammix.data.parquet.pieces import ParquetPiece
from streammix.data.parquet.stamps import FileStamp, check_stamp
from streammix.exceptions import DataError

__all__ = ["FORMATS", "EXTENSIONS", "choose_format", "plan_text_file", "read_text_table",
           "output_name"]

#: The formats of a lake.
FORMATS = ("parquet", "csv", "json")
#: File name endings that choose a text format when none is given.
EXTENSIONS = {"csv": (".csv",), "json": (".jsonl", ".ndjson", ".json")}
_COMPRESSED = ("", ".gz", ".bz2", ".zst", ".lz4")


def _format_of_name(name: str) -> str:
    name = name.lower()
    for fmt, endings in EXTENSIONS.items():
        if any(name.endswith(end + comp) for end in endings for comp in _COMPRESSED):
            return fmt
    return "parquet"


def choose_format(given: str | None, files: list[str], shown: str) -> str:
    """The lake's format: ``given``, else the one its file names say (Parquet by default).

    Raises
    ------
    ValueError
        ``given`` is not one of :data:`FORMATS`.
    DataError
        Without ``given``, the files' names say different formats.
    """
    if given is not None:
        if given not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {given!r}")
        return given
    seen: dict[str, str] = {}
    for path in files:
        seen.setdefault(_format_of_name(posixpath.basename(path)), path)
    if len(seen) > 1:
        examples = ", ".join(f"{posixpath.basename(p)} ({fmt})" for fmt, p in seen.items())
        raise DataError(f"{shown}: holds files of several formats ({examples}); give the "
                        "files of one format, or format='parquet'|'csv'|'json' (--format)")
    return next(iter(seen), "parquet")


def output_name(relative: str) -> str:
    """The name of a prediction file for input ``relative``: its text ending made ``.parquet``."""
    lower = relative.lower()
    for endings in EXTENSIONS.values():
        for end in endings:
            for comp in _COMPRESSED:
                if lower.endswith(end + comp):
                    return relative[: len(relative) - len(end + comp)] + ".parquet"
    return relative if lower.endswith(".parquet") else relative + ".parquet"


def _csv_format(numeric: list[str], as_text: bool = False):
    """The dataset's CSV format with the ``numeric`` columns parsed as float64 (or text)."""
    from pyarrow import csv

    typ = pa.string() if as_text else pa.float64()
    return ds.CsvFileFormat(convert_options=csv.ConvertOptions(
        column_types={name: typ for name in numeric}, strings_can_be_null=True))


def _read(fs, fmt: str, path: str, columns: list[str], numeric: list[str]):
    """The ``columns`` of a whole file (the ``numeric`` ones as float64) and its columns' names.

    JSON: a numeric column no record has a value for is left out of the names.
    """
    if fmt == "csv":
        fragment = _csv_format(numeric).make_fragment(path, filesystem=fs)
        names = fragment.physical_schema.names
        return fragment.to_table(columns=[c for c in columns if c in names],
                                 use_threads=False), names
    from pyarrow import json as pajson

    options = pajson.ParseOptions(explicit_schema=pa.schema([(n, pa.float64()) for n in numeric]))
    with fs.open_input_stream(path) as fh:  # decompressed by its name's ending
        table = pajson.read_json(fh, read_options=pajson.ReadOptions(use_threads=False),
                                 parse_options=options)
    names = [c for c in table.column_names
             if c not in numeric or table.column(c).null_count < table.num_rows]
    return table.select([c for c in columns if c in names]), names


def plan_text_file(source, path: str, file_columns: list[str], numeric: list[str], part):
    """One file's chunk descriptor and column names, or a DataError naming the file.

    The file is parsed once: its rows are counted and the numbers of the
    ``numeric`` columns checked.
    """
    fs = source.filesystem()
    shown = source.shown(path)
    fmt = source.format
    try:
        info = fs.get_file_info(path)
        table, names = _read(fs, fmt, path, file_columns, numeric)
    except pa.ArrowInvalid as exc:
        return _value_error(source, path, numeric, exc), None
    except (OSError, pa.ArrowException) as exc:
        what = "is empty (0 bytes)" if _size(fs, path) == 0 else f"is not a readable {fmt} file"
        return DataError(f"{shown}: {what} ({exc})"), None
    for name in file_columns:
        if name not in names:
            said = "; no record has a value for it" if fmt == "json" else ""
            return DataError(f"{shown}: column {name!r} is missing{said} (the file has "
                             f"columns {', '.join(names)})"), None
    stamp = FileStamp(info.size, info.mtime_ns, None)
    pieces = [ParquetPiece(path, (0,), 0, table.num_rows, part, stamp)] if table.num_rows else []
    return pieces, names


def read_text_table(source, piece: ParquetPiece, file_columns: list[str]) -> pa.Table:
    """The ``file_columns`` of a text file (one chunk), the numeric ones as float64."""
    fs = source.filesystem()
    shown = source.shown(piece.path)
    numeric = [c for c in source.columns if c in file_columns]
    try:
        if piece.stamp is not None:
            info = fs.get_file_info(piece.path)
            gone = info.type == FileType.NotFound
            check_stamp(shown, piece.stamp, None if gone else info.size,
                        info.mtime_ns if source.readable_on == "this host" else None, None)
        table, _ = _read(fs, source.format, piece.path, file_columns, numeric)
        return table
    except pa.ArrowInvalid as exc:
        raise _value_error(source, piece.path, numeric, exc) from None
    except (OSError, pa.ArrowException) as exc:
        error = DataError(f"{shown}: cannot be read: {exc}")
        error.transient = isinstance(exc, OSError)  # engines retry I/O errors
        raise error from None


def _value_error(source, path: str, numeric: list[str], exc) -> DataError:
    """The first value of a ``numeric`` column that is not a number, as a DataError."""
    shown = source.shown(path)
    try:
        found = (_first_bad_csv if source.format == "csv" else _first_bad_json)(
            source, path, numeric)
    except (OSError, pa.ArrowException, ValueError):
        found = None
    if found is None:
        return DataError(f"{shown}: cannot be parsed as {source.format}: {exc}")
    name, row, value = found
    return DataError(f"{shown}: column {name!r} has a value that is not a number, "
                     f"{value!r}, at row {row}")


def _is_number(value, fmt: str) -> bool:
    """Whether a parsed value (CSV: text or None; JSON: any) may be read as float64."""
    if value is None:
        return True  # a null: on_invalid's business
    if fmt == "json":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _first_bad_csv(source, path: str, numeric: list[str]):
    fs = source.filesystem()
    fragment = _csv_format(numeric, as_text=True).make_fragment(path, filesystem=fs)
    names = fragment.physical_schema.names
    columns = [c for c in numeric if c in names]
    table = fragment.to_table(columns=columns, use_threads=False)
    best = None
    for name in columns:
        for row, value in enumerate(table.column(name).to_pylist()):
            if not _is_number(value, "csv"):
                if best is None or row < best[1]:
                    best = (name, row, value)
                break
    return best


def _first_bad_json(source, path: str, numeric: list[str]):
    import io

    with source.filesystem().open_input_stream(path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8")
        for row, line in enumerate(line for line in text if line.strip()):
            record = json.loads(line)
            for name in numeric:
                if not _is_number(record.get(name), "json"):
                    return name, row, record[name]
    return None


def _size(fs, path: str) -> int | None:
    try:
        return fs.get_file_info(path).size
    except (OSError, pa.ArrowException):
        return None
