"""How a :class:`~streammix.ParquetSource` plans: files listed, footers read, row groups grouped.

Planning happens on the client, when the source is made: the files are
listed, every footer is read once (by a few threads for remote files), the
requested columns are checked in every file, row groups that a filter
excludes are pruned by their statistics and partition values, and the rest
are grouped into chunk descriptors of about ``chunk_rows`` rows.
:class:`PlanningMixin` holds these steps; the source's attributes (paths,
columns, filters, file system) are its inputs.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from streammix.data.parquet.columns import is_numeric
from streammix.data.parquet.files import (
    common_dir,
    file_size,
    fsspec_filesystem,
    hive_partitions,
    list_files,
    protocol_of,
    redact_url,
    strip_protocol,
)
from streammix.data.parquet.pieces import ParquetPiece
from streammix.data.parquet.stamps import FileStamp, footer_hash
from streammix.data.parquet.text_formats import choose_format, plan_text_file
from streammix.exceptions import DataError

__all__ = ["PlanningMixin"]

logger = logging.getLogger("streammix.data.parquet.source")


class PlanningMixin:
    """The planning steps of :class:`~streammix.ParquetSource` (see the module notes)."""

    # --------------------------------------------------------------- planning
    def _discover(self) -> None:
        items = self.path_or_url
        if isinstance(items, (str, os.PathLike)):
            items = [items]
        items = [os.fspath(i) for i in items]
        if not items:
            raise DataError("no Parquet path given (the list is empty)")
        protocols = {protocol_of(i) for i in items}
        if len(protocols) > 1:
            raise DataError(f"all paths must use one file system, got {sorted(protocols)}")
        self._protocol = protocols.pop()
        fsspec_fs = fsspec_filesystem(self._protocol, self.storage_options)
        files, roots = [], []
        for item in items:
            path = strip_protocol(item, self._protocol)
            found, root = list_files(fsspec_fs, path, redact_url(item))
            files.extend(found)
            roots.append(root)
        files = sorted(set(files))
        root = roots[0] if len(roots) == 1 else common_dir(files)
        self.root = root.rstrip("/")
        self.files = files
        self.partition_names, self.partition_types, partitions = hive_partitions(files,
                                                                                   self.root)
        self.format = choose_format(getattr(self, "format", None), files,
                                    redact_url(self.path_or_url))
        self._plan = (self._plan_files(partitions) if self.format == "parquet"
                      else self._plan_text_files(partitions))

    def _plan_files(self, partitions: dict) -> list[ParquetPiece]:
        self.filesystem()  # made once, before the threads below use it
        file_columns = [c for c in self._needed_columns() if c not in self.partition_names]
        for name in self._needed_columns():
            if name in self.partition_names and not is_numeric(self.partition_types[name]) \
                    and name in self.columns:
                raise DataError(f"partition column {name!r} has type "
                                f"{self.partition_types[name]}, which cannot be read as "
                                "float64 (need a numeric type)")
        seen_types: dict[str, tuple[pa.DataType, str]] = {}
        plan: list[ParquetPiece] = []
        # Footers of remote files are fetched by a few threads; errors surface in
        # file order whatever the threads' timing.
        n_threads = 1 if self._protocol == "file" or len(self.files) < 2 else 8
        with ThreadPoolExecutor(n_threads) as pool:
            footers = list(pool.map(self._footer, self.files))
        for path, (meta, schema, stamp) in zip(self.files, footers, strict=True):
            if isinstance(meta, DataError):
                raise meta
            names = set(schema.names)
            self._common_columns = names if path == self.files[0] \
                else self._common_columns & names
            for name in file_columns:
                if schema.get_field_index(name) < 0:
                    raise DataError(
                        f"{self.shown(path)}: column {name!r} is missing (the file has columns "
                        f"{', '.join(schema.names)})")
                typ = schema.field(name).type
                first = seen_types.setdefault(name, (typ, path))
                if name in self.columns and not is_numeric(typ):
                    other = (f"; it is {first[0]} in {self.shown(first[1])}"
                             if first[0] != typ else "")
                    raise DataError(f"{self.shown(path)}: column {name!r} has type {typ}, which "
                                    f"cannot be read as float64 (need a numeric type){other}")
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
            keep = [i for i, s in enumerate(sizes) if s > 0]
            part = partitions[path]
            if self._expr is not None and keep:
                keep = self._prune(path, schema, part, keep)
            plan.extend(self._group(path, keep, sizes, starts, part, stamp))
        plan.sort()
        logger.info("planned %d chunks from %d files (%d rows)", len(plan), len(self.files),
                    sum(p.n_rows for p in plan))
        return plan

    def _plan_text_files(self, partitions: dict) -> list[ParquetPiece]:
        """One chunk per CSV or JSON-lines file (:mod:`~streammix.data.parquet.text_formats`)."""
        self.filesystem()
        file_columns = [c for c in self._needed_columns() if c not in self.partition_names]
        numeric = [c for c in self.columns if c in file_columns]
        n_threads = 1 if self._protocol == "file" or len(self.files) < 2 else 8
        with ThreadPoolExecutor(n_threads) as pool:
            planned = list(pool.map(lambda path: plan_text_file(
                self, path, file_columns, numeric, partitions[path]), self.files))
        plan: list[ParquetPiece] = []
        for path, (pieces, names) in zip(self.files, planned, strict=True):
            if isinstance(pieces, DataError):
                raise pieces
            self._common_columns = set(names) if path == self.files[0] \
                else self._common_columns & set(names)
            plan.extend(pieces)
        plan.sort()
        logger.info("planned %d %s files (%d rows)", len(plan), self.format,
                    sum(p.n_rows for p in plan))
        return plan

    def _footer(self, path: str):
        """A file's metadata and Arrow schema, or a DataError naming the file."""
        fs = self.filesystem()
        try:
            with fs.open_input_file(path) as fh:
                meta = pq.ParquetFile(fh).metadata
                stamp = FileStamp(fh.size(), fs.get_file_info(path).mtime_ns,
                                  footer_hash(meta))
                return meta, meta.schema.to_arrow_schema(), stamp
        except (OSError, pa.ArrowException) as exc:
            size = file_size(fs, path)
            what = "is empty (0 bytes)" if size == 0 else "is not a readable Parquet file"
            return DataError(f"{self.shown(path)}: {what} ({exc})"), None, None

    def _prune(self, path, schema, part, keep):
        """Row groups whose statistics and partition values may match the filter."""
        fmt = ds.ParquetFileFormat()
        part_expr = None
        full = schema
        for name, value in part:
            term = ds.field(name) == pa.scalar(value, self.partition_types[name])
            part_expr = term if part_expr is None else part_expr & term
            full = full.append(pa.field(name, self.partition_types[name]))
        kwargs = {} if part_expr is None else {"partition_expression": part_expr}
        try:
            fragment = fmt.make_fragment(path, filesystem=self.filesystem(), **kwargs)
            pieces = fragment.split_by_row_group(filter=self._expr, schema=full)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as exc:
            raise DataError(f"{self.shown(path)}: cannot apply filters {self.filters}: "
                            f"{exc}") from None
        ids = {rg.id for piece in pieces for rg in piece.row_groups}
        return [i for i in keep if i in ids]

    def _group(self, path, keep, sizes, starts, part, stamp):
        pieces, group = [], []
        for i in keep:
            if group and (group[-1] != i - 1
                          or sum(sizes[g] for g in group) + sizes[i] > self.chunk_rows):
                pieces.append(self._piece(path, group, sizes, starts, part, stamp))
                group = []
            group.append(i)
        if group:
            pieces.append(self._piece(path, group, sizes, starts, part, stamp))
        return pieces

    @staticmethod
    def _piece(path, group, sizes, starts, part, stamp) -> ParquetPiece:
        return ParquetPiece(path, tuple(group), starts[group[0]],
                            sum(sizes[g] for g in group), part, stamp)
