"""Edges of the command line: what a killed run leaves, full and read-only disks,
odd column names, an empty DATA, symbolic links in a lake.

Real files; real ``streammix`` processes where a process is what is tested: a writer
SIGKILLed inside an atomic write, the fit and the stream that clean up after it on
their next start, a file-size limit (RLIMIT_FSIZE).  The other runs call the program
in this process (``run_main``), on a tiny or read-only tmpfs where this runs as root.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.cli import run_main
from support.lakes import two_line_lake

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _run(*args, limit_bytes=None, timeout=120):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "streammix", "-q", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT,
                          preexec_fn=limit if limit_bytes else None)


def _fit_args(lake, out, *extra):
    return ("fit", lake, "--target", "y", "--features", "x", "-k", "2", "--in-process",
            "--seed", "0", "--out", out, *extra)


def _fit(lake, out, *extra, **kw):
    """A quiet fit as a process of its own."""
    return _run(*_fit_args(lake, out, *extra), **kw)


def _fit_here(lake, out, *extra):
    """A quiet fit in this process."""
    return run_main("-q", *_fit_args(lake, out, *extra))


def _killed_inside_an_atomic_write(target: Path) -> int:
    """A process SIGKILLed while it writes ``target`` atomically; returns its pid."""
    code = ("import os, signal, sys\nfrom streammix.atomic import atomic_open\n"
            "with atomic_open(sys.argv[1]) as fh:\n    fh.write('{half')\n    fh.flush()\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], env=ENV)
    assert proc.returncode == -signal.SIGKILL
    left = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert len(left) == 1 and left[0].name.endswith(".tmp")  # what SIGKILL leaves
    return left[0]


def _one_error_line(done) -> str:
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_temporaries_left_by_killed_runs_are_removed_on_the_next_start(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    out, ck = tmp_path / "m.json", tmp_path / "ck"
    assert _fit_here(lake, out, "--checkpoint", ck).returncode == 0
    dead_model = _killed_inside_an_atomic_write(out)
    dead_pass = _killed_inside_an_atomic_write(ck / "passes" / "000001.json")
    dead_record = _killed_inside_an_atomic_write(ck / "checkpoint.json")
    # not ours to remove: a live process's temporary, a fresh one of the earlier
    # naming, other files
    host = dead_model.name.split("@", 1)[1].split(".", 1)[0]
    live = tmp_path / f".m.json.{os.getpid()}@{host}.abcdefgh.tmp"
    fresh, old = tmp_path / ".m.json.k2j4h5g6.tmp", tmp_path / ".m.json.a1b2c3d4.tmp"
    other = tmp_path / ".notes.txt.tmp"
    for path in (live, fresh, old, other):
        path.write_text("x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    done = _fit(lake, out, "--checkpoint", ck, "--resume")
    assert done.returncode == 0, done.stderr
    for gone in (dead_model, dead_pass, dead_record, old):
        assert not gone.exists(), gone
    for kept in (live, fresh, other):
        assert kept.exists(), kept
    assert MixtureOfLinearRegressions.load(out).n_components == 2

    # a stream's state: its checkpoint folder is cleaned when the stream claims it
    stream_ck = tmp_path / "stream_ck"
    table = pa.table({"x": np.linspace(0, 1, 200), "y": np.linspace(0, 2, 200)})
    arrows = tmp_path / "a.arrows"
    with pa.OSFile(str(arrows), "wb") as fh, pa.ipc.new_stream(fh, table.schema) as writer:
        writer.write_table(table)
    cmd = [sys.executable, "-m", "streammix", "stream", str(arrows), "--target", "y",
           "--components", "2", "--checkpoint", str(stream_ck)]
    assert run_main(*cmd[3:]).returncode == 0
    dead_state = _killed_inside_an_atomic_write(stream_ck / "state.json")
    done = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not dead_state.exists()


@contextlib.contextmanager
def _tmpfs(where: Path, *options: str):
    """A tmpfs mounted at ``where`` (root only), or skip."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs",
                           str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_a_full_disk_or_a_file_size_limit_names_the_file_and_keeps_the_old_one(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    out = tmp_path / "m.json"
    out.write_text("OLD")
    line = _one_error_line(_fit(lake, out, limit_bytes=500))  # RLIMIT_FSIZE: EFBIG
    assert line.startswith(f"streammix fit: error: [Errno 27] cannot write {out}: File too "
                           f"large (beyond the file-size limit); {out} was left as it was")
    assert out.read_text() == "OLD"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "m.json"]  # no temporary
    if os.geteuid() != 0:
        return
    with _tmpfs(tmp_path / "small", "size=64k") as small:
        (small / "m.json").write_text("OLD")
        fd = os.open(small / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        line = _one_error_line(_fit_here(lake, small / "m.json"))
        assert f"cannot write {small / 'm.json'}: No space left on device" in line \
            or f"folder {small} is not writable (No space left on device)" in line, line
        assert (small / "m.json").read_text() == "OLD"


def test_a_read_only_out_is_refused_before_the_fit(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    if os.geteuid() == 0:
        context = _tmpfs(tmp_path / "ro", "ro", "size=64k")
    else:
        (tmp_path / "ro").mkdir()
        os.chmod(tmp_path / "ro", 0o555)
        context = contextlib.nullcontext(tmp_path / "ro")
    with context as ro:
        start = time.monotonic()
        done = _fit_here(lake, ro / "m.json", "--checkpoint", tmp_path / "ck")
        line = _one_error_line(done)
    assert line.startswith(f"streammix fit: error: [Errno 30] cannot write the model to "
                           f"{ro / 'm.json'}: folder {ro} is not writable (Read-only file "
                           "system)") or "Permission denied" in line, line
    assert not (tmp_path / "ck").exists()  # found before the fit started
    assert time.monotonic() - start < 30


def test_columns_named_with_spaces_or_commas_can_be_selected(tmp_path):
    lake = tmp_path / "odd"
    lake.mkdir()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 2))
    y = np.where(rng.random(500) < 0.5, 2 + x[:, 0], -2 - x[:, 1]) + rng.normal(size=500) * .3
    pq.write_table(pa.table({" f ": x[:, 0], "a,b": x[:, 1], "y": y}), str(lake / "p.parquet"))
    for spec in ('" f ","a,b"', r'" f ",a\,b'):
        out = tmp_path / "m.json"
        done = run_main("-q", "fit", lake, "--target", "y", "--features", spec, "-k", "2",
                        "--in-process", "--seed", "0", "--out", out)
        assert done.returncode == 0, done.stderr
        assert json.loads(out.read_text())["data"]["features"] == [" f ", "a,b"]
    done = run_main("-q", "fit", lake, "--target", "y", "--features", '"a,b', "-k", "2",
                    "--out", out)
    assert done.returncode == 2 and "unclosed double quote" in done.stderr


def test_an_empty_data_argument_is_a_usage_error(tmp_path):
    for args in (("fit", "", "--target", "y", "--features", "x", "-k", "2", "--out",
                  tmp_path / "m.json"),
                 ("stream", "", "--target", "y", "--components", "2")):
        done = run_main("-q", *args)
        assert done.returncode == 2, done.stderr
        assert "usage:" in done.stderr and "must not be empty" in done.stderr


def test_a_symlinked_sub_folder_of_a_lake_is_followed_and_a_loop_refused(tmp_path):
    lake = two_line_lake(tmp_path / "lake", n_files=1)
    other = two_line_lake(tmp_path / "other", n_files=1)
    (lake / "more").symlink_to(other, target_is_directory=True)
    source = ParquetSource(str(lake), target="y", features=["x"])
    assert [f[len(str(lake)) + 1:] for f in source.files] == ["more/part-000.parquet",
                                                              "part-000.parquet"]
    model = MixtureOfLinearRegressions(2, random_state=0).fit(source)
    assert model.n_rows_ == 800
    done = _fit_here(lake, tmp_path / "m.json")
    assert done.returncode == 0, done.stderr
    (lake / "loop").symlink_to(lake, target_is_directory=True)
    with pytest.raises(DataError, match=r"lake/loop is a symbolic link to .*lake, a folder "
                                        r"that holds .* would be read twice"):
        ParquetSource(str(lake), target="y", features=["x"])
    line = _one_error_line(_fit_here(lake, tmp_path / "m.json"))
    assert "loop is a symbolic link" in line
    (lake / "loop").unlink()
    (lake / "gone.parquet").symlink_to(tmp_path / "nowhere.parquet")
    with pytest.raises(DataError, match=r"gone\.parquet is a broken symbolic link"):
        ParquetSource(str(lake), target="y", features=["x"])
