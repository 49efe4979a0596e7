"""Checkpoint and resume of batch fits: library and ``streammix fit --checkpoint/--resume``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ROOT
from support.interrupt import Interrupt, stop_after
from support.mixtures import make_mixture

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.exceptions import CheckpointError, ConvergenceWarning

FEATURES = ["x1", "x2"]


@pytest.fixture(scope="module")
def data():
    X, y, _ = make_mixture(3000, [0.4, 0.6], [-1.0, 1.0], [[1.0, -0.5], [-0.5, 1.0]],
                           [1.0, 0.8], seed=8)
    return X, y


@pytest.fixture
def lake(tmp_path, data):
    X, y = data
    root = tmp_path / "lake"
    root.mkdir()
    for k in range(3):
        sl = slice(1000 * k, 1000 * (k + 1))
        pq.write_table(pa.table({"x1": X[sl, 0], "x2": X[sl, 1], "y": y[sl]}),
                       str(root / f"part-{k}.parquet"), row_group_size=250)
    return root


SETTINGS = dict(random_state=7, tol=1e-9, n_init=2, chunk_rows=500)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_resumed_fit_is_bit_identical_to_an_uninterrupted_one(data, tmp_path, fraction):
    """Interrupted early, half-way or near the end of a fit whose n_init=2 runs share passes."""
    X, y = data
    reference_calls = []
    reference = MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y,
                                                              callback=reference_calls.append)
    n_calls = max(1, int(fraction * len(reference_calls)))
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y, checkpoint=folder,
                                                      callback=stop_after(n_calls))
    saved = json.loads((folder / "checkpoint.json").read_text())
    assert saved["format"] == "streammix-checkpoint"
    n_saved = len(list((folder / "passes").glob("*.json")))
    assert 1 <= n_saved <= reference.n_passes_ - 1  # pass 0 is not in the log
    calls = []
    resumed = MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y, checkpoint=folder,
                                                            resume=True, callback=calls.append)
    np.testing.assert_array_equal(resumed.params_.beta, reference.params_.beta)
    np.testing.assert_array_equal(resumed.params_.sigma2, reference.params_.sigma2)
    np.testing.assert_array_equal(resumed.params_.weights, reference.params_.weights)
    assert resumed.loglik_ == reference.loglik_
    assert resumed.history_ == reference.history_
    assert resumed.n_iter_ == reference.n_iter_ and resumed.n_rows_ == 3000
    assert resumed.n_passes_ == reference.n_passes_
    # saved passes are replayed silently, not done again: the callback sees new passes only
    assert len(calls) < len(reference_calls)
    assert calls == reference_calls[len(reference_calls) - len(calls):]
    assert len(list((folder / "passes").glob("*.json"))) == reference.n_passes_ - 1


def test_resume_without_a_seed_reuses_the_stored_one(data, tmp_path):
    """random_state=None: the seed drawn by the interrupted fit is in the checkpoint."""
    import shutil
    X, y = data
    settings = {**SETTINGS, "random_state": None, "n_init": 1}
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        MixtureOfLinearRegressions(2, **settings).fit(X, y, checkpoint=folder,
                                                      callback=stop_after(3))
    assert len(list((folder / "passes").glob("*.json"))) == 4  # interrupted in the 4th
    shutil.copytree(folder, tmp_path / "copy")
    first = MixtureOfLinearRegressions(2, **settings).fit(X, y, checkpoint=folder, resume=True)
    second = MixtureOfLinearRegressions(2, **settings).fit(X, y, checkpoint=tmp_path / "copy",
                                                           resume=True)
    assert first.history_ == second.history_
    np.testing.assert_array_equal(first.params_.beta, second.params_.beta)


def _nudge_first_pass(folder, factor):
    """Scale every coefficient the first saved pass was made at by ``factor``."""
    path = folder / "passes" / "000000.json"
    entry = json.loads(path.read_text())
    for params in entry["params"]:
        params["beta"] = (np.asarray(params["beta"]) * factor).tolist()
    path.write_text(json.dumps(entry))


def test_a_checkpoint_made_on_another_cpu_resumes_to_rounding_a_changed_one_is_refused(
        data, tmp_path, caplog):
    """Another CPU or numpy build computes the starts a few ulps apart: still resumed.

    A checkpoint written on an AVX2 machine asks, on an AVX-512 one, for
    starting values 1e-16 apart; a real difference (1e-6) is another fit.
    """
    import shutil
    X, y = data
    reference = MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y)
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y, checkpoint=folder,
                                                      callback=stop_after(4))
    shutil.copytree(folder, tmp_path / "changed")
    _nudge_first_pass(folder, 1.0 + 4 * np.finfo(float).eps)
    with caplog.at_level("WARNING", logger="streammix"):
        resumed = MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y, checkpoint=folder,
                                                                resume=True)
    notes = [r.getMessage() for r in caplog.records if "by rounding only" in r.getMessage()]
    assert len(notes) == 1 and "not bit for bit" in notes[0] and "000000.json" in notes[0]
    np.testing.assert_allclose(resumed.params_.beta, reference.params_.beta, rtol=1e-10)
    assert resumed.loglik_ == pytest.approx(reference.loglik_, rel=1e-12)
    assert resumed.n_passes_ == reference.n_passes_
    _nudge_first_pass(tmp_path / "changed", 1.0 + 1e-6)
    with pytest.raises(CheckpointError, match="000000.json: the resumed fit asks for other"):
        MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y, checkpoint=tmp_path / "changed",
                                                      resume=True)


def test_a_checkpoint_from_other_data_or_settings_is_refused(lake, tmp_path):
    source = ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=250)
    folder = tmp_path / "ckpt"
    kwargs = dict(random_state=0, tol=1e-9)
    with pytest.raises(Interrupt):
        MixtureOfLinearRegressions(2, **kwargs).fit(source, checkpoint=folder,
                                                    callback=stop_after(3))
    before = (folder / "checkpoint.json").read_text()
    # a second fit into the same folder would overwrite it
    with pytest.raises(CheckpointError, match=r"checkpoint\.json already exists: resume it"):
        MixtureOfLinearRegressions(2, **kwargs).fit(source, checkpoint=folder)
    # other settings
    with pytest.raises(CheckpointError, match=r"different settings \(max_iter 500 then, 20 "
                                              r"now\); refusing"):
        MixtureOfLinearRegressions(2, max_iter=20, **kwargs).fit(source, checkpoint=folder,
                                                                 resume=True)
    # other chunking of the same files: another plan
    with pytest.raises(CheckpointError, match=r"different data \(the chunk plan differs "
                                              r"\(12 chunks then, 6 now\)\)"):
        MixtureOfLinearRegressions(2, **kwargs).fit(
            ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=500),
            checkpoint=folder, resume=True)
    # a file rewritten with other rows (same plan: size and time tell)
    X, y, _ = make_mixture(1000, [0.5, 0.5], [0.0, 3.0], [[1.0, 1.0], [2.0, 0.0]],
                           [1.0, 1.0], seed=99)
    time.sleep(0.01)
    pq.write_table(pa.table({"x1": X[:, 0], "x2": X[:, 1], "y": y}),
                   str(lake / "part-1.parquet"), row_group_size=250)
    changed = ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=250)
    assert list(map(repr, changed.plan())) == list(map(repr, source.plan()))  # stamps differ
    with pytest.raises(CheckpointError, match=r"different data \(1 file\(s\) changed size or "
                                              r"time \(first .*part-1\.parquet\)\)"):
        MixtureOfLinearRegressions(2, **kwargs).fit(changed, checkpoint=folder, resume=True)
    # in-memory arrays: their bytes are fingerprinted
    with pytest.raises(CheckpointError, match="a ParquetSource then, a ArraySource now"):
        MixtureOfLinearRegressions(2, **kwargs).fit(X, y, checkpoint=folder, resume=True)
    assert (folder / "checkpoint.json").read_text() == before  # refusals change nothing
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        MixtureOfLinearRegressions(2).fit(X, y, checkpoint=tmp_path / "none", resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        MixtureOfLinearRegressions(2).fit(X, y, resume=True)
    (folder / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        MixtureOfLinearRegressions(2, **kwargs).fit(source, checkpoint=folder, resume=True)


def test_arrays_changed_in_place_are_refused(data, tmp_path):
    X, y = data
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        MixtureOfLinearRegressions(2, random_state=1).fit(X, y, checkpoint=folder,
                                                          callback=stop_after(1))
    y2 = y.copy()
    y2[1234] += 1.0
    with pytest.raises(CheckpointError, match="different data"):
        MixtureOfLinearRegressions(2, random_state=1).fit(X, y2, checkpoint=folder, resume=True)


def cli(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [sys.executable, "-m", "streammix", "-q", *map(str, args)], env


def test_cli_fit_killed_with_sigkill_resumes_to_the_uninterrupted_result(lake, tmp_path):
    folder, out = tmp_path / "ckpt", tmp_path / "model.json"
    common = [lake, "--target", "y", "--features", "x1,x2", "-k", "2", "--tol", "0",
              "--max-iter", "300", "--seed", "3", "--chunk-rows", "250", "--in-process",
              "--out", out, "--checkpoint", folder]
    argv, env = cli("fit", *common)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((folder / "passes").glob("*.json"))) >= 10:
                break
            time.sleep(0.005)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # an interrupted fit writes no model
    saved = json.loads((folder / "checkpoint.json").read_text())  # intact: written atomically
    assert saved["format"] == "streammix-checkpoint"
    n_saved = len(list((folder / "passes").glob("*.json")))
    assert 10 <= n_saved < 300
    for path in (folder / "passes").glob("*.json"):  # every pass record is whole
        json.loads(path.read_text())
    argv, env = cli("fit", *common, "--resume")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    resumed = MixtureOfLinearRegressions.load(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = MixtureOfLinearRegressions(2, tol=0.0, max_iter=300, random_state=3,
                                               chunk_rows=250).fit(
            ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=250))
    np.testing.assert_allclose(resumed.params_.beta, reference.params_.beta, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(resumed.params_.sigma2, reference.params_.sigma2, rtol=1e-10)
    np.testing.assert_allclose(resumed.params_.weights, reference.params_.weights, rtol=1e-10)
    assert resumed.n_iter_ == reference.n_iter_ and resumed.history_ == reference.history_
    # --resume without --checkpoint is a clear error; so is a changed setting
    argv, env = cli("fit", *[a for a in common if a not in ("--checkpoint", folder)], "--resume")
    bad = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "--resume needs --checkpoint DIR" in bad.stderr
    argv, env = cli("fit", *common, "--resume", "--n-init", "2")
    bad = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "different settings (n_init 1 then, 2 now)" in bad.stderr


def test_other_columns_or_other_data_behind_the_same_plan_are_refused(lake, tmp_path, data):
    """The plan alone does not identify the data: columns read and pass 0 are checked too."""
    folder = tmp_path / "ckpt"
    source = ParquetSource(str(lake), target="y", features=FEATURES, chunk_rows=250)
    with pytest.raises(Interrupt):
        MixtureOfLinearRegressions(2, random_state=0, tol=1e-9).fit(source, checkpoint=folder,
                                                          callback=stop_after(1))
    swapped = ParquetSource(str(lake), target="x2", features=["x1", "y"], chunk_rows=250)
    with pytest.raises(CheckpointError, match="different data.*target 'y' then, 'x2' now"):
        MixtureOfLinearRegressions(2, random_state=0, tol=1e-9).fit(swapped, checkpoint=folder,
                                                          resume=True)
    # In-memory data are hashed; a source whose plan is only numbered is caught by pass 0.
    X, y = data
    folder2 = tmp_path / "ckpt2"
    with pytest.raises(Interrupt):
        MixtureOfLinearRegressions(2, random_state=0, tol=1e-9).fit(X, y, checkpoint=folder2,
                                                          callback=stop_after(1))
    from streammix.algorithms.start.profile import Profile
    from streammix.estimator.checkpoint import Checkpoint, profile_digest
    saver = Checkpoint(folder2, {}, {})
    saver.load = lambda: None  # only the pass-0 check
    saver.profile = json.loads((folder2 / "checkpoint.json").read_text())["profile"]
    other = Profile(10, 10, 10.0, 5, np.zeros(5), np.zeros((5, 2)), np.zeros(5))
    with pytest.raises(CheckpointError, match="different data"):
        saver.check_profile(profile_digest(other))


def test_numpy_and_tuple_hyper_parameters_save_and_resume(data, tmp_path):
    X, y = data
    start = {"weights": np.array([0.5, 0.5]), "intercept": np.array([-1.0, 1.0]),
             "coef": np.array([[1.0, -0.5], [-0.5, 1.0]]), "sigma": (1.0, 1.0)}
    model = MixtureOfLinearRegressions(np.int64(2), noise="fixed", sigma=(1.0, 0.8),
                                       init=start, random_state=np.int64(5), tol=1e-9)
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        model.fit(X, y, checkpoint=folder, callback=stop_after(2))
    resumed = MixtureOfLinearRegressions(np.int64(2), noise="fixed", sigma=(1.0, 0.8),
                                         init=start, random_state=np.int64(5), tol=1e-9)
    resumed.fit(X, y, checkpoint=folder, resume=True)
    reference = MixtureOfLinearRegressions(2, noise="fixed", sigma=[1.0, 0.8], init=start,
                                           random_state=5, tol=1e-9).fit(X, y)
    np.testing.assert_array_equal(resumed.params_.beta, reference.params_.beta)
    resumed.save(tmp_path / "model.json")
    loaded = MixtureOfLinearRegressions.load(tmp_path / "model.json")
    assert loaded.random_state == 5 and loaded.n_components == 2
    assert loaded.params_ == resumed.params_
