"""The ``streammix`` program on real Parquet lakes.

Most runs call the program in this process (``run_main``, output captured); a few run it
as a process of its own (``run_cli``): a fit whose report, model file and progress log
are checked, ``--help`` and what it imports, the installed console script, a terminal,
``predict`` and ``info``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import norm
from support import ROOT
from support.cli import SUBPROCESS_ENV, run_cli, run_main
from support.mixtures import make_mixture
from support.servers import moto_endpoint

from streammix import MixtureOfLinearRegressions
from streammix.cli.progress import FitProgress
from streammix.data.parquet.source import ParquetSource

TRUE_WEIGHTS = [0.6, 0.4]
N_FILE, N_FILES = 2000, 3


def write_lake(folder: Path, seed: int = 1, nan_at: tuple[int, str, int] | None = None):
    """Three files of 2000 rows (row groups of 700): x1, x2, y, id; optionally one NaN."""
    X, y, _ = make_mixture(N_FILE * N_FILES, TRUE_WEIGHTS, [-3.0, 3.0],
                           [[2.0, -1.0], [-1.0, 0.5]], [1.0, 0.7], seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(N_FILES):
        s = slice(i * N_FILE, (i + 1) * N_FILE)
        cols = {"x1": X[s, 0].copy(), "x2": X[s, 1].copy(), "y": y[s].copy(),
                "id": np.arange(s.start, s.stop) * 10}
        if nan_at is not None and nan_at[0] == i:
            cols[nan_at[1]][nan_at[2]] = np.nan
        pq.write_table(pa.table(cols), folder / f"part-{i}.parquet", row_group_size=700)
    return X, y


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lake") / "data"
    X, y = write_lake(folder)
    return folder, X, y


@pytest.fixture(scope="module")
def fitted(lake, tmp_path_factory):
    folder, _, _ = lake
    out = tmp_path_factory.mktemp("model") / "model.json"
    proc = run_cli("fit", folder, "--target", "y", "--features", "x1,x2", "--components", 2,
                   "--seed", 0, "--chunk-rows", 1400, "--in-process", "--out", out)
    return proc, out


def test_fit_prints_report_writes_model_and_logs_progress(lake, fitted):
    folder, _, _ = lake
    proc, out = fitted
    assert proc.returncode == 0, proc.stderr
    model = MixtureOfLinearRegressions.load(out)
    assert proc.stdout == model.report() + "\n"
    np.testing.assert_allclose(model.weights_, TRUE_WEIGHTS, atol=0.03)
    np.testing.assert_allclose(model.intercept_, [-3.0, 3.0], atol=0.1)
    # the program passes its options through: same fit as the library called directly
    direct = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=1400).fit(
        ParquetSource(folder, target="y", features=["x1", "x2"], chunk_rows=1400))
    np.testing.assert_array_equal(model.params_.beta, direct.params_.beta)
    assert model.loglik_ == direct.loglik_
    record = json.loads(out.read_text())
    assert record["data"] == {"path": str(folder), "target": "y", "features": ["x1", "x2"],
                              "weight": None}
    # stderr is not a terminal: one progress log line per EM pass, with the chunk count
    progress = [line for line in proc.stderr.splitlines() if "streammix.cli.progress" in line]
    assert len(progress) == model.n_iter_ + 1
    n_chunks = 3 * 2  # row groups of 700 grouped into chunks of <= 1400 rows: 2 per file
    assert f"chunks {n_chunks} ({n_chunks}/pass)" in progress[0]
    assert f"chunks {n_chunks * len(progress)} " in progress[-1]
    assert f"loglik {model.history_[-1]['loglik']:.10g}" in progress[-1]
    assert "\r" not in proc.stderr


def test_fit_in_process_by_default_on_a_local_cluster_or_a_scheduler_alike(lake, fitted,
                                                                             tmp_path, two_workers):
    folder, _, _ = lake
    _, in_process = fitted
    expected = json.loads(in_process.read_text())["fitted"]
    common = ["fit", folder, "--target", "y", "--features", "x1,x2", "--components", 2,
              "--seed", 0, "--chunk-rows", 1400]
    # no cluster option: in this process (the faster on one machine)
    proc = run_main(*common, "-v", "--out", tmp_path / "default.json")
    assert proc.returncode == 0, proc.stderr
    assert "running on tcp://" not in proc.stderr
    got = json.loads((tmp_path / "default.json").read_text())["fitted"]
    assert got["params"] == expected["params"] and got["loglik_"] == expected["loglik_"]
    # --cluster local: the embedded local.yaml (a LocalCluster with worker processes)
    proc = run_main(*common, "-v", "--cluster", "local", "--out", tmp_path / "local.json")
    assert proc.returncode == 0, proc.stderr
    assert "running on tcp://" in proc.stderr
    got = json.loads((tmp_path / "local.json").read_text())["fitted"]
    assert got["params"] == expected["params"] and got["loglik_"] == expected["loglik_"]
    # a scheduler given by address (the session's cluster: its tasks are counted)
    cluster = two_workers

    def maps_done():
        prefix = cluster.scheduler.task_prefixes.get("streammix-map")
        return 0 if prefix is None else prefix.state_counts["memory"]

    before = maps_done()
    proc = run_main(*common, "--scheduler", cluster.scheduler_address,
                    "--out", tmp_path / "sched.json")
    assert proc.returncode == 0, proc.stderr
    # the program attached to this scheduler, ran there, and left it running
    assert cluster.status.name == "running"
    assert maps_done() > before
    got = json.loads((tmp_path / "sched.json").read_text())["fitted"]
    assert got["params"] == expected["params"]


def test_info_prints_the_summary(fitted):
    _, out = fitted
    proc = run_cli("info", out)
    assert proc.returncode == 0, proc.stderr
    model = MixtureOfLinearRegressions.load(out)
    # the summary, with a hint for a command-line user where the library's names a method
    expected = str(model.summary()).replace(
        "call compute_se(X, y) or fit(..., se=True)",
        "fit again with 'streammix fit ... --se' to have them")
    assert proc.stdout.startswith(expected + "\n")
    assert "target 'y', features x1, x2" in proc.stdout


def test_fit_with_se_saves_standard_errors_that_info_shows(lake, tmp_path):
    out = tmp_path / "se.json"
    proc = run_main("fit", lake[0], "--target", "y", "--features", "x1,x2", "--components", "2",
                    "--seed", "0", "--in-process", "--se", "--out", out)
    assert proc.returncode == 0, proc.stderr
    model = MixtureOfLinearRegressions.load(out)
    assert model.se_method_ == "louis" and np.all(np.isfinite(model.vcov_))
    info = run_main("info", out)
    assert "observed information (Louis)" in info.stdout and "n/a" not in info.stdout


def reference_posteriors(model, X, y):
    """Posteriors and mean computed from the fitted numbers with scipy, not streammix."""
    dens = np.column_stack([
        model.weights_[j] * norm.pdf(y, model.intercept_[j] + X @ model.coef_[j],
                                     model.sigma_[j])
        for j in range(model.n_components_)])
    mean = sum(model.weights_[j] * (model.intercept_[j] + X @ model.coef_[j])
               for j in range(model.n_components_))
    return dens / dens.sum(1, keepdims=True), mean, np.log(dens.sum(1))


def test_predict_writes_one_file_per_input_file(lake, fitted, tmp_path):
    folder, X, y = lake
    _, model_path = fitted
    out = tmp_path / "pred"
    proc = run_cli("predict", model_path, folder, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"part-{i}.parquet" for i in range(3)]
    model = MixtureOfLinearRegressions.load(model_path)
    prob, mean, loglik = reference_posteriors(model, X, y)
    for i in range(N_FILES):
        table = pq.read_table(out / f"part-{i}.parquet")
        assert table.column_names == ["row_id", "mean", "component", "loglik", "prob_1",
                                      "prob_2"]
        s = slice(i * N_FILE, (i + 1) * N_FILE)
        np.testing.assert_array_equal(table["row_id"].to_numpy(), np.arange(N_FILE))
        np.testing.assert_allclose(table["mean"].to_numpy(), mean[s], rtol=1e-12, atol=1e-12)
        got = np.column_stack([table["prob_1"].to_numpy(), table["prob_2"].to_numpy()])
        np.testing.assert_allclose(got, prob[s], atol=1e-12)
        np.testing.assert_allclose(table["loglik"].to_numpy(), loglik[s], rtol=1e-10)
        np.testing.assert_array_equal(table["component"].to_numpy(), prob[s].argmax(1) + 1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_predict_keeps_passthrough_columns_and_drops_bad_rows(tmp_path, fitted):
    _, model_path = fitted
    folder = tmp_path / "lake"
    write_lake(folder, seed=5, nan_at=(1, "x2", 1234))
    out = tmp_path / "pred"
    proc = run_main("predict", model_path, folder, "--out", out, "--keep", "id,x1",
                    "--on-invalid", "drop")
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out / "part-1.parquet")
    assert table.column_names[:2] == ["id", "x1"]
    ids = table["id"].to_numpy()
    assert table.num_rows == N_FILE - 1 and (N_FILE + 1234) * 10 not in ids
    source = pq.read_table(folder / "part-1.parquet")
    expected = np.delete(source["id"].to_numpy(), 1234)
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(table["x1"].to_numpy(), np.delete(source["x1"].to_numpy(),
                                                                     1234))


def test_failed_predict_leaves_no_output(tmp_path, fitted):
    _, model_path = fitted
    folder = tmp_path / "lake"
    write_lake(folder, seed=6, nan_at=(2, "x1", 1500))  # the last file: two are written first
    out = tmp_path / "pred"
    proc = run_main("predict", model_path, folder, "--out", out)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"streammix predict: error: {folder / 'part-2.parquet'}: column 'x1' has 1 NaN value, "
        "first at row 1500")
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake"]  # no temporary folder left


def test_predict_refuses_to_overwrite_unless_asked(tmp_path, fitted, lake):
    folder, _, _ = lake
    _, model_path = fitted
    out = tmp_path / "pred"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_main("predict", model_path, folder, "--out", out)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert (out / "keep.txt").read_text() == "mine"
    proc = run_main("predict", model_path, folder, "--out", out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"part-{i}.parquet" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred"]


def test_failed_fit_leaves_the_model_file_alone(tmp_path):
    folder = tmp_path / "lake"
    write_lake(folder, seed=7, nan_at=(0, "y", 17))
    out = tmp_path / "model.json"
    out.write_text("previous model")
    proc = run_main("fit", folder, "--target", "y", "--features", "x1,x2", "-k", 2,
                    "--in-process", "--out", out)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"streammix fit: error: {folder / 'part-0.parquet'}: column 'y' has 1 NaN "
                     "value, first at row 17"]
    assert out.read_text() == "previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lake", "model.json"]
    # the explicit drop policy fits and says how many rows it dropped
    proc = run_main("fit", folder, "--target", "y", "--features", "x1,x2", "-k", 2, "--seed", 1,
                    "--in-process", "--on-invalid", "drop", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert f"dropped 1 of {N_FILE * N_FILES} rows" in proc.stderr
    assert MixtureOfLinearRegressions.load(out).n_rows_ == N_FILE * N_FILES - 1


@pytest.mark.parametrize("args, message", [
    (["fit", "{lake}", "--target", "y", "--features", "x1,nope", "-k", "2", "--in-process",
      "--out", "{tmp}/m.json"], "part-0.parquet: column 'nope' is missing"),
    (["fit", "{tmp}/no-such-lake", "--target", "y", "--features", "x1", "-k", "2",
      "--in-process", "--out", "{tmp}/m.json"], "no-such-lake does not exist"),
    (["fit", "{lake}", "--target", "y", "--features", "x1", "-k", "2", "--in-process",
      "--out", "{tmp}/missing/m.json"], "folder {tmp}/missing does not exist"),
    (["fit", "{lake}", "--target", "y", "--features", "x1", "-k", "2",
      "--cluster", "{tmp}/bad.yaml", "--out", "{tmp}/m.json"],
     "bad.yaml: key 'cluster.n_wrokers': unknown key"),
    (["info", "{tmp}/bad.yaml"], "not a valid model file"),
    (["predict", "{tmp}/bad.yaml", "{lake}", "--out", "{tmp}/p"], "not a valid model file"),
])
def test_data_and_config_errors_exit_1_with_one_line(tmp_path, lake, args, message):
    folder, _, _ = lake
    (tmp_path / "bad.yaml").write_text("type: local\ncluster: {n_wrokers: 2}\n")
    args = [a.format(lake=folder, tmp=tmp_path) for a in args]
    proc = run_main(*args)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"streammix {args[0]}: error: ")
    assert message.format(tmp=tmp_path) in lines[0]
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["fit", "lake", "--features", "x1", "-k", "2", "--out", "m.json"],  # no --target
    ["fit", "lake", "--target", "y", "--features", "x1", "-k", "0", "--out", "m.json"],
    ["fit", "lake", "--target", "y", "--features", "x1,", "-k", "2", "--out", "m.json"],
    ["fit", "lake", "--target", "y", "--features", "x1", "-k", "2", "--out", "m.json",
     "--in-process", "--cluster", "c.yaml"],
    ["fit", "lake", "--target", "y", "--features", "x1", "-k", "2", "--out", "m.json",
     "--tol", "-1"],
    ["predict", "m.json", "lake", "--out", "p", "--storage-options", "[1]"],
])
def test_usage_errors_exit_2(tmp_path, args):
    proc = run_main(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage: streammix" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_lists_the_commands_without_importing_the_heavy_libraries():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "streammix", "--help"],
                          env=SUBPROCESS_ENV, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for command in ("fit", "predict", "info", "stream", "plot", "regroup"):
        assert command in proc.stdout
    # -X importtime: one line per module imported ("import time: self | cumulative | name")
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "streammix" in imported
    assert not imported & {"sklearn", "scipy", "pandas", "pyarrow", "dask", "distributed",
                           "numpy"}, sorted(imported)


def test_the_installed_entry_point_runs_the_program():
    import streammix

    script = Path(sys.executable).parent / "streammix"
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (streammix not installed)")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"streammix {streammix.__version__}\n"
    proc = subprocess.run([str(script), "frobnicate"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'frobnicate'" in proc.stderr


def test_a_command_module_registers_with_one_line(tmp_path, monkeypatch, capsys):
    from streammix.cli import main as cli

    (tmp_path / "hello_cli.py").write_text(
        "def register(subparsers):\n"
        "    p = subparsers.add_parser('hello', help='say hello')\n"
        "    p.add_argument('name')\n"
        "    p.set_defaults(func=lambda args: print('hello', args.name) or 0)\n")
    (tmp_path / "broken_cli.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + (
        ("hello_cli", False), ("absent_cli", False), ("broken_cli", False)))
    assert cli.main(["hello", "world"]) == 0
    out, err = capsys.readouterr()
    assert out == "hello world\n"
    # optional modules that are absent or cannot be imported are left out of the program;
    # a failed import is reported on stderr
    assert err == ("streammix: warning: the commands of broken_cli are unavailable: "
                   "No module named 'no_such_dependency_xyz'\n")
    assert cli.main(["broken"]) == 2
    assert "invalid choice: 'broken'" in capsys.readouterr().err


def test_progress_redraws_one_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = FitProgress(n_chunks=4, n_runs=2, stream=stream)
    # n_init runs read the same scans: their records of one scan interleave
    for record in ({"iteration": 0, "run": 0, "loglik": -10.0},
                   {"iteration": 0, "run": 1, "loglik": -12.0},
                   {"iteration": 1, "run": 0, "loglik": -9.5},
                   {"iteration": 1, "run": 1, "loglik": -11.0}):
        progress(record)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r\033[K") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "run 2/2  iteration   0  chunks 4 (4/pass)  loglik -12  (" in text
    assert "run 1/2  iteration   1  chunks 8 (4/pass)  loglik -9.5  change +0.5" in text
    assert "run 2/2  iteration   1  chunks 8 (4/pass)  loglik -11  change +1" in text
    assert text.rstrip().endswith(" s)")


def test_progress_logs_lines_when_not_a_terminal(caplog):
    stream = io.StringIO()
    progress = FitProgress(n_chunks=3, stream=stream)
    with caplog.at_level(logging.INFO, logger="streammix.cli.progress"):
        progress({"iteration": 0, "loglik": -5.0})
        progress({"iteration": 1, "loglik": -4.0, "event": "dropped [1]"})
        progress.close()
    assert stream.getvalue() == ""
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[1].startswith("iteration   1  chunks 6 (3/pass)  loglik -4  change +1")
    assert messages[1].endswith("[dropped [1]]")


def test_progress_on_a_real_terminal_redraws_in_place(lake, tmp_path):
    import pty
    import select

    folder, _, _ = lake
    leader, follower = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streammix", "fit", str(folder), "--target", "y", "--features",
         "x1,x2", "-k", "2", "--seed", "0", "--in-process", "--out", str(tmp_path / "m.json")],
        env=env, stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    stdout, _ = proc.communicate(timeout=120)
    chunks = []
    while select.select([leader], [], [], 0.5)[0]:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    terminal = b"".join(chunks).decode()
    assert proc.returncode == 0, terminal
    n_passes = MixtureOfLinearRegressions.load(tmp_path / "m.json").n_iter_ + 1
    # one redraw per pass, plus any of progress within a pass ("[pass 0: 33%, ...]")
    assert terminal.count("\r\x1b[Kiteration ") == n_passes
    within = terminal.count("\r\x1b[K") - n_passes
    assert within == terminal.count("[pass ") and within <= 3 * n_passes
    assert "INFO" not in terminal  # a live line, not log records
    assert stdout.startswith("Mixture of 2 linear regressions")


def test_run_em_calls_back_after_each_pass_with_the_history_record(small_mixture):
    X, y, _ = small_mixture
    seen = []
    model = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=500)
    model.fit(X, y, callback=seen.append)
    # one record per pass, tagged with its run (SQUAREM adds step diagnostics to the
    # history afterwards, so compare the fields every record has)
    key = ("iteration", "loglik", "objective", "n_components")
    assert [tuple(r[k] for k in key) for r in seen] == \
        [tuple(h[k] for k in key) for h in model.history_]
    assert len(seen) == model.n_iter_ + 1 == model.n_passes_ - 1
    assert all(r["run"] == 0 for r in seen)
    seen[0]["loglik"] = 0.0  # the callback gets copies
    assert model.history_[0]["loglik"] != 0.0


def test_fit_and_predict_a_hive_lake_in_a_bucket_by_url(tmp_path):
    """--storage-options reaches s3fs; the bucket gives the local fit; hive columns kept."""
    import s3fs

    X, y, _ = make_mixture(3000, TRUE_WEIGHTS, [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=11)
    local = tmp_path / "lake"
    for k, region in enumerate(["eu", "us"]):
        (local / f"region={region}").mkdir(parents=True)
        rows = slice(1500 * k, 1500 * (k + 1))
        pq.write_table(pa.table({"x1": X[rows, 0], "x2": X[rows, 1], "y": y[rows],
                                 "id": np.arange(rows.start, rows.stop)}),
                       local / f"region={region}" / "part-0.parquet", row_group_size=500)
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}
    with moto_endpoint() as url:
        options = {"client_kwargs": {"endpoint_url": url}}
        fs = s3fs.S3FileSystem(key="testing", secret="testing", skip_instance_cache=True,
                               **options)
        fs.mkdir("cli-test")
        fs.put(str(local), "cli-test/lake", recursive=True)
        env_keep = dict(os.environ)
        os.environ.update(creds)
        try:
            common = ["--target", "y", "--features", "x1,x2", "-k", "2", "--seed", "3",
                      "--in-process"]
            remote = run_main("fit", "s3://cli-test/lake", *common, "--storage-options",
                              json.dumps(options), "--out", tmp_path / "remote.json")
            pred = run_main("predict", tmp_path / "remote.json", "s3://cli-test/lake",
                            "--storage-options", json.dumps(options), "--keep", "region,id",
                            "--out", tmp_path / "pred")
        finally:
            os.environ.clear()
            os.environ.update(env_keep)
    assert remote.returncode == 0, remote.stderr
    assert pred.returncode == 0, pred.stderr
    here = run_main("fit", local, *common, "--out", tmp_path / "local.json")
    assert here.returncode == 0, here.stderr
    got = json.loads((tmp_path / "remote.json").read_text())
    want = json.loads((tmp_path / "local.json").read_text())
    assert got["fitted"]["params"] == want["fitted"]["params"]
    assert got["data"]["path"] == "s3://cli-test/lake"
    for k, region in enumerate(["eu", "us"]):
        table = pq.read_table(tmp_path / "pred" / f"region={region}" / "part-0.parquet")
        assert table.column_names[:2] == ["region", "id"]
        assert set(table["region"].to_pylist()) == {region}
        np.testing.assert_array_equal(table["id"].to_numpy(), np.arange(1500 * k,
                                                                        1500 * (k + 1)))


def test_weight_column_is_used_and_quiet_mode_is_silent(lake, tmp_path):
    """Weights of 2 on every row: same estimates, twice the log-likelihood and N."""
    folder, X, y = lake
    weighted = tmp_path / "lake"
    weighted.mkdir()
    for f in sorted(folder.glob("*.parquet")):
        table = pq.read_table(f)
        table = table.append_column("w", pa.array(np.full(table.num_rows, 2.0)))
        pq.write_table(table, weighted / f.name, row_group_size=700)
    out = tmp_path / "m.json"
    # to a tight tolerance: EM's tolerance is on the log-likelihood, which the weights
    # double, so at the default one the two fits stop at different distances from the optimum
    proc = run_main("-q", "fit", weighted, "--target", "y", "--features", "x1,x2", "--weight", "w",
                    "--components", 2, "--seed", 0, "--chunk-rows", 1400, "--in-process",
                    "--tol", "1e-10", "--max-iter", 2000, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    model = MixtureOfLinearRegressions.load(out)
    base = MixtureOfLinearRegressions(2, random_state=0, chunk_rows=1400, tol=1e-10,
                                      max_iter=2000).fit(pd.DataFrame(X, columns=["x1", "x2"]), y)
    assert model.sum_weights_ == 2 * base.sum_weights_ == 2 * N_FILE * N_FILES
    np.testing.assert_allclose(model.params_.beta, base.params_.beta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.loglik_, 2 * base.loglik_, rtol=1e-9)
    assert json.loads(out.read_text())["data"]["weight"] == "w"


def test_a_fit_that_stops_at_max_iter_warns_and_still_writes_the_model(lake, tmp_path):
    folder, _, _ = lake
    out = tmp_path / "m.json"
    proc = run_main("fit", folder, "--target", "y", "--features", "x1,x2", "-k", 2, "--seed", 0,
                    "--max-iter", 1, "--tol", 0, "--in-process", "--out", out)
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "EM did not converge in 1 iterations" in warning[0]
    model = MixtureOfLinearRegressions.load(out)
    assert model.n_iter_ == 1 and model.converged_ is False
