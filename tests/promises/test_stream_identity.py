"""What a stream checkpoint consumed is known by content, not by position or name.

Real ``streammix stream`` processes, Arrow IPC streams on their standard
input (through a shell pipe where ``cat`` joins streams) and a watched
folder where files are renamed and re-landed; the runs that follow a first
one on the same checkpoint read their standard input in this process
(``run_main``: what carries over between runs is the checkpoint folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
from support import ROOT
from support.cli import run_main
from support.lakes import SUBPROCESS_ENV, land_file
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions
from streammix.data.streams import FolderStream
from streammix.estimator.streaming import load_checkpoint

ENV = SUBPROCESS_ENV


def _table(n, seed):
    X, y, _ = make_mixture(n, [0.6, 0.4], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=seed)
    return pa.table({"a": X[:, 0], "b": X[:, 1], "y": y})


def _arrows(path, tables):
    with pa.OSFile(str(path), "wb") as fh, pa.ipc.new_stream(fh, tables[0].schema) as writer:
        for t in tables:
            writer.write_table(t)
    return path


def _stream(source, ck, *extra, stdin=None, shell_input=None):
    """Run ``streammix stream SOURCE``; stdin from a file, or a shell pipeline."""
    cmd = [sys.executable, "-m", "streammix", "stream", str(source), "--target", "y",
           "--components", "2", "--checkpoint", str(ck), "--checkpoint-every", "1",
           *map(str, extra)]
    if shell_input is not None:
        line = f"{shell_input} | " + " ".join(f"'{c}'" for c in cmd)
        return subprocess.run(line, shell=True, env=ENV, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fh:
        return subprocess.run(cmd, stdin=fh, env=ENV, cwd=ROOT, capture_output=True,
                              text=True, timeout=120)


def _stream_here(ck, stdin):
    """``streammix stream -`` in this process, ``stdin`` (a file) its standard input."""
    return run_main("stream", "-", "--target", "y", "--components", "2", "--checkpoint", ck,
                    "--checkpoint-every", "1", stdin=stdin)


def _reference(*tables):
    ref = MixtureOfLinearRegressions(2, random_state=0)
    for t in tables:
        ref.partial_fit(t, target="y")
    return ref


def test_another_stream_on_stdin_is_read_as_new_and_a_changed_replay_is_refused(tmp_path):
    a = [_table(500, 1), _table(500, 2)]
    b = [_table(500, 3), _table(500, 4)]
    a_file, b_file = _arrows(tmp_path / "a.arrows", a), _arrows(tmp_path / "b.arrows", b)
    ck = tmp_path / "ck"
    first = _stream("-", ck, stdin=a_file)
    assert first.returncode == 0, first.stderr
    assert [line.split()[3] for line in first.stdout.splitlines()] == ["500", "1000"]
    # A different stream on stdin, same checkpoint: read as a new stream (it used to be
    # skipped silently as "replayed rows 0-999 of stdin").
    second = _stream_here(ck, b_file)
    assert second.returncode == 0, second.stderr
    assert [line.split()[3] for line in second.stdout.splitlines()] == ["1500", "2000"]
    model, _ = load_checkpoint(ck)
    assert model.n_rows_ == 2000 and len(model.online_.ledger) == 2
    assert model.params_ == _reference(*a, *b).params_
    # The first stream again: its rows are known by content, skipped, and the log says so.
    again = _stream_here(ck, a_file)
    assert again.returncode == 0 and again.stdout == "", again.stderr
    assert "consumed the first 1000 rows of this stream (same content); skipping" in \
        again.stderr
    # Same first batch, different second one: refused, never skipped, state unchanged.
    forged = _arrows(tmp_path / "c.arrows", [a[0], _table(500, 9)])
    before = (ck / "state.json").read_bytes()
    refused = _stream_here(ck, forged)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "standard input: rows 0-999 differ from the rows the checkpoint consumed" in \
        refused.stderr
    assert (ck / "state.json").read_bytes() == before
    # It grew by a batch: only the new batch is read.
    grown = _stream_here(ck, _arrows(tmp_path / "a2.arrows", [*a, _table(300, 5)]))
    assert grown.returncode == 0, grown.stderr
    assert grown.stdout.splitlines()[0].startswith("batch 5 rows 2300 ")
    # Shorter than what was consumed of it: refused too.
    short = _stream_here(ck, _arrows(tmp_path / "a0.arrows", a))
    assert short.returncode == 1 and "the stream ended after 1000 rows, but the checkpoint " \
        "consumed 1300 rows of a stream that began with the same rows" in short.stderr


def test_concatenated_arrow_streams_are_all_read_or_what_is_left_is_named(tmp_path):
    a = [_table(500, 1), _table(500, 2)]
    b = [_table(400, 3)]
    a_file, b_file = _arrows(tmp_path / "a.arrows", a), _arrows(tmp_path / "b.arrows", b)
    ck = tmp_path / "ck"
    both = _stream("-", ck, shell_input=f"cat '{a_file}' '{b_file}'")
    assert both.returncode == 0, both.stderr
    assert [line.split()[3] for line in both.stdout.splitlines()] == ["500", "1000", "1400"]
    model, _ = load_checkpoint(ck)
    assert model.n_rows_ == 1400 and model.params_ == _reference(*a, *b).params_
    # A stream with another schema after the first: the first is read, then an error
    # names what was left unread.
    other = pa.table({"a": np.arange(10.0), "y": np.arange(10.0)})
    other_file = _arrows(tmp_path / "other.arrows", [other])
    ck2 = tmp_path / "ck2"
    mixed = _stream("-", ck2, shell_input=f"cat '{a_file}' '{other_file}'")
    assert mixed.returncode == 1
    assert len(mixed.stdout.splitlines()) == 2
    assert ("standard input: Arrow stream 2 (from row 1000) has another schema (a: double, "
            "y: double) than the first (a: double, b: double, y: double); it and everything "
            "after it were left unread") in mixed.stderr
    assert load_checkpoint(ck2)[0].n_rows_ == 1000
    # Trailing bytes that are no stream are named too.
    junk = tmp_path / "junk.arrows"
    junk.write_bytes(a_file.read_bytes() + b"not an arrow stream at all")
    tail = _stream(junk, tmp_path / "ck3")
    assert tail.returncode == 1 and len(tail.stdout.splitlines()) == 2
    assert "after 1 Arrow stream(s) (1000 rows, read), the rest of the input is not an " \
        "Arrow IPC stream" in tail.stderr


def test_watched_folder_knows_files_by_content_not_name(tmp_path):
    land = tmp_path / "land"
    land.mkdir()
    ck = tmp_path / "ck"
    first, second = _table(1000, 11), _table(1000, 12)
    land_file(land, "f1.parquet", first)
    cmd = [sys.executable, "-m", "streammix", "stream", str(land), "--target", "y",
           "--components", "2", "--checkpoint", str(ck), "--checkpoint-every", "1", "--watch",
           "--poll", "0.05", "--max-batches", "2"]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().decode().startswith("batch 1 rows 1000 ")
        # A read file renamed: the same file, not read again ...
        os.rename(land / "f1.parquet", land / "g1.parquet")
        time.sleep(0.3)
        # ... and a new file landing under the name already read: new data, read.
        land_file(land, "f1.parquet", second)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err.decode()
    assert out.decode().splitlines()[0].startswith("batch 2 rows 2000 ")
    assert "a new file under the name of a file read before" in err.decode()
    model, _ = load_checkpoint(ck)
    assert model.n_rows_ == 2000  # the renamed file counted once (it used to be 3,000)
    assert model.params_ == _reference(first, second).params_
    entries = sorted((e["name"], e["status"], e["next"]) for e in model.online_.ledger.values())
    assert entries == [("f1.parquet", "done", 1000), ("f1.parquet", "done", 1000)]
    # A state written by an earlier streammix keys the folder's ledger by file name:
    # it still loads and its files are not read again (matched by name once; they are
    # re-keyed by identity when the checkpoint is next written).
    state = json.loads((ck / "state.json").read_text())
    ledger = state["state"]["ledger"]
    source = FolderStream(land, target="y")
    names = {source.identity(name): name for name in ("f1.parquet", "g1.parquet")}
    old = {names[key]: {"next": entry["next"], "status": entry["status"]}
           for key, entry in ledger.items()}
    state["state"]["ledger"] = old
    (ck / "state.json").write_text(json.dumps(state))
    rerun = subprocess.run(cmd[:-5], env=ENV, cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert rerun.returncode == 0 and rerun.stdout == "", rerun.stderr
    model, _ = load_checkpoint(ck)
    assert model.n_rows_ == 2000
