"""Stream sources and the ``streammix stream`` command: Arrow IPC streams on a pipe,
a watched folder of Parquet files, checkpoints that survive SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ROOT
from support.lakes import land_file
from support.mixtures import make_mixture

from streammix import DataError, MixtureOfLinearRegressions
from streammix.data.streams import ArrowStreamSource, FolderStream, iter_batches
from streammix.estimator.streaming import load_checkpoint, run_stream


def _table(n, seed):
    X, y, _ = make_mixture(n, [0.6, 0.4], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=seed)
    return pa.table({"a": X[:, 0], "b": X[:, 1], "y": y})


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "streammix.cli.stream", *map(str, args)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kw)


def _by_name(ledger: dict) -> dict:
    """A folder's ledger (keyed by file identity) keyed by file name."""
    return {entry["name"]: entry for entry in ledger.values()}


def _write_stream(fh, tables):
    with pa.ipc.new_stream(fh, tables[0].schema) as writer:
        for t in tables:
            writer.write_table(t)


def test_iter_batches_and_arrow_stream_offsets(tmp_path):
    tables = [_table(700, s) for s in range(3)]
    path = tmp_path / "s.arrows"
    with pa.OSFile(str(path), "wb") as fh:
        _write_stream(fh, tables)
    got = list(ArrowStreamSource(path, target="y", batch_rows=500))
    assert [b.n_rows for b in got] == [500, 500, 500, 500, 100]
    assert [b.first_row for b in got] == [0, 500, 1000, 1500, 2000]
    # The key is the stream's content (schema and first batch), wherever it is read from.
    copy = tmp_path / "copy.arrows"
    copy.write_bytes(path.read_bytes())
    assert got[0].key.startswith("arrow:") and got[0].feature_names == ("a", "b")
    assert {b.key for b in ArrowStreamSource(copy, target="y", batch_rows=500)} == {got[0].key}
    whole = pa.concat_tables(tables)
    np.testing.assert_array_equal(np.concatenate([b.y for b in got]), whole["y"].to_numpy())
    items = [(t["a"].to_numpy()[:, None], t["y"].to_numpy()) for t in tables]
    it = list(iter_batches(items, key="k"))
    assert [(b.key, b.first_row) for b in it] == [("k", 0), ("k", 700), ("k", 1400)]
    bad = list(items)
    y_bad = bad[1][1].copy()
    y_bad[5] = np.inf
    bad[1] = (bad[1][0], y_bad)
    with pytest.raises(DataError, match=r"k batch 1 \(rows from 700\): y has 1 infinite value, "
                                        r"first at row 5"):
        list(iter_batches(bad, key="k"))


def test_truncated_arrow_stream_is_a_data_error(tmp_path):
    path = tmp_path / "s.arrows"
    with pa.OSFile(str(path), "wb") as fh:
        _write_stream(fh, [_table(300, 1), _table(300, 2)])
    data = path.read_bytes()
    path.write_bytes(data[:-700])  # the writer died inside the second batch
    source = ArrowStreamSource(path, target="y")
    got = []
    with pytest.raises(DataError, match=r"s.arrows: corrupt or truncated Arrow stream after "
                                        r"row 300"):
        for batch in source:
            got.append(batch)
    assert [b.n_rows for b in got] == [300]
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(DataError, match="not an Arrow IPC stream"):
        list(ArrowStreamSource(tmp_path / "empty", target="y"))


def _expected_params(tables, m=2, seed=0, every=None):
    model = MixtureOfLinearRegressions(m, random_state=seed)
    offset = 0
    for t in tables:
        model.partial_fit(t, target="y", batch_id=("stdin", offset))
        offset += t.num_rows
    return model


def test_sigkill_between_batches_then_resume_gives_the_uninterrupted_result(tmp_path):
    tables = [_table(1000, 100 + s) for s in range(10)]
    ck = tmp_path / "ck"
    proc = _cli("-", "--target", "y", "--components", 2, "--checkpoint", ck,
                "--checkpoint-every", 2, stdin=subprocess.PIPE)
    writer = pa.ipc.new_stream(proc.stdin, tables[0].schema)
    for k in range(5):
        writer.write_table(tables[k])
        proc.stdin.flush()
        line = proc.stdout.readline().decode()
        assert line.startswith(f"batch {k + 1} rows {(k + 1) * 1000} loglik/row ")
    # Batch 5 was consumed but not checkpointed (checkpoints after 2 and 4): kill hard.
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    model, _ = load_checkpoint(ck)
    assert model.online_.n_batches == 4
    assert [e["next"] for e in model.online_.ledger.values()] == [4000]
    # Resume and replay the whole stream from its start: rows 0-3999 are skipped.
    proc = _cli("-", "--target", "y", "--components", 2, "--checkpoint", ck,
                "--checkpoint-every", 2, stdin=subprocess.PIPE)
    _write_stream(proc.stdin, tables)
    proc.stdin.close()
    out = proc.stdout.read().decode().splitlines()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert [int(line.split()[1]) for line in out] == list(range(5, 11))
    assert "skipping replayed rows 0-999" in err
    final, _ = load_checkpoint(ck)
    expected = _expected_params(tables)
    assert final.online_.n_batches == 10 and final.n_rows_ == 10_000
    assert final.params_ == expected.params_  # bit for bit
    saved = MixtureOfLinearRegressions.load(ck / "model.json")
    assert saved.params_ == expected.params_
    np.testing.assert_array_equal(saved.weights_, expected.weights_)


def test_watched_folder_picks_up_new_files_and_quarantines_a_corrupt_one(tmp_path):
    land = tmp_path / "land"
    land.mkdir()
    ck = tmp_path / "ck"
    tables = [_table(800, 200 + s) for s in range(4)]
    land_file(land, "f0.parquet", tables[0])
    proc = _cli(land, "--target", "y", "--components", 2, "--checkpoint", ck, "--watch",
                "--poll", 0.05, "--max-batches", 4, "--checkpoint-every", 1)
    assert proc.stdout.readline().decode().startswith("batch 1 rows 800 ")
    # Files still being written, under temporary names, are never read.
    (land / "f9.parquet.tmp").write_bytes(b"PAR1 half written")
    (land / ".f8.parquet").write_bytes(b"PAR1 half written")
    (land / "bad.parquet").write_bytes(b"this is not parquet")
    time.sleep(0.3)
    for k in (1, 2, 3):
        land_file(land, f"f{k}.parquet", tables[k])
        time.sleep(0.05)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert [line.split()[3] for line in lines] == ["1600", "2400", "3200"]
    assert (land / "quarantine" / "bad.parquet").exists() and not (land / "bad.parquet").exists()
    assert "quarantined bad.parquet" in err.decode()
    assert (land / "f9.parquet.tmp").exists() and (land / ".f8.parquet").exists()
    model, meta = load_checkpoint(ck)
    ledger = _by_name(model.online_.ledger)
    assert {k: v["status"] for k, v in ledger.items()} == {
        "f0.parquet": "done", "f1.parquet": "done", "f2.parquet": "done",
        "f3.parquet": "done", "bad.parquet": "quarantined"}
    assert "unreadable Parquet file" in ledger["bad.parquet"]["reason"]
    # Same result as feeding the files in arrival order in-process.
    ref = MixtureOfLinearRegressions(2, random_state=0)
    for k, t in enumerate(tables):
        ref.partial_fit(t, target="y", batch_id=(f"f{k}.parquet", 0))
    assert model.params_ == ref.params_
    # A second run finds nothing new: every file is in the ledger.
    proc = _cli(land, "--target", "y", "--checkpoint", ck)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == b"", err.decode()


def test_folder_bad_data_policies(tmp_path):
    table = _table(500, 7)
    y = table["y"].to_numpy().copy()
    y[[3, 9]] = np.nan
    pq.write_table(table.set_column(2, "y", pa.array(y)), tmp_path / "a_nan.parquet")
    pq.write_table(table.drop_columns(["b"]), tmp_path / "b_missing.parquet")
    pq.write_table(table, tmp_path / "c_good.parquet")
    for i, name in enumerate(["a_nan.parquet", "b_missing.parquet", "c_good.parquet"]):
        os.utime(tmp_path / name, ns=(10**18 + i, 10**18 + i))
    with pytest.raises(DataError, match=r"a_nan.parquet rows 0-499: y column 'y' has 2 NaN "
                                        r"values, first at row 3"):
        list(FolderStream(tmp_path, target="y", features=["a", "b"], on_error="stop"))
    ledger: dict = {}
    got = list(FolderStream(tmp_path, target="y", features=["a", "b"], ledger=ledger))
    assert [b.key for b in got] == [k for k, e in ledger.items() if e["name"] == "c_good.parquet"]
    assert got[0].key.startswith("file:")
    keys = {e["name"]: k for k, e in ledger.items()}
    ledger = _by_name(ledger)
    assert ledger["a_nan.parquet"]["status"] == "quarantined"
    assert "missing column(s) ['b']" in ledger["b_missing.parquet"]["reason"]
    assert sorted(os.listdir(tmp_path / "quarantine")) == ["a_nan.parquet", "b_missing.parquet"]
    # Iterating past a file's last batch marks it done: it is not read again.
    assert ledger["c_good.parquet"] == {"next": 500, "status": "done", "name": "c_good.parquet"}
    ledger = {keys[name]: entry for name, entry in ledger.items()}
    assert list(FolderStream(tmp_path, target="y", ledger=ledger)) == []
    # run_stream moves the source's ledger into the online state and keeps it there.
    model = MixtureOfLinearRegressions(2, random_state=0)
    source = FolderStream(tmp_path, target="y", features=["a", "b"],
                          ledger={"a_nan.parquet": dict(_by_name(ledger)["a_nan.parquet"])})
    assert run_stream(model, source) == 1
    assert source.ledger is model.online_.ledger
    # (a ledger entry keyed by name, as earlier versions wrote them, is taken over)
    assert _by_name(model.online_.ledger)["c_good.parquet"] == {
        "next": 500, "status": "done", "name": "c_good.parquet"}
    assert model.online_.ledger["a_nan.parquet"]["status"] == "quarantined"


def test_bad_stream_batch_stops_the_command_with_a_clear_error(tmp_path):
    good = _table(600, 1)
    y = good["y"].to_numpy().copy()
    y[42] = np.nan
    bad = good.set_column(2, "y", pa.array(y))
    path = tmp_path / "s.arrows"
    with pa.OSFile(str(path), "wb") as fh:
        _write_stream(fh, [good, bad, good])
    proc = _cli(path, "--target", "y", "--components", 2, "--checkpoint", tmp_path / "ck")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"{path} batch 1 (rows 600-1199): y column 'y' has 1 NaN value, first at row 42" \
        in err.decode()
    assert out.decode().count("\n") == 1
    model, _ = load_checkpoint(tmp_path / "ck")  # the good batch before it was saved
    assert model.n_rows_ == 600
    proc = _cli(path, "--target", "y", "--checkpoint", tmp_path / "ck2", "--components", 2,
                "--on-error", "skip")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.decode().count("\n") == 2
    assert json.loads((tmp_path / "ck2" / "state.json").read_text())["state"]["n_rows"] == 1200


def test_sigterm_writes_a_checkpoint_at_exit(tmp_path):
    land = tmp_path / "land"
    land.mkdir()
    land_file(land, "f0.parquet", _table(600, 1))
    ck = tmp_path / "ck"
    proc = _cli(land, "--target", "y", "-m", 2, "--checkpoint", ck, "--watch", "--poll", 0.05)
    assert proc.stdout.readline().decode().startswith("batch 1 rows 600 ")
    # Once the stream has started, its features are fixed: an extra column is ignored,
    # a missing one makes a bad file.
    land_file(land, "f1.parquet", _table(600, 2).drop_columns(["a"]))
    land_file(land, "f2.parquet", _table(600, 3).append_column("c", pa.array(np.ones(600))))
    # f1 landed first: it is quarantined, then f2 is consumed.
    assert proc.stdout.readline().decode().startswith("batch 2 rows 1200 ")
    assert (land / "quarantine" / "f1.parquet").exists()
    assert not (ck / "state.json").exists()  # --checkpoint-every 10: none yet
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    model, _ = load_checkpoint(ck)
    ledger = _by_name(model.online_.ledger)
    assert model.n_rows_ == 1200 and ledger["f1.parquet"]["status"] == "quarantined"
    assert "f1.parquet: missing column(s) ['a']" in ledger["f1.parquet"]["reason"]
    assert ledger["f2.parquet"] == {"next": 600, "status": "done", "name": "f2.parquet"}
