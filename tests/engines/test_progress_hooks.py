"""Progress within a pass: the engines' ``on_progress`` hook and the CLI's line.

Each engine reports the share of a pass done as it goes, in process and on a
real 2-worker LocalCluster (a slow source makes the pass long enough to be
polled); :class:`FitProgress` turns it into a live line or, off a terminal,
throttled log lines.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from support.lakes import two_line_lake
from support.reliability_sources import GatedSource

from streammix import InProcessEngine, ParquetSource
from streammix.algorithms.tasks import EStepTask
from streammix.cli import progress as progress_module
from streammix.cli.progress import FitProgress
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats

PARAMS = MixtureParams(np.array([0.5, 0.5]), np.array([[3.0, 2.0], [-3.0, -1.0]]),
                       np.array([0.25, 0.25]))


def _pass(engine, source):
    return engine.map_reduce(source, EStepTask(PARAMS, True), SuffStats.zeros(2, 2))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_in_process_engine_reports_each_chunk(tmp_path, threads):
    lake = two_line_lake(tmp_path / "lake", n_files=5, rows=300)
    source = ParquetSource(lake, target="y", features=["x"])
    engine = InProcessEngine(threads)
    reference = _pass(engine, source)
    seen = []
    engine.on_progress = seen.append
    assert _pass(engine, source).loglik == reference.loglik  # the hook changes nothing
    assert seen == [k / 5 for k in range(1, 6)]


def test_the_dask_engine_reports_a_long_pass_as_it_goes(tmp_path, two_worker_client):
    from streammix import DaskEngine

    lake = two_line_lake(tmp_path / "lake", n_files=8, rows=200)
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "slow").write_text("0.8")
    source = GatedSource(lake, gate=gate, target="y", features=["x"])
    engine = DaskEngine(two_worker_client)  # polled every second
    seen = []
    engine.on_progress = seen.append
    stats = _pass(engine, source)
    assert stats.sum_w == 1600
    assert seen and all(0 < f <= 1 for f in seen) and seen == sorted(seen)
    assert seen[0] < 1  # reported before the pass was over


def test_fit_progress_draws_the_share_rate_and_eta_and_throttles_log_lines(monkeypatch,
                                                                            caplog):
    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: clock[0])
    out = io.StringIO()
    live = FitProgress(40, tty=True, stream=out, n_rows=4_000_000)
    clock[0] = 104.0
    live.in_pass(0.25)
    assert out.getvalue() == "\r\033[K[pass 0: 25%, 2.5e+05 rows/s, ETA 12 s]"
    clock[0] = 104.1
    live.in_pass(0.3)  # within 0.25 s of the last redraw: not drawn
    assert out.getvalue().count("\r") == 1

    clock[0] = 100.0
    logged = FitProgress(40, tty=False, n_rows=None)
    with caplog.at_level("INFO", logger="streammix.cli.progress"):
        clock[0] = 105.0
        logged.in_pass(0.1)  # the pass is 5 s old: too short to log
        clock[0] = 112.0
        logged.in_pass(0.4)
        clock[0] = 115.0
        logged.in_pass(0.5)  # 3 s after the last line: not logged
    assert [r.getMessage() for r in caplog.records] == ["pass 0: 40%, ETA 18 s"]
