"""Corrupt or edited checkpoints and stream state files get a clear error naming file and field.

The files are real: written by ``streammix fit --checkpoint`` and ``streammix
stream`` subprocesses, then edited the way a disk fault, a bad copy or an
attacker would.  Each edit used to give a ``KeyError``, ``TypeError``,
``IndexError``, a ``zip()`` message or an ``AttributeError`` (or, for an
``s0`` of 3,000,000 entries, a wrong 1-component model); now ``--resume``
exits 1 with one line naming the file and the field, writes no model, and
leaves the checkpoint as it was.  A random generator's name read from a file
is taken from an allow-list, never looked up in ``numpy.random``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ROOT
from support.mixtures import make_mixture

from streammix import (
    CheckpointError,
    CorruptCheckpointError,
    InProcessEngine,
    MixtureOfLinearRegressions,
    ParquetSource,
    RecordError,
)
from streammix.estimator.streaming import load_checkpoint

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*args, stdin=None):
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as fh:
        return subprocess.run([sys.executable, "-m", "streammix", *map(str, args)], stdin=fh,
                              env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A lake and the checkpoint of a finished ``streammix fit --checkpoint`` run."""
    root = tmp_path_factory.mktemp("corrupt_fit")
    X, y, _ = make_mixture(600, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5], seed=8)
    lake = root / "lake"
    lake.mkdir()
    pq.write_table(pa.table({"x": X[:, 0], "y": y}), str(lake / "part-0.parquet"),
                   row_group_size=200)
    ck, out = root / "ck", root / "model.json"
    args = ["fit", lake, "--target", "y", "--features", "x", "-k", "2", "--seed", "0",
            "--max-iter", "5", "--tol", "0", "--in-process", "--checkpoint", ck, "--out", out]
    run = _cli(*args)
    assert run.returncode == 0, run.stderr
    passes = sorted((ck / "passes").glob("*.json"))
    assert len(passes) >= 3
    return {"args": [str(a) for a in args], "ck": ck, "out": out, "lake": lake,
            "passes": {p.name: p.read_text() for p in passes},
            "header": (ck / "checkpoint.json").read_text()}


def _restore(fitted) -> None:
    ck = fitted["ck"]
    for name, text in fitted["passes"].items():
        (ck / "passes" / name).write_text(text)
    (ck / "checkpoint.json").write_text(fitted["header"])


def _edit_pass(entry, edit):
    kind, *rest = edit
    if kind == "s0_huge":
        entry["stats"][0]["s0"] = [1.0] * 3_000_000
    elif kind == "drop":
        del entry[rest[0]]
    elif kind == "params_dict":
        entry["params"] = {"weights": [1.0]}
    elif kind == "fewer_stats":
        entry["stats"] = []
    elif kind == "nan_beta":
        entry["params"][0]["beta"][0][0] = float("nan")
    elif kind == "string_s2":
        entry["stats"][0]["s2"][0][0][0] = "1.0"
    elif kind == "extra_key":
        entry["stats"][0]["s3"] = [0.0]
    elif kind == "ragged_rx":
        entry["stats"][0]["rx"][1] = [1.0]
    return entry


PASS_EDITS = [
    (("s0_huge",), "field 'stats[0].s0': has 3000000 entries, expected 2"),
    (("drop", "params"), "field 'params': is missing"),
    (("params_dict",), "field 'params': expected a list, got dict"),
    (("fewer_stats",), "field 'stats': has 0 entries, expected 1"),
    (("nan_beta",), "field 'params[0].beta': must be finite, has nan at (0, 0)"),
    (("string_s2",), "field 'stats[0].s2[0][0][0]': expected a number, got '1.0'"),
    (("extra_key",), "field 'stats[0].s3': is not a known field"),
    (("ragged_rx",), "field 'stats[0].rx[1]': has 1 entries, expected 2"),
]


def test_a_corrupt_pass_file_is_refused_naming_file_and_field_by_the_program(fitted, tmp_path):
    """Subprocesses: the 3,000,000-entry ``s0`` and a missing key, with ``--resume``."""
    out = tmp_path / "never.json"
    args = [a if a != str(fitted["out"]) else str(out) for a in fitted["args"]]
    for edit, message in PASS_EDITS[:2]:
        _restore(fitted)
        path = fitted["ck"] / "passes" / "000001.json"
        path.write_text(json.dumps(_edit_pass(json.loads(path.read_text()), edit)))
        before = {p: p.read_bytes() for p in fitted["ck"].rglob("*.json")}
        run = _cli(*args, "--resume")
        assert run.returncode == 1, run.stderr
        line = run.stderr.strip().splitlines()[-1]
        assert line.startswith(f"streammix fit: error: {path}: {message}"), line
        assert "corrupt or was edited" in line and "Traceback" not in run.stderr
        assert not out.exists()  # no model from a wrong replay
        assert {p: p.read_bytes() for p in fitted["ck"].rglob("*.json")} == before
    _restore(fitted)
    assert _cli(*args, "--resume").returncode == 0  # the intact checkpoint resumes


@pytest.mark.parametrize("edit, message", PASS_EDITS, ids=[e[0][0] for e in PASS_EDITS])
def test_every_kind_of_corrupt_pass_file_names_its_field(fitted, edit, message):
    _restore(fitted)
    path = fitted["ck"] / "passes" / "000002.json"
    path.write_text(json.dumps(_edit_pass(json.loads(path.read_text()), edit)))
    source = ParquetSource(str(fitted["lake"]), target="y", features=["x"])
    model = MixtureOfLinearRegressions(2, random_state=0, max_iter=5, tol=0.0, chunk_rows=131_072,
                                       engine=InProcessEngine())
    with pytest.raises(CorruptCheckpointError) as info:
        model.fit(source, checkpoint=fitted["ck"], resume=True)
    assert str(info.value).startswith(f"{path}: {message}")
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, RecordError)
    assert info.value.file == str(path) and info.value.field
    assert not hasattr(model, "params_")
    _restore(fitted)


@pytest.mark.parametrize("edit, message", [
    ({"seed": "abc"}, "field 'seed': expected an integer, got 'abc'"),
    ({"seed": None}, "field 'seed': expected an integer, got None"),
    ({"data": []}, "field 'data': expected an object, got list"),
    ({"extra": 1}, "field 'extra': is not a known field"),
    ({"data": {"files": [["x"]]}}, "field 'data.files': expected an object, got list"),
    ({"data": {"files": {"a": ["big", 1.0]}}},
     "field \"data.files['a']\": the size must be an integer or null"),
])
def test_a_corrupt_checkpoint_header_names_its_field(fitted, edit, message):
    _restore(fitted)
    header = fitted["ck"] / "checkpoint.json"
    record = json.loads(fitted["header"])
    if "data" in edit and isinstance(edit["data"], dict):
        edit = {"data": {**record["data"], **edit["data"]}}
    header.write_text(json.dumps({**record, **edit}))
    source = ParquetSource(str(fitted["lake"]), target="y", features=["x"])
    model = MixtureOfLinearRegressions(2, random_state=0, max_iter=5, tol=0.0, chunk_rows=131_072,
                                       engine=InProcessEngine())
    with pytest.raises(CorruptCheckpointError, match="^" + str(header).replace(".", r"\.")):
        model.fit(source, checkpoint=fitted["ck"], resume=True)
    with pytest.raises(CorruptCheckpointError) as info:
        model.fit(source, checkpoint=fitted["ck"], resume=True)
    assert message in str(info.value)
    _restore(fitted)


# ------------------------------------------------------------------ stream state files
@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """The checkpoint of a real ``streammix stream`` run over an Arrow stream on stdin."""
    root = tmp_path_factory.mktemp("corrupt_stream")
    X, y, _ = make_mixture(600, [0.6, 0.4], [-3.0, 3.0], [[2.0], [-1.0]], [1.0, 0.7], seed=2)
    table = pa.table({"a": X[:, 0], "y": y})
    arrows = root / "a.arrows"
    with pa.OSFile(str(arrows), "wb") as fh, pa.ipc.new_stream(fh, table.schema) as writer:
        for k in range(3):
            writer.write_table(table.slice(200 * k, 200))
    ck = root / "ck"
    run = _cli("stream", "-", "--target", "y", "--components", "2", "--checkpoint", ck,
               stdin=arrows)
    assert run.returncode == 0, run.stderr
    return {"ck": ck, "arrows": arrows, "state": (ck / "state.json").read_text()}


def _edit_state(record, edit):
    state = record["state"]
    if edit == "bit_generator":
        state["rng"]["bit_generator"] = "default_rng"  # getattr(np.random, ...)() would run
    elif edit == "rng_state":
        state["rng"]["state"] = {"state": "x", "inc": 1}
    elif edit == "extra_beta_column":
        state["params"]["beta"] = [row + [0.0] for row in state["params"]["beta"]]
    elif edit == "ledger_next":
        next(iter(state["ledger"].values()))["next"] = "ten"
    elif edit == "history_dict":
        state["history"][0]["loglik"] = {"a": 1}
    elif edit == "totals":
        del state["totals"]["sum_w"]
    elif edit == "model_noise":
        record["model"]["hyperparameters"]["noise"] = "bogus"
    elif edit == "components":
        record["model"]["hyperparameters"]["n_components"] = 3
    elif edit == "state_list":
        record["state"] = []
    return record


STATE_EDITS = [
    ("bit_generator", "field 'state.rng.bit_generator': must be one of ['MT19937', 'PCG64', "
                      "'PCG64DXSM', 'Philox', 'SFC64'], got 'default_rng'"),
    ("rng_state", "field 'state.rng.state': not a state of PCG64"),
    ("extra_beta_column", "field 'state.stats.center[0]': has 2 entries, expected 3"),
    ("ledger_next", "field \"state.ledger['arrow:"),
    ("history_dict", "field 'state.history[0].loglik': expected a number"),
    ("totals", "field 'state.totals.sum_w': is missing"),
    ("model_noise", "field 'model.hyperparameters.noise': noise must be one of"),
    ("components", "field 'state.params': has 2 components, the model's n_components is 3"),
    ("state_list", "field 'state'"),
]


def test_a_corrupt_stream_state_is_refused_by_the_program(streamed):
    state = streamed["ck"] / "state.json"
    for edit, message in STATE_EDITS[:1]:
        state.write_text(json.dumps(_edit_state(json.loads(streamed["state"]), edit)))
        before = state.read_bytes()
        run = _cli("stream", "-", "--target", "y", "--checkpoint", streamed["ck"],
                   stdin=streamed["arrows"])
        assert run.returncode == 1, run.stderr
        assert f"{state}: {message}" in run.stderr and "Traceback" not in run.stderr
        assert state.read_bytes() == before
    state.write_text(streamed["state"])


@pytest.mark.parametrize("edit, message", STATE_EDITS, ids=[e for e, _ in STATE_EDITS])
def test_every_kind_of_corrupt_stream_state_names_its_field(streamed, edit, message,
                                                           monkeypatch):
    state = streamed["ck"] / "state.json"
    state.write_text(json.dumps(_edit_state(json.loads(streamed["state"]), edit)))
    looked_up = []  # getattr(np.random, "default_rng")() on the file's name would call this
    try:
        with monkeypatch.context() as mp, pytest.raises(CorruptCheckpointError) as info:
            mp.setattr(np.random, "default_rng", lambda *a: looked_up.append(a))
            load_checkpoint(streamed["ck"])
    finally:
        state.write_text(streamed["state"])
    assert str(info.value).startswith(f"{state}: {message}"), str(info.value)
    assert info.value.field and info.value.file == str(state)
    assert looked_up == []  # a name read from the file was never looked up
    model, _ = load_checkpoint(streamed["ck"])  # the intact state loads
    assert model.online_.n_rows == 600


def test_a_checkpoint_that_is_not_json_or_not_an_object(streamed, fitted):
    state = streamed["ck"] / "state.json"
    try:
        state.write_bytes(b"\xff\xfe not json")
        with pytest.raises(CorruptCheckpointError, match="not a valid checkpoint"):
            load_checkpoint(streamed["ck"])
        state.write_text("[1, 2]")
        with pytest.raises(CorruptCheckpointError, match="not a streammix stream checkpoint"):
            load_checkpoint(streamed["ck"])
    finally:
        state.write_text(streamed["state"])
    _restore(fitted)
    path = fitted["ck"] / "passes" / "000000.json"
    path.write_text("[]")
    with pytest.raises(CorruptCheckpointError, match="field '\\(top level\\)': expected an"):
        _resume(fitted)
    _restore(fitted)


def _resume(fitted):
    source = ParquetSource(str(fitted["lake"]), target="y", features=["x"])
    MixtureOfLinearRegressions(2, random_state=0, max_iter=5, tol=0.0, chunk_rows=131_072,
                               engine=InProcessEngine()).fit(
        source, checkpoint=fitted["ck"], resume=True)
