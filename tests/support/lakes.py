"""Small Parquet lakes for tests that run real ``streammix`` processes on files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from support import ROOT

#: The environment of a ``python -m streammix`` subprocess: this checkout first.
SUBPROCESS_ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def two_line_lake(folder: Path, n_files: int = 2, rows: int = 400) -> Path:
    """A lake of ``n_files`` files ``part-000.parquet``, … with columns ``x`` and ``y``.

    Each row lies on one of two lines, ``y = 3 + 2x`` or ``y = -3 - x``, with
    noise 0.5; the data are the same for the same arguments.
    """
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n_files):
        x = rng.normal(size=rows)
        z = rng.integers(0, 2, rows)
        y = np.where(z, 3 + 2 * x, -3 - x) + rng.normal(scale=0.5, size=rows)
        pq.write_table(pa.table({"x": x, "y": y}), folder / f"part-{k:03d}.parquet")
    return folder


def land_file(folder: Path, name: str, table: pa.Table) -> Path:
    """Land ``table`` in a watched ``folder`` as a stream expects: a dot-name, then a rename."""
    tmp = folder / f".{name}.partial"
    pq.write_table(table, tmp)
    os.replace(tmp, folder / name)
    return folder / name
