"""Smoke tests: every example runs and recovers the true mixing weights."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from support import ROOT

EXAMPLES = ["lake_s3.py", "dask_dataframe.py"]  # lake_local_cluster.py: below


def weights_line(stdout: str, label: str) -> np.ndarray:
    lines = [line for line in stdout.splitlines() if line.startswith(label)]
    assert len(lines) == 1, stdout
    return np.array([float(v) for v in lines[0][len(label):].split()])


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_recovers_the_weights(name, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    true = weights_line(proc.stdout, "true weights:")
    fitted = weights_line(proc.stdout, "fitted weights:")
    np.testing.assert_allclose(true, [0.5, 0.3, 0.2])
    np.testing.assert_allclose(fitted, true, atol=0.015)
    assert "Mixture of 3 linear regressions" in proc.stdout
    assert list(tmp_path.iterdir()) == []  # temporary lakes are cleaned up


def test_lake_local_cluster_example_and_the_program_on_its_lake(tmp_path):
    """README: the example fits on a local cluster; the program fits the lake it kept."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    lake = tmp_path / "lake"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "lake_local_cluster.py"),
                           "--lake", str(lake)], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(lake.glob("part-*.parquet"))) == 8
    assert "Dask cluster: tcp://127.0.0.1:" in proc.stdout and ", 2 workers" in proc.stdout
    example = weights_line(proc.stdout, "fitted weights:")
    np.testing.assert_allclose(example, [0.5, 0.3, 0.2], atol=0.015)
    proc = subprocess.run([sys.executable, "-m", "streammix", "fit", str(lake), "--target", "y",
                           "--features", "x1,x2", "-k", "3", "--seed", "0", "--in-process",
                           "--chunk-rows", "6250", "--init-sample-size", "20000",
                           "--out", str(tmp_path / "model.json")],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from streammix import MixtureOfLinearRegressions
    model = MixtureOfLinearRegressions.load(tmp_path / "model.json")
    np.testing.assert_allclose(model.weights_, example, atol=5e-5)  # printed with 4 digits
