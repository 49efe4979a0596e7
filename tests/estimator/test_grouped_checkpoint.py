"""Checkpoint and resume of fits with grouped classes (in memory and on a grouped lake).

An interrupted fit resumed from its checkpoint ends with exactly the
parameters of an uninterrupted one (the saved passes, with each pass's
Σ_g γ_gj and group count, are replayed without reading the data); a
checkpoint of other group labels is refused.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.interrupt import Interrupt, run_killed, stop_after

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.exceptions import CheckpointError


def _frame(seed=5, n_groups=150) -> pd.DataFrame:
    """Small groups, noisy lines: posteriors far from 0/1, so EM takes many passes."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_groups), rng.integers(2, 5, n_groups))
    cls = rng.integers(0, 2, n_groups)[ids]
    x = rng.uniform(0, 4, ids.size)
    y = np.where(cls == 0, 1 + 0.8 * x, 2.5 - 0.2 * x) + rng.normal(0, 1.0, ids.size)
    return pd.DataFrame({"id": ids, "x": x, "y": y}).sample(frac=1.0, random_state=1)


SETTINGS = dict(random_state=3, tol=1e-4, max_iter=400, n_init=2, chunk_rows=100)


def _fit(data, **kw):
    model = MixtureOfLinearRegressions(2, **SETTINGS)
    if isinstance(data, pd.DataFrame):
        return model.fit(data[["x"]].to_numpy(), data.y.to_numpy(), groups=data.id.to_numpy(),
                         **kw)
    return model.fit(data, **kw)


def _assert_same(resumed, reference):
    np.testing.assert_array_equal(resumed.coef_, reference.coef_)
    np.testing.assert_array_equal(resumed.intercept_, reference.intercept_)
    np.testing.assert_array_equal(resumed.weights_, reference.weights_)
    np.testing.assert_array_equal(resumed.sigma_, reference.sigma_)
    assert resumed.loglik_ == reference.loglik_ and resumed.n_groups_ == 150


def test_resumed_grouped_fit_is_bit_identical(tmp_path):
    df = _frame()
    calls: list = []
    reference = _fit(df, callback=calls.append)
    assert len(calls) > 20  # two runs of many passes
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        _fit(df, checkpoint=folder, callback=stop_after(len(calls) // 2))
    saved = sorted((folder / "passes").glob("*.json"))
    assert len(saved) == len(calls) // 2 + 1
    assert json.loads(saved[0].read_text())["groups"][0]["n_groups"] == 150
    resumed_calls: list = []
    resumed = _fit(df, checkpoint=folder, resume=True, callback=resumed_calls.append)
    assert len(resumed_calls) == len(calls) - len(saved)  # replayed passes stay silent
    _assert_same(resumed, reference)


KILLED_FIT = """
import os, signal, sys
from streammix import MixtureOfLinearRegressions, ParquetSource
count = [0]
def callback(record):
    count[0] += 1
    if count[0] > 15:
        os.kill(os.getpid(), signal.SIGKILL)
source = ParquetSource(sys.argv[1], target="y", features=["x"], groups="id", chunk_rows=100,
                       max_task_rows=10_000)
MixtureOfLinearRegressions(2, **eval(sys.argv[3])).fit(source, checkpoint=sys.argv[2],
                                                        callback=callback)
"""


def test_a_grouped_lake_fit_killed_by_sigkill_resumes_to_the_same_result(tmp_path):
    df = _frame()
    lake = tmp_path / "lake"
    lake.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
        pq.write_table(pa.Table.from_pandas(df.iloc[part], preserve_index=False),
                       lake / f"part-{i}.parquet", row_group_size=60)
    folder = tmp_path / "ckpt"
    run_killed(KILLED_FIT, lake, folder, repr(SETTINGS))
    assert len(list((folder / "passes").glob("*.json"))) == 16

    def source():
        return ParquetSource(lake, target="y", features=["x"], groups="id", chunk_rows=100,
                             max_task_rows=10_000)

    resumed = _fit(source(), checkpoint=folder, resume=True)
    _assert_same(resumed, _fit(source()))


def test_a_checkpoint_of_other_groups_is_refused(tmp_path):
    df = _frame()
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        _fit(df, checkpoint=folder, callback=stop_after(3))
    other = df.assign(id=df.id // 2)  # the same rows, other groups
    with pytest.raises(CheckpointError, match="different data"):
        _fit(other, checkpoint=folder, resume=True)
