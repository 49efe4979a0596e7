"""A file rewritten or removed while a batch fit reads it stops the fit, naming it.

Real Parquet files replaced between two passes of a real fit: in this
process, on a ``LocalCluster`` of worker processes, and under a
``streammix fit`` subprocess (replaced once its checkpoint shows passes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture
from support.servers import scheduler_tasks

from streammix import (
    DaskEngine,
    DataError,
    InProcessEngine,
    MixtureOfLinearRegressions,
    ParquetSource,
    SourceChangedError,
)

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["x1", "x2"]


def _write_lake(root: Path, seed: int = 5, rows: int = 600, n_files: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    X, y, _ = make_mixture(rows * n_files, [0.4, 0.6], [-2.0, 2.0],
                           [[1.0, -0.5], [-0.5, 1.0]], [1.0, 0.8], seed=seed)
    for k in range(n_files):
        sl = slice(rows * k, rows * (k + 1))
        pq.write_table(pa.table({"x1": X[sl, 0], "x2": X[sl, 1], "y": y[sl]}),
                       str(root / f"part-{k}.parquet"), row_group_size=150)
    return root


def _rewrite(path: Path, seed: int) -> None:
    """Replace a file by another of the same schema and row count (other values)."""
    rows = pq.read_metadata(path).num_rows
    rng = np.random.default_rng(seed)
    table = pa.table({"x1": rng.normal(size=rows), "x2": rng.normal(size=rows),
                      "y": rng.normal(size=rows) * 10})
    tmp = path.with_name(path.name + ".new")
    pq.write_table(table, str(tmp), row_group_size=150)
    os.replace(tmp, path)


def _fit_replacing(lake: Path, engine, at_pass: int = 3, change=None):
    """A fit that replaces part-1 after pass ``at_pass``; returns (model, error)."""
    change = change or (lambda: _rewrite(lake / "part-1.parquet", 99))
    source = ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=150)
    model = MixtureOfLinearRegressions(2, random_state=0, tol=0, max_iter=60,
                                       engine=engine)
    passes = []

    def callback(record):
        passes.append(record)
        if len(passes) == at_pass:
            change()

    with pytest.raises(SourceChangedError) as info:
        model.fit(source, callback=callback)
    return model, info.value, passes


def _assert_names_the_file(error, lake):
    message = str(error)
    assert f"{lake / 'part-1.parquet'} changed while the fit was reading it" in message
    assert isinstance(error, DataError)


def test_a_file_replaced_during_an_in_process_fit_stops_it_naming_the_file(tmp_path):
    lake = _write_lake(tmp_path / "lake")
    model, error, passes = _fit_replacing(lake, InProcessEngine())
    _assert_names_the_file(error, lake)
    assert "size" in str(error) or "footer" in str(error)
    assert len(passes) == 3  # the pass after the change stopped
    assert not hasattr(model, "coef_")  # no model of the old data is reported

    # the same bytes written again (only the time changes): still refused, by its time
    lake2 = _write_lake(tmp_path / "lake2")
    target = lake2 / "part-1.parquet"

    def touch():
        data = target.read_bytes()
        target.write_bytes(data)
        os.utime(target, ns=(time.time_ns(), os.stat(target).st_mtime_ns + 5_000_000_000))

    _, error, _ = _fit_replacing(lake2, InProcessEngine(), change=touch)
    assert "modified" in str(error) and "size" not in str(error)

    # a file removed: named, "no longer exists" (not a retried I/O error)
    lake3 = _write_lake(tmp_path / "lake3")
    _, error, _ = _fit_replacing(lake3, InProcessEngine(retries=0),
                                 change=lambda: (lake3 / "part-1.parquet").unlink())
    assert "part-1.parquet changed while the fit was reading it (it no longer exists)" \
        in str(error)


def test_a_file_replaced_between_planning_and_the_first_pass_is_caught(tmp_path):
    lake = _write_lake(tmp_path / "lake")
    source = ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=150)
    _rewrite(lake / "part-2.parquet", 7)
    with pytest.raises(SourceChangedError, match="part-2.parquet changed"):
        MixtureOfLinearRegressions(2, random_state=0).fit(source)
    # planned afresh, the new file is fine
    MixtureOfLinearRegressions(2, random_state=0).fit(
        ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=150))


def test_a_file_replaced_during_a_fit_on_a_local_cluster_stops_it_naming_the_file(tmp_path):
    from distributed import Client, LocalCluster

    lake = _write_lake(tmp_path / "lake")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        engine = DaskEngine(client)
        model, error, passes = _fit_replacing(lake, engine)
        _assert_names_the_file(error, lake)
        assert len(passes) == 3
        assert not hasattr(model, "coef_")
        assert scheduler_tasks(client) == 0  # nothing of the stopped pass is left


def test_streammix_fit_whose_file_is_replaced_exits_1_naming_it_and_writes_no_model(tmp_path):
    lake = _write_lake(tmp_path / "lake", rows=3000)
    ck, out = tmp_path / "ck", tmp_path / "model.json"
    cmd = [sys.executable, "-m", "streammix", "-q", "fit", str(lake), "--target", "y",
           "--features", "x1,x2", "-k", "2", "--out", str(out), "--in-process",
           "--chunk-rows", "150", "--max-iter", "100000", "--tol", "0", "--seed", "1",
           "--checkpoint", str(ck)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 60
        while not (ck / "passes").is_dir() or len(os.listdir(ck / "passes")) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        _rewrite(lake / "part-1.parquet", 3)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"streammix fit: error: {lake / 'part-1.parquet'} changed while "
                               "the fit was reading it")
    assert not out.exists()
