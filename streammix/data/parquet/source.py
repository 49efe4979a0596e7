"""Parquet files and data lakes (local or any fsspec URL) as a source.

Planning happens on the client, when the source is made: the files are
listed, every footer is read once, the requested columns are checked in
every file, and the row groups are grouped into chunk descriptors of about
``chunk_rows`` rows.  Reading happens in the task: the file is re-opened and
only the row groups and columns of the descriptor are decoded.

Rows are identified by the file's path *relative to the dataset root* and
their index in the file, so the same lake read from a local folder or from
``s3://`` draws the same starting sample and gives the same fit, whatever
the chunk size or the order in which the files were listed.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow.fs import FileType

from streammix.core.chunk import Chunk
from streammix.data.parquet.columns import (
    filter_columns,
    normalise_filters,
    pool_array,
    to_float,
)
from streammix.data.parquet.files import (
    arrow_filesystem,
    redact_url,
)
from streammix.data.parquet.formula_reading import FormulaReadingMixin, concomitant_columns
from streammix.data.parquet.grouping import GroupingMixin
from streammix.data.parquet.invalid_counting import InvalidCountingMixin
from streammix.data.parquet.pieces import InvalidRows, ParquetPiece
from streammix.data.parquet.planning import PlanningMixin
from streammix.data.parquet.stamps import check_stamp, footer_hash, local_mtime_ns
from streammix.data.parquet.text_formats import read_text_table
from streammix.exceptions import DataError, SourceChangedError
from streammix.redact import redact

__all__ = ["ParquetSource", "ParquetPiece", "InvalidRows", "ON_INVALID"]

logger = logging.getLogger(__name__)

#: What to do with rows holding null, NaN or infinite values.
ON_INVALID = ("error", "drop")


class ParquetSource(FormulaReadingMixin, GroupingMixin, InvalidCountingMixin, PlanningMixin):
    """Rows of one or many Parquet files, read chunk by chunk.

    Parameters
    ----------
    path_or_url : str, path or list of them
        A file, a folder (read recursively; names starting with ``_`` or
        ``.`` are skipped, as by Spark and pyarrow), a glob pattern, or a
        list of files.  Any fsspec URL works (``s3://bucket/lake``,
        ``file:///data/lake``); plain paths are local.  Folders named
        ``key=value`` (hive partitioning) give columns usable in
        ``features`` and ``filters``.
    target : str or None
        Column of the response y; None (the default) for data without it, to
        predict (chunks then hold NaN as y; ``fit`` and ``score`` refuse such
        a source).  With ``formula``, the formula's left-hand side.
    features : list of str
        Columns of the features, in order (no intercept column); not with
        ``formula``.
    weight : str, optional
        Column of non-negative frequency weights (default 1 per row).
    filters : str, list of tuples, or list of lists of tuples, optional
        Row filter in pyarrow's disjunctive normal form, e.g.
        ``[("year", ">=", 2020), ("x1", "<", 5.0)]``, or the same as text,
        ``"year >= 2020 and x1 < 5"`` (the syntax of
        :func:`~streammix.data.parquet.filter_text.parse_filter`, as for
        ``streammix fit --filter``).  Row groups and partitions that cannot
        match are skipped by their statistics when planning; the rest is
        filtered row by row when read.
    storage_options : dict, optional
        Passed to fsspec for remote URLs (e.g. for s3fs:
        ``{"key": ..., "secret": ..., "client_kwargs": {"endpoint_url": ...}}``).
        Never printed.
    chunk_rows : int, default=131072
        Consecutive row groups of a file are grouped into chunks of up to
        about this many rows (a larger row group is a chunk of its own).
    on_invalid : {"error", "drop"}, default="error"
        Rows with a null, NaN or infinite target, feature or weight raise a
        :class:`~streammix.DataError` that names the file, the column, the
        count and the first row, or are dropped.  Dropped rows are not in
        the fitted statistics (``n_rows_`` of a model does not count them);
        :meth:`count_invalid` counts them per file and column in one pass.
    concomitant : str, list of str, or a gate formula, optional
        Columns of concomitant variables z: the components' weights π(z)
        depend on them (flexmix's ``FLXPmultinom``); or a gate formula
        ``"~ z1 + C(segment)"`` (or a learned design, a model's
        ``concomitant_formula_``), whose levels are learned with the formula's.  Checked like the
        features (missing in a file, not numeric, null/NaN/inf name the file
        and column); each chunk carries them as ``Chunk.Z``.
    formula : str or FormulaDesign, optional
        A model formula, ``"y ~ x1 + C(region) + x2:x3 + np.log(x4)"``
        (:mod:`streammix.data.formula`), instead of ``target`` and
        ``features``: the features are its design columns.  The levels of
        its categorical variables are learned over the whole lake in one
        pass before the fit (:meth:`learn_levels`), so every chunk has the
        same columns; a learned design (a model's ``formula_``) is used as
        it is, and a level it lacks is an error naming column and level.
    groups : str, optional
        Column of group ids (integers or strings) for grouped classes, flexmix's
        ``y ~ x | id``: every row of a group shares one component, and
        ``fit(source)`` fits so.  A fit first reads the group column alone to
        find which chunks hold each group, and joins chunks that share a group
        into one map task (:mod:`streammix.data.parquet.group_plan`).  A null id
        is an error naming the file and column.  Lakes not stored by group are
        rewritten with :func:`streammix.regroup`.
    max_task_rows : int, optional
        With ``groups``: the most rows a map task of joined chunks may hold
        (default 8 × ``chunk_rows``); a group spread so that its task would be
        larger is an error naming the group and its files.
    format : {"parquet", "csv", "json"}, optional
        The files' format, by default the one their names say (``.csv``, ``.jsonl`` ...;
        else Parquet); a CSV or JSON-lines file is one chunk (see the lakes guide).

    Raises
    ------
    DataError
        When the path does not exist or holds no files, a file is not
        readable Parquet, a column is missing in a file, or a column is not
        numeric in some file.  Values are checked when chunks are read.

    Attributes
    ----------
    files : list of str
        The files, sorted (on the client only).
    root : str
        The folder the files hang from; row origins are paths relative to it.
    partition_names : tuple of str
        Hive partition columns found in the folder names.
    partition_types : dict
        Their types, inferred from the values (int64, float64 or string).

    Notes
    -----
    Every file's footer is read when the source is made (on the client);
    tasks re-open the file and read only their row groups and columns, with
    one thread each.  Empty files and zero-row row groups are skipped.
    """

    def __init__(self, path_or_url, *, target: str | None = None, features=None,
                 weight: str | None = None, filters=None, storage_options: dict | None = None,
                 chunk_rows: int = 131_072, on_invalid: str = "error", concomitant=None,
                 formula=None, groups: str | None = None, max_task_rows: int | None = None,
                 format: str | None = None):
        self._design = None
        if formula is not None:
            self._design = self._formula_design(formula, target, features)
            target = self._design.target
            features = self._design.feature_names if self._design.is_learned else []
        elif features is None:
            raise ValueError("give the feature columns (features=[...]) or a formula")
        if isinstance(features, str):
            features = [features]
        features = [str(f) for f in features]
        if not features and self._design is None:
            raise ValueError("features must name at least one column")
        if len(set(features)) != len(features):
            raise ValueError(f"features has repeated names: {features}")
        if target in features or (weight is not None and weight in features):
            raise ValueError("target and weight must not be among the features")
        if on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
        if isinstance(chunk_rows, bool) or int(chunk_rows) < 1:
            raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
        self.path_or_url = path_or_url
        self.target = None if target is None else str(target)
        self._common_columns: set[str] = set()
        self.features = features
        self.weight = None if weight is None else str(weight)
        self.filters = normalise_filters(filters)
        self.storage_options = dict(storage_options or {})
        self.chunk_rows = int(chunk_rows)
        self.on_invalid = on_invalid
        self._gate, self.concomitant = concomitant_columns(concomitant, self.target, self.weight)
        self.groups = None if groups is None else str(groups)
        if self.groups is not None and self.groups in [target, weight, *features]:
            raise ValueError(f"the group column {self.groups!r} must not be the target, the "
                             "weight or a feature")
        if max_task_rows is not None and (isinstance(max_task_rows, bool)
                                          or int(max_task_rows) < 1):
            raise ValueError(f"max_task_rows must be an integer >= 1, got {max_task_rows!r}")
        self.max_task_rows = None if max_task_rows is None else int(max_task_rows)
        self._fs = None
        self._expr = None if self.filters is None else pq.filters_to_expression(self.filters)
        self.format = format
        self._discover()

    # ------------------------------------------------------------ public face
    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def columns(self) -> list[str]:
        """Every column the source uses: features, target, weight, concomitant variables."""
        cols = ([] if self._design is not None else self.features) \
            + ([self.target] if self.target is not None else []) \
            + ([self.weight] if self.weight else [])
        return cols + [c for c in getattr(self, "concomitant", []) if c not in cols]

    def has_column(self, name: str) -> bool:
        """Whether every file has column ``name`` (or it is a partition column)."""
        return name in self._common_columns or name in self.partition_names

    @property
    def concomitant_names(self) -> list[str]:
        """The concomitant columns (empty without them); a gate formula's design columns
        (before its levels are learned: the columns it reads)."""
        return self._gate_names() if self._gate is not None else list(self.concomitant)

    @property
    def n_files(self) -> int:
        return len(self.files)

    @property
    def n_rows(self) -> int:
        """Rows in the planned row groups (before filters and dropped rows)."""
        return sum(piece.n_rows for piece in self._plan)

    def plan(self) -> list[ParquetPiece]:
        """The chunk descriptors, sorted by file path and row group."""
        return list(self._plan)

    def read(self, piece: ParquetPiece) -> Chunk:
        """Read one chunk: its row groups, only the needed columns."""
        into = {} if self._design is None else None  # features decoded into X directly
        values, row_ids, bad, _, table = self._read_values(piece, with_table=True, into=into)
        origin = self._origin(piece.path)
        X, groups = None, self._chunk_groups(piece, table, row_ids)
        if self._design is not None:  # the design columns of the formula
            X, bad = self._formula_rows(piece, table, row_ids, bad)
        Z, bad = self._formula_rows(piece, table, row_ids, bad, self._gate) if self._gate \
            else (None, bad)  # a gate formula's design columns
        n_bad = int(bad.sum()) if bad is not None else 0
        if n_bad:
            keep = ~bad
            values = {name: v[keep] for name, v in values.items()}
            row_ids = row_ids[keep]
            groups = None if groups is None else groups[keep]
            X = None if X is None else np.asfortranarray(X[keep])
            Z = None if Z is None else np.asfortranarray(Z[keep])
            logger.info("%s: dropped %d rows with null, NaN or infinite values",
                        self.shown(piece.path), n_bad)
        n = row_ids.size
        if X is None and not n_bad and into and into["direct"]:
            X = into["X"]  # every feature column was decoded into it
        if X is None:
            X = pool_array(n, self.n_features)  # F-ordered: each feature contiguous, as decoded
            for k, name in enumerate(self.features):
                X[:, k] = values[name]
        y = values[self.target] if self.target is not None else np.full(n, np.nan)
        if self.weight:
            w = values[self.weight]
        else:
            w = pool_array(n)
            w.fill(1.0)
        if self.weight:
            neg = np.flatnonzero(w < 0)
            if neg.size:
                raise DataError(
                    f"{self.shown(piece.path)}: column {self.weight!r} has {neg.size} negative "
                    f"value{'s' if neg.size != 1 else ''}, first at row {int(row_ids[neg[0]])} "
                    f"({w[neg[0]]!r}); weights must be >= 0")
        if self.concomitant:
            Z = pool_array(n, len(self.concomitant))
            for k, name in enumerate(self.concomitant):
                Z[:, k] = values[name]
        contiguous = n == 0 or (row_ids[0] == piece.first_row and row_ids[-1] == piece.first_row
                                + n - 1)
        return Chunk(X, y, w, origin, piece.first_row,
                     None if contiguous else row_ids, Z, groups)

    def describe(self) -> str:
        """A short multi-line summary without secrets."""
        lines = [
            f"ParquetSource {redact_url(self.path_or_url)}"
            + (f" ({self.format} files)" if self.format != "parquet" else ""),
            f"  files: {self.n_files} ({self.root or '.'}), chunks: {len(self._plan)}, "
            f"rows: {self.n_rows}",
            f"  target: {self.target!r}, features: {self.features}, weight: {self.weight!r}",
        ]
        if self._design is not None:
            lines.append(f"  formula: {self._design.formula}")
        if self.concomitant or self._gate is not None:
            lines.append(f"  concomitant: {self.concomitant or self._gate.formula}")
        if self.groups is not None:
            lines.append(f"  groups: {self.groups!r} (tasks of at most {self.task_row_bound} rows)")
        if self.partition_names:
            lines.append(f"  partition columns: {list(self.partition_names)}")
        if self.filters is not None:
            lines.append(f"  filters: {self.filters}")
        lines.append(f"  chunk_rows: {self.chunk_rows}, on_invalid: {self.on_invalid!r}")
        if self.storage_options:
            lines.append(f"  storage_options: keys {sorted(self.storage_options)} (values hidden)")
        return redact("\n".join(lines))  # the root and file names carry a URL's credentials too

    def __repr__(self) -> str:
        opts = ""
        if self.storage_options:
            opts = f", storage_options=<{len(self.storage_options)} keys hidden>"
        return (f"ParquetSource({redact_url(self.path_or_url)!r}, target={self.target!r}, "
                f"features={self.features!r}, weight={self.weight!r}, filters={self.filters!r}, "
                f"chunk_rows={self.chunk_rows}, on_invalid={self.on_invalid!r}{opts}"
                + (f", groups={self.groups!r}" if self.groups is not None else "")
                + (f", format={self.format!r}" if self.format != "parquet" else "")
                + (f", formula={self._design.formula!r})" if self._design is not None else ")"))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fs"] = None  # file systems are re-made where the source is unpickled
        state["_expr"] = None
        state["_plan"] = None  # the plan and the file list stay on the client
        state["files"] = None
        if isinstance(self.path_or_url, (list, tuple)):
            state["path_or_url"] = redact_url(self.path_or_url)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.filters is not None:
            self._expr = pq.filters_to_expression(self.filters)

    # ---------------------------------------------------------------- reading
    def _read_values(self, piece: ParquetPiece, on_invalid: str | None = None,
                     with_table: bool = False, into: dict | None = None):
        """Decode a piece: float64 columns, row ids in the file, bad-row mask, counts
        (and the filtered table, ``with_table=True``).

        With ``on_invalid="error"`` bad values raise; with ``"drop"`` the mask
        of rows to drop (None when there are none) and the number of bad
        values per column are returned.  With ``into`` (an empty dict) the
        features are decoded straight into the columns of an F-ordered
        matrix from :func:`~streammix.data.parquet.columns.pool_array`, left
        in ``into["X"]`` (``values`` then holds views of its columns).
        """
        on_invalid = self.on_invalid if on_invalid is None else on_invalid
        table = self._read_table(piece)
        n = table.num_rows
        row_ids = np.arange(piece.first_row, piece.first_row + n, dtype=np.int64)
        if self._expr is not None and n:
            table = table.append_column("__streammix_row__", pa.array(row_ids))
            try:
                table = table.filter(self._expr)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
                raise DataError(f"{self.shown(piece.path)}: cannot apply filters "
                                f"{self.filters}: {exc}") from None
            row_ids = table.column("__streammix_row__").to_numpy()
        values, bad, counts, outs = {}, None, {}, {}
        if into is not None:
            X = into["X"] = pool_array(table.num_rows, self.n_features)
            into["direct"] = True
            outs = {name: X[:, k] for k, name in enumerate(self.features)}
        for name in self.columns:
            v, col_bad, message = to_float(table.column(name), name, row_ids,
                                             self.shown(piece.path), outs.get(name))
            values[name] = v
            if name in outs and v is not outs[name]:  # with nulls: decoded apart
                into["direct"] = False
            if col_bad is not None:
                if on_invalid == "error":
                    raise DataError(message)
                counts[name] = int(col_bad.sum())
                bad = col_bad if bad is None else bad | col_bad
        if with_table:
            return values, row_ids, bad, counts, table
        return values, row_ids, bad, counts

    def _read_table(self, piece: ParquetPiece, columns: list[str] | None = None) -> pa.Table:
        needed = self._needed_columns() if columns is None else columns
        file_columns = [c for c in needed if c not in self.partition_names]
        local = self._protocol == "file"
        if getattr(self, "format", "parquet") != "parquet":
            return self._with_partitions(read_text_table(self, piece, file_columns), piece, needed)
        try:
            with self.filesystem().open_input_file(piece.path) as fh:
                reader = pq.ParquetFile(fh)
                if piece.stamp is not None:  # the size and footer were read anyway
                    check_stamp(self.shown(piece.path), piece.stamp, fh.size(),
                                local_mtime_ns(piece.path) if local else None,
                                footer_hash(reader.metadata))
                table = reader.read_row_groups(list(piece.row_groups), columns=file_columns,
                                               use_threads=False)
        except (OSError, pa.ArrowException) as exc:
            if piece.stamp is not None:  # a file removed or rewritten: say so
                self._check_changed(piece)
            error = DataError(f"{self.shown(piece.path)}: cannot read row groups "
                              f"{list(piece.row_groups)}: {exc}")
            error.transient = isinstance(exc, OSError)  # engines retry I/O errors
            raise error from None
        return self._with_partitions(table, piece, needed)

    def read_columns(self, piece: ParquetPiece, columns: list[str]) -> pa.Table:
        """Columns of a chunk's files or partitions, all its rows (before filters)."""
        return self._read_table(piece, list(columns))

    def _with_partitions(self, table: pa.Table, piece: ParquetPiece, needed) -> pa.Table:
        for name, value in piece.partition:
            if name in needed:
                typ = self.partition_types[name]
                table = table.append_column(name, pa.array([value] * table.num_rows, typ))
        return table

    def _check_changed(self, piece: ParquetPiece) -> None:
        """After a failed read: raise SourceChangedError if the file is not as planned."""
        try:
            info = self.filesystem().get_file_info(piece.path)
        except (OSError, pa.ArrowException):
            return
        gone = info.type == FileType.NotFound
        try:
            check_stamp(self.shown(piece.path), piece.stamp, None if gone else info.size,
                        info.mtime_ns if self._protocol == "file" else None, None)
        except SourceChangedError as changed:
            raise changed from None

    def _needed_columns(self) -> list[str]:
        cols = list(self.columns)
        for design in self._designs():
            cols += [c for c in design.variables if c not in cols]
        if getattr(self, "groups", None) is not None and self.groups not in cols:
            cols.append(self.groups)
        for name in filter_columns(self.filters):
            if name not in cols:
                cols.append(name)
        return cols

    def filter_column_names(self) -> list[str]:
        """The columns the filters name."""
        return list(filter_columns(self.filters))

    @property
    def readable_on(self) -> str:
        """Where the files can be read: ``"any host"`` at a URL, ``"this host"`` for
        local paths (see :func:`streammix.engines.resolve.resolve_engine`)."""
        return "this host" if self._protocol == "file" else "any host"

    def shown(self, path: str) -> str:
        """A file path as users wrote it: with its URL scheme when remote."""
        if self._protocol == "file":
            return path
        # http(s) file systems keep the scheme in their paths: never prefix it twice
        return redact(path if "://" in path else f"{self._protocol}://{path}")

    def _origin(self, path: str) -> str:
        if self.root and path.startswith(self.root + "/"):
            return path[len(self.root) + 1:]
        return path

    def filesystem(self):
        """The pyarrow file system the files are read with (made once, then reused)."""
        if self._fs is None:
            self._fs = arrow_filesystem(self._protocol, self.storage_options)
        return self._fs
