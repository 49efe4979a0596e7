"""What the program says: one line per error or warning, and outputs that follow the umask.

A real ``streammix`` process for a data error of a fit run as the user runs
it (no cluster option); in this process (``run_main``) a fit that stops before
converging, and ``predict`` under two umasks.
"""

from __future__ import annotations

import stat

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from support.cli import run_cli, run_main
from support.lakes import two_line_lake


def test_a_data_error_on_the_default_cluster_is_one_line_without_worker_tracebacks(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    x = np.linspace(-1, 1, 50)
    y = 2 * x
    y[7] = np.nan
    pq.write_table(pa.table({"x": x, "y": y}), lake / "part-002.parquet")
    proc = run_cli("fit", lake, "--target", "y", "--features", "x", "-k", 2,
                   "--out", tmp_path / "m.json", timeout=180)
    assert proc.returncode == 1
    # the workers logged three "Compute Failed" tracebacks before this line (progress
    # lines, such as a wait for slow workers on a busy machine, may come first)
    lines = [line for line in proc.stderr.splitlines()
             if " INFO streammix.cli.progress: " not in line]
    assert lines == [
        f"streammix fit: error: {lake}/part-002.parquet: column 'y' has 1 NaN value, "
        "first at row 7"], proc.stderr


def test_a_convergence_warning_is_one_clean_line(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    proc = run_main("fit", lake, "--target", "y", "--features", "x", "-k", 2, "--in-process",
                    "--max-iter", 1, "--tol", 0, "--out", tmp_path / "m.json")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "ConvergenceWarning" in line]
    assert len(lines) == 1
    assert " WARNING py.warnings: ConvergenceWarning: EM did not converge in 1 iterations " \
        "(last change " in lines[0]
    assert lines[0].endswith("> tol 0); increase max_iter or tol")
    assert "fit.py" not in proc.stderr and "model.fit(" not in proc.stderr


def test_prediction_folders_follow_the_umask(tmp_path):
    lake = two_line_lake(tmp_path / "lake")
    model = tmp_path / "m.json"
    assert run_main("fit", lake, "--target", "y", "--features", "x", "-k", 2, "--in-process",
                    "--out", model, "-q").returncode == 0
    for umask, folder_mode, file_mode in ((0o022, 0o755, 0o644), (0o027, 0o750, 0o640)):
        out = tmp_path / f"pred-{umask:o}"
        proc = run_main("predict", model, lake, "--out", out, umask=umask)
        assert proc.returncode == 0, proc.stderr
        assert stat.S_IMODE(out.stat().st_mode) == folder_mode  # mkdtemp's 0700 before
        assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {file_mode}


def test_debug_tracebacks_leave_without_credentials(monkeypatch, capsys, tmp_path):
    """``--debug`` shows the traceback, with every credential in a URL redacted."""
    import streammix.cli.fit as fit_command
    from streammix.cli.main import main

    secret = "SENTINEL-debug-7f3a"

    def failing(args):
        raise RuntimeError(f"cannot read http://user:{secret}@127.0.0.1:9/lake?token={secret}")

    monkeypatch.setattr(fit_command, "run_fit", failing)
    code = main(["--debug", "fit", str(tmp_path), "--target", "y", "--features", "x", "-k", "2",
                 "--in-process", "--out", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err and "in failing" in err
    assert "RuntimeError: cannot read http://***@127.0.0.1:9/lake?token=***" in err
    assert secret not in err


def _help(*command) -> str:
    try:
        proc = run_main(*command, "--help")
    except SystemExit as stop:  # argparse's --help exits
        assert stop.code == 0
        raise AssertionError("--help exited before its output was captured") from None
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_command_help_reads_as_written(capsys):
    """argparse %-formats only the options' help, not a description: a "5%%" there is shown."""
    for command in ("fit", "info", "predict", "regroup", "stream", "plot"):
        text = _help(command)
        assert "%%" not in text, (command, text)
    assert "5%, 50% and 95%" in " ".join(_help("predict").split())


def test_fit_help_names_the_default_it_runs_on():
    description = " ".join(_help("fit").split("options:")[0].split())
    assert "local Dask cluster (default)" not in description
    assert "in this process (default)" in description
