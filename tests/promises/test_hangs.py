"""Nothing hangs without a word: a YAML bomb is refused at once, a frozen or empty
cluster stops the fit with a one-line error naming what it waited for.

Real ``streammix`` processes, a real cluster config file, and a Dask
scheduler and workers started as processes on 127.0.0.1 (frozen with
SIGSTOP, or left without workers).  The resumed fits that check the
checkpoints left behind run without a cluster, in this process.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT
from support.cli import run_main
from support.lakes import SUBPROCESS_ENV, two_line_lake

from streammix.engines.cluster_config import ConfigError, load_cluster_config

ENV = SUBPROCESS_ENV

BILLION_LAUGHS = """\
type: local
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_billion_laughs_cluster_file_is_refused_at_once_naming_it(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"bomb.yaml: anchor &a at line 2, column 4 is not "
                                          r"allowed"):
        load_cluster_config(bomb)
    # A single alias (e.g. a merge key '<<: *base') is refused as well.
    merged = tmp_path / "merged.yaml"
    merged.write_text("type: local\ncluster: {n_workers: 1}\nengine:\n  <<: *x\n")
    with pytest.raises(ConfigError, match=r"merged.yaml: alias \*x at line 4"):
        load_cluster_config(merged)
    lake = two_line_lake(tmp_path / "lake")
    proc = subprocess.run(
        [sys.executable, "-m", "streammix", "fit", str(lake), "--target", "y", "--features",
         "x", "--components", "2", "--out", str(tmp_path / "m.json"), "--cluster", str(bomb)],
        env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert time.perf_counter() - start < 20  # it took beyond 60 s
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"streammix fit: error: {bomb}: anchor &a at line 2, column 4 is not allowed")
    assert not (tmp_path / "m.json").exists()


# ------------------------------------------------------------------ the cluster
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _scheduler(n_workers: int):
    """A scheduler process on 127.0.0.1 and ``n_workers`` worker processes (no nanny:
    a killed worker stays dead)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": ENV}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                               "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              **quiet)]
    try:
        procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                    address, "--no-nanny", "--nthreads", "1", "--host",
                                    "127.0.0.1", "--no-dashboard"], **quiet)
                  for _ in range(n_workers)]
        from distributed import Client

        with Client(address, timeout=30) as client:
            if n_workers:
                client.wait_for_workers(n_workers, timeout=60)
        yield address, procs[0], procs[1:]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()


#: Short enough for the tests to be quick, long enough that a loaded machine (the suite
#: beside other work on 2 cores) is not taken for a mute scheduler: with 2 s it was.
WORKER_TIMEOUT = 5


def _fit(lake, tmp_path, address, *extra):
    return [sys.executable, "-m", "streammix", "fit", str(lake), "--target", "y",
            "--features", "x", "--components", "2", "--out", str(tmp_path / "m.json"),
            "--checkpoint", str(tmp_path / "ck"), "--scheduler", address,
            "--worker-timeout", str(WORKER_TIMEOUT), *map(str, extra)]


def _error_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


def _wait_for(path: Path, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _checkpoint_resumes_in_process(lake, tmp_path, *extra) -> None:
    """The checkpoint left by the stopped fit is whole: it resumes without a cluster."""
    passes = sorted((tmp_path / "ck" / "passes").glob("*.json"))
    assert passes and all(json.loads(p.read_text()) for p in passes)
    args = _fit(lake, tmp_path, "unused", *extra, "--resume")[3:]  # after python -m streammix
    args[args.index("--scheduler"):args.index("--scheduler") + 2] = ["--in-process"]
    done = run_main(*args)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.json").exists()


def test_a_scheduler_without_workers_stops_the_fit_after_the_worker_timeout(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    with _scheduler(0) as (address, _, _):
        start = time.monotonic()
        proc = subprocess.run(_fit(lake, tmp_path, address), env=ENV, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - start
    assert proc.returncode == 1 and elapsed < 20  # (it used to wait with no output at all)
    assert _error_line(proc.stderr).startswith(
        f"streammix fit: error: no worker was connected to the scheduler at {address} for "
        f"{WORKER_TIMEOUT} s; the pass was abandoned")
    assert f"waiting for workers: none connected to {address}" in proc.stderr  # progress
    assert not (tmp_path / "m.json").exists()


def _fit_and_after_pass_3(lake, tmp_path, address, slow, action):
    """Run a checkpointed ``fit`` on ``address``; once pass 3 is saved, call ``action``.

    Returns the finished process, its stderr and the seconds from ``action``
    to its exit.
    """
    proc = subprocess.Popen(_fit(lake, tmp_path, address, *slow), env=ENV, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(tmp_path / "ck" / "passes" / "000003.json", proc)
        action()
        start = time.monotonic()
        _, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    return proc, err.decode(), elapsed


def test_a_frozen_scheduler_stops_the_fit_with_one_line_and_keeps_the_checkpoint(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    slow = ("--max-iter", 60, "--tol", 0)
    with _scheduler(1) as (address, scheduler, _):
        proc, err, elapsed = _fit_and_after_pass_3(
            lake, tmp_path, address, slow, lambda: scheduler.send_signal(signal.SIGSTOP))
    assert proc.returncode == 1 and elapsed < 30, err  # (it used to wait for minutes)
    assert _error_line(err) == (
        f"streammix fit: error: the scheduler at {address} did not answer for "
        f"{WORKER_TIMEOUT} s (stopped, "
        "overloaded or unreachable); the pass was abandoned (worker_timeout, --worker-timeout)")
    assert "Traceback" not in err and not (tmp_path / "m.json").exists()
    _checkpoint_resumes_in_process(lake, tmp_path, *slow)


def test_a_killed_scheduler_stops_the_fit_with_one_line_and_keeps_the_checkpoint(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    # (the last --worker-timeout counts: a loaded machine is not taken for a dead scheduler)
    slow = ("--max-iter", 60, "--tol", 0, "--worker-timeout", 15)
    with _scheduler(1) as (address, scheduler, _):
        proc, err, elapsed = _fit_and_after_pass_3(
            lake, tmp_path, address, slow, lambda: scheduler.send_signal(signal.SIGKILL))
    assert proc.returncode == 1 and elapsed < 30, err
    assert _error_line(err) == (
        f"streammix fit: error: lost the connection to the scheduler at {address} (its "
        "process ended or the network failed); the pass was abandoned")
    # Dask's client logged ~30 lines of its reconnection's traceback here.
    assert "Traceback" not in err and "CancelledError" not in err, err
    others = [line for line in err.splitlines() if "streammix.cli.progress" not in line]
    assert len(others) <= 3, err
    assert not (tmp_path / "m.json").exists()
    _checkpoint_resumes_in_process(lake, tmp_path, *slow)


def test_every_worker_killed_stops_the_fit_after_the_worker_timeout(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    slow = ("--max-iter", 60, "--tol", 0)
    with _scheduler(1) as (address, _, workers):
        proc, err, _ = _fit_and_after_pass_3(
            lake, tmp_path, address, slow,
            lambda: [worker.send_signal(signal.SIGKILL) for worker in workers])
    assert proc.returncode == 1, err  # (it used to wait forever)
    assert _error_line(err).startswith(
        f"streammix fit: error: no worker was connected to the scheduler at {address} for "
        f"{WORKER_TIMEOUT} s")
    assert f"waiting for workers: none connected to {address}" in err
    _checkpoint_resumes_in_process(lake, tmp_path, *slow)


def test_a_pass_whose_tasks_never_finish_stops_after_the_pass_timeout(tmp_path):
    from distributed import Client, Event, LocalCluster
    from support.reliability_sources import GatedSource

    from streammix import ClusterTimeoutError, DaskEngine, MixtureOfLinearRegressions

    lake = two_line_lake(tmp_path / "lake")
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "block").write_text("streammix-test-stuck-reads")  # every read waits on it
    source = GatedSource(lake, gate=gate, target="y", features=["x"])
    waits = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        engine = DaskEngine(client, worker_timeout=2, pass_timeout=1.5, on_wait=waits.append)
        start = time.monotonic()
        try:
            with pytest.raises(ClusterTimeoutError, match=(
                    r"no task of the pass finished in 1.5 s \(\d+ of \d+ tasks left, 1 workers "
                    r"connected to \S+\); the pass was abandoned")):
                MixtureOfLinearRegressions(2, engine=engine).fit(source)
            assert time.monotonic() - start < 15
        finally:
            Event("streammix-test-stuck-reads", client=client).set()
    assert any(m and m.startswith("waiting for tasks:") for m in waits)
