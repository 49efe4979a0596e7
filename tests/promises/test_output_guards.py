"""Outputs never clobber inputs or each other; checkpoint folders are claimed and locked.

Real ``streammix`` processes on real Parquet files: two ``predict`` runs
racing for one ``--out`` (one is frozen with SIGSTOP between its start and
its final rename, while the other finishes), outputs aimed at the input
lake, ``--checkpoint`` aimed at a folder of other files, and two fits on one
checkpoint folder (then the first SIGKILLed, leaving its lock behind).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from support import ROOT
from support.lakes import SUBPROCESS_ENV, two_line_lake

from streammix import MixtureOfLinearRegressions, ParquetSource

ENV = SUBPROCESS_ENV


def _model(lake: Path, path: Path, m: int) -> Path:
    model = MixtureOfLinearRegressions(m, random_state=0, max_iter=200)
    model.fit(ParquetSource(lake, target="y", features=["x"]))
    model.save(path)
    return path


def _streammix(*args, **kw):
    return [sys.executable, "-m", "streammix", *map(str, args)]


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_predicts_to_one_new_out_never_mix_one_runs_files_with_the_others_message(
        tmp_path):
    lake = two_line_lake(tmp_path / "lake", 40, 2000)
    two = _model(lake, tmp_path / "two.json", 2)
    three = _model(lake, tmp_path / "three.json", 3)
    out = tmp_path / "pred"
    args = [lake, "--target", "y", "--features", "x", "--out", out]
    first = subprocess.Popen(_streammix("predict", two, *args), env=ENV, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Freeze the first run once it is writing (its temporary folder exists): it has
        # passed its check that --out does not exist.
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".pred.") for p in tmp_path.iterdir()):
            assert first.poll() is None and time.monotonic() < deadline, \
                first.communicate()[1].decode()
            time.sleep(0.002)
        first.send_signal(signal.SIGSTOP)
        assert not out.exists()
        second = subprocess.run(_streammix("predict", three, *args), env=ENV, cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        assert f"to {out}" in second.stderr
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    finally:
        first.kill()
        first.wait()
    # The first run fails at its final step, naming the folder, and leaves no temporary.
    assert first.returncode == 1
    assert f"{out} appeared while these predictions were written" in err.decode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "pred", "three.json",
                                                           "two.json"]
    # What is in --out is the second run's, whole: 3 components, every file.
    files = sorted(out.rglob("*.parquet"))
    assert len(files) == 40
    for path in files:
        assert "prob_3" in pq.read_schema(path).names
    assert sum(pq.read_metadata(p).num_rows for p in files) == 80_000


def test_predict_refuses_an_output_inside_or_holding_its_input(tmp_path):
    lake = two_line_lake(tmp_path / "lake", 2, 300)
    model = _model(lake, tmp_path / "m.json", 2)
    before = _digest(lake)
    base = ["predict", model, lake, "--target", "y", "--features", "x"]
    cases = {
        (lake, "--overwrite"): f"--out {lake} is inside the input {lake}",
        (lake / "pred",): f"--out {lake / 'pred'} is inside the input {lake}",
        (tmp_path, "--overwrite"): f"--out {tmp_path} holds the input {lake}",
    }
    for extra, message in cases.items():
        proc = subprocess.run(_streammix(*base, "--out", *extra), env=ENV, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert _digest(lake) == before
    assert not (lake / "pred").exists()
    # A single input file: an output that is the file, or holds it, is refused too.
    one = lake / "part-000.parquet"
    proc = subprocess.run(_streammix("predict", model, one, "--target", "y", "--features", "x",
                                     "--out", lake, "--overwrite"),
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and f"holds the input {one}" in proc.stderr
    assert _digest(lake) == before


def _fit(lake, out, ck, *extra):
    return _streammix("fit", lake, "--target", "y", "--features", "x", "--components", 2,
                      "--in-process", "--out", out, "--checkpoint", ck, *extra)


def test_checkpoint_on_a_folder_of_other_files_deletes_nothing(tmp_path):
    lake = two_line_lake(tmp_path / "lake", 2, 300)
    folder = tmp_path / "work"
    (folder / "passes").mkdir(parents=True)
    (folder / "passes" / "000000.json").write_text('{"mine": true}')
    (folder / "notes.txt").write_text("keep me")
    before = _digest(folder)
    proc = subprocess.run(_fit(lake, tmp_path / "m.json", folder), env=ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert (f"{folder} is not a streammix checkpoint folder (no .streammix-checkpoint marker "
            "and no checkpoint.json) and is not empty") in proc.stderr
    assert _digest(folder) == before and sorted(os.listdir(folder)) == ["notes.txt", "passes"]
    # The same for a stream checkpoint (state.json, model.json would be written there).
    proc = subprocess.run(_streammix("stream", lake, "--target", "y", "--components", 2,
                                     "--checkpoint", folder), env=ENV, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "(no .streammix-checkpoint marker and no state.json) and is not empty" in proc.stderr
    assert _digest(folder) == before and sorted(os.listdir(folder)) == ["notes.txt", "passes"]
    # An empty folder is fine, and gets the marker; a checkpoint of an earlier version
    # (checkpoint.json, no marker) still resumes (tests/test_file_compatibility.py).
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(_fit(lake, tmp_path / "m.json", empty, "--max-iter", "3"),
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(empty)) == [".streammix-checkpoint", "checkpoint.json", "passes"]


def test_two_fits_cannot_share_a_checkpoint_folder_and_a_dead_ones_lock_is_taken_over(
        tmp_path):
    lake = two_line_lake(tmp_path / "lake", 4, 5000)
    ck = tmp_path / "ck"
    slow = ["--max-iter", "100000", "--tol", "0"]
    first = subprocess.Popen(_fit(lake, tmp_path / "a.json", ck, *slow), env=ENV, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (ck / "passes" / "000002.json").exists():
            assert first.poll() is None and time.monotonic() < deadline, \
                first.communicate()[1].decode()
            time.sleep(0.02)
        lock = json.loads((ck / ".streammix.lock").read_text())
        assert lock["pid"] == first.pid
        second = subprocess.run(_fit(lake, tmp_path / "b.json", ck, *slow, "--resume"),
                                env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert (f"{ck} is in use by another streammix run (pid {first.pid} on "
                in second.stderr)
        assert not (tmp_path / "b.json").exists()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
        first.wait()
    # The killed fit's lock file is still there, with its pid; the next fit takes it over.
    assert json.loads((ck / ".streammix.lock").read_text())["pid"] == first.pid
    third = subprocess.run(_fit(lake, tmp_path / "c.json", ck, "--max-iter", "3", "--resume"),
                           env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert f"took over the stale lock of process {first.pid}" in third.stderr
    # (--max-iter differs from the first fit's, so the resume itself is refused, with the
    # lock released: nothing of the first fit is lost.)
    assert third.returncode == 1 and "different settings (max_iter" in third.stderr
    assert not (ck / ".streammix.lock").exists()
    assert (ck / "passes" / "000002.json").exists()
