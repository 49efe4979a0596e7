"""Checkpoint and resume of fits with concomitant variables (in memory and on a lake).

Each pass record also holds the gate Γ the pass was made at and the gate's
statistics; an interrupted fit resumed from its checkpoint ends with exactly
the parameters and gate of an uninterrupted one.  A checkpoint of other
concomitant variables is refused, and so is a pass record without a gate or
of another number of concomitant variables (naming the file and field).
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.interrupt import Interrupt, run_killed, stop_after

from streammix import MixtureOfLinearRegressions, ParquetSource
from streammix.exceptions import CheckpointError, CorruptCheckpointError


def _data(seed=5, n=800):
    rng = np.random.default_rng(seed)
    Z = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    p2 = 1.0 / (1.0 + np.exp(-(0.2 + 1.2 * Z[:, 0] - 0.8 * Z[:, 1])))
    comp = (rng.random(n) < p2).astype(int)
    x = rng.normal(size=n)
    y = np.where(comp == 1, -1.0 - 0.5 * x, 1.0 + x) + rng.normal(scale=1.0, size=n)
    return x[:, None], y, Z


SETTINGS = dict(random_state=3, tol=1e-7, max_iter=300, n_init=2, chunk_rows=150)


def _fit(X, y=None, Z=None, **kw):
    model = MixtureOfLinearRegressions(2, **SETTINGS)
    if Z is None:
        return model.fit(X, **kw)
    return model.fit(X, y, concomitant=Z, **kw)


def _assert_same(resumed, reference):
    for name in ("coef_", "intercept_", "weights_", "sigma_", "concomitant_coef_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(reference, name))
    assert resumed.loglik_ == reference.loglik_ and resumed.n_iter_ == reference.n_iter_
    assert resumed.concomitant_names_ == reference.concomitant_names_


def test_resumed_concomitant_fit_is_bit_identical(tmp_path):
    X, y, Z = _data()
    calls: list = []
    reference = _fit(X, y, Z, callback=calls.append)
    assert len(calls) > 10  # two runs of several passes
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        _fit(X, y, Z, checkpoint=folder, callback=stop_after(3))
    saved = sorted((folder / "passes").glob("*.json"))
    assert len(saved) == 2  # the two runs share each scan: one record holds both
    gates = json.loads(saved[1].read_text())["gate"]
    assert len(gates) == 2
    gate = gates[0]
    assert np.shape(gate["coef"]) == (2, 3) and np.shape(gate["zz"]) == (3, 3)
    resumed_calls: list = []
    resumed = _fit(X, y, Z, checkpoint=folder, resume=True, callback=resumed_calls.append)
    assert len(resumed_calls) == len(calls) - 2 * len(saved)  # replayed passes stay silent
    _assert_same(resumed, reference)


def test_a_checkpoint_of_other_concomitant_variables_is_refused(tmp_path):
    X, y, Z = _data()
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        _fit(X, y, Z, checkpoint=folder, callback=stop_after(3))
    with pytest.raises(CheckpointError, match="different data"):  # other values of z
        _fit(X, y, Z[:, ::-1].copy(), checkpoint=folder, resume=True)
    with pytest.raises(CheckpointError, match="different data.*concomitant"):  # no gate
        MixtureOfLinearRegressions(2, **SETTINGS).fit(X, y, checkpoint=folder, resume=True)
    with pytest.raises(CheckpointError, match="different data.*concomitant"):  # another q
        _fit(X, y, Z[:, :1].copy(), checkpoint=folder, resume=True)


def test_a_pass_record_without_a_gate_or_of_another_q_is_refused(tmp_path):
    X, y, Z = _data()
    folder = tmp_path / "ckpt"
    with pytest.raises(Interrupt):
        _fit(X, y, Z, checkpoint=folder, callback=stop_after(5))  # 3 scans of 2 runs
    path = folder / "passes" / "000002.json"
    record = json.loads(path.read_text())
    short = dict(record, gate=[dict(record["gate"][0],
                                    coef=[row[:2] for row in record["gate"][0]["coef"]])]
                 + record["gate"][1:])
    path.write_text(json.dumps(short))
    with pytest.raises(CorruptCheckpointError, match=r"000002\.json.*gate\[0\]\.coef") as info:
        _fit(X, y, Z, checkpoint=folder, resume=True)
    assert info.value.field == "gate[0].coef[0]"  # 2 entries, expected 3 (q = 2)
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "gate"}))
    with pytest.raises(CorruptCheckpointError, match=r"000002\.json.*gate"):
        _fit(X, y, Z, checkpoint=folder, resume=True)
    nan = json.loads(json.dumps(record))
    nan["gate"][0]["zz"][0][0] = float("nan")
    path.write_text(json.dumps(nan))
    with pytest.raises(CorruptCheckpointError, match=r"gate\[0\]\.zz.*finite"):
        _fit(X, y, Z, checkpoint=folder, resume=True)


KILLED_FIT = """
import os, signal, sys
from streammix import MixtureOfLinearRegressions, ParquetSource
count = [0]
def callback(record):
    count[0] += 1
    if count[0] > 7:  # 4 scans of the 2 runs
        os.kill(os.getpid(), signal.SIGKILL)
source = ParquetSource(sys.argv[1], target="y", features=["x"], concomitant=["z1", "z2"],
                       chunk_rows=150)
MixtureOfLinearRegressions(2, **eval(sys.argv[3])).fit(source, checkpoint=sys.argv[2],
                                                        callback=callback)
"""


def test_a_concomitant_lake_fit_killed_by_sigkill_resumes_to_the_same_result(tmp_path):
    X, y, Z = _data()
    lake = tmp_path / "lake"
    lake.mkdir()
    for k, rows in enumerate(np.array_split(np.arange(len(y)), 3)):
        pq.write_table(pa.table({"x": X[rows, 0], "y": y[rows], "z1": Z[rows, 0],
                                 "z2": Z[rows, 1]}), lake / f"part-{k}.parquet")
    folder = tmp_path / "ckpt"
    run_killed(KILLED_FIT, lake, folder, repr(SETTINGS))
    assert len(list((folder / "passes").glob("*.json"))) == 4

    def source(names=("z1", "z2")):
        return ParquetSource(lake, target="y", features=["x"], concomitant=list(names),
                             chunk_rows=150)

    resumed = _fit(source(), checkpoint=folder, resume=True)
    _assert_same(resumed, _fit(source()))
    with pytest.raises(CheckpointError, match="different data.*concomitant"):
        _fit(source(["z1"]), checkpoint=folder, resume=True)


def test_a_lake_fit_with_a_gate_formula_resumes_bit_for_bit(tmp_path):
    X, y, Z = _data()
    seg = np.where(Z[:, 1] > 0, "b", "a")
    pq.write_table(pa.table({"x": X[:, 0], "y": y, "z1": Z[:, 0], "seg": seg}),
                   tmp_path / "part-0.parquet")

    def source(formula="~ z1 + C(seg)"):
        return ParquetSource(tmp_path, target="y", features=["x"], concomitant=formula,
                             chunk_rows=150)

    folder = tmp_path.parent / f"{tmp_path.name}-ckpt"
    with pytest.raises(Interrupt):
        _fit(source(), checkpoint=folder, callback=stop_after(3))
    resumed = _fit(source(), checkpoint=folder, resume=True)
    _assert_same(resumed, _fit(source()))
    assert resumed.concomitant_names_ == ["z1", "C(seg)[T.b]"]
    with pytest.raises(CheckpointError, match="different data.*concomitant"):
        _fit(source("~ z1"), checkpoint=folder, resume=True)
