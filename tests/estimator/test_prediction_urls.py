"""Predictions written to an fsspec URL (s3:// on a moto server on 127.0.0.1), all or nothing."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture
from support.servers import moto_endpoint

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource
from streammix.estimator.destination import CLAIM, SUCCESS
from streammix.estimator.prediction import write_predictions

KEY, SECRET = "testing-key-id", "testing-secret-value"
BUCKET = "pred-test"
FILES = ["region=eu/part-0.parquet", "region=eu/part-1.parquet", "region=us/part-0.parquet"]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server, storage options that reach it, and an s3fs file system on it."""
    import s3fs
    with pytest.MonkeyPatch.context() as mp, moto_endpoint() as url:
        mp.setenv("AWS_ACCESS_KEY_ID", KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        options = {"client_kwargs": {"endpoint_url": url}}
        fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, skip_instance_cache=True, **options)
        fs.mkdir(BUCKET)
        yield options, fs


@pytest.fixture(scope="module")
def lake(s3, tmp_path_factory):
    """A hive lake of three files (row groups of 300), locally and at s3://pred-test/lake."""
    options, fs = s3
    X, y, _ = make_mixture(1800, [0.6, 0.4], [-3.0, 3.0], [[2.0, -1.0], [-1.0, 0.5]],
                           [1.0, 0.7], seed=4)
    local = tmp_path_factory.mktemp("urls") / "lake"
    for k, name in enumerate(FILES):
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        rows = slice(600 * k, 600 * (k + 1))
        pq.write_table(pa.table({"x1": X[rows, 0], "x2": X[rows, 1], "y": y[rows]}),
                       local / name, row_group_size=300)
    fs.put(str(local), f"{BUCKET}/lake", recursive=True)
    model = MixtureOfLinearRegressions(2, random_state=0).fit(
        ParquetSource(local, target="y", features=["x1", "x2"]))
    return local, f"s3://{BUCKET}/lake", model


def objects(fs, prefix: str = BUCKET) -> list[str]:
    fs.invalidate_cache()
    return sorted(fs.find(prefix))


def test_predictions_at_a_url_are_the_local_files_byte_for_byte(s3, lake, tmp_path):
    options, fs = s3
    local, url, model = lake
    here = write_predictions(model, ParquetSource(local, target="y", features=["x1", "x2"],
                                                  chunk_rows=300), tmp_path / "pred")
    source = ParquetSource(url, target="y", features=["x1", "x2"], chunk_rows=300,
                           storage_options=options)
    there = write_predictions(model, source, f"s3://{BUCKET}/out/pred")  # the source's options
    assert there.files == here.files == tuple(FILES) and there.n_rows == 1800
    assert there.out_dir == f"s3://{BUCKET}/out/pred"
    assert objects(fs, f"{BUCKET}/out") == sorted(
        [f"{BUCKET}/out/pred/{name}" for name in FILES] + [f"{BUCKET}/out/pred/{SUCCESS}"])
    for name in FILES:
        assert fs.cat_file(f"{BUCKET}/out/pred/{name}") == (tmp_path / "pred" / name).read_bytes()
    # a local source, an s3 output with its own options: the same bytes again
    write_predictions(model, ParquetSource(local, target="y", features=["x1", "x2"],
                                           chunk_rows=300),
                      f"s3://{BUCKET}/out/pred2", storage_options=options)
    name = FILES[2]
    table = pq.read_table(f"{BUCKET}/out/pred2/{name}", filesystem=fs)
    assert table.equals(pq.read_table(tmp_path / "pred" / name))
    assert not [p for p in objects(fs) if ".tmp" in p or p.endswith(CLAIM)]


def test_an_existing_destination_is_refused_before_any_work(s3, lake):
    options, fs = s3
    local, url, model = lake
    fs.pipe_file(f"{BUCKET}/taken/mine.txt", b"mine")
    source = ParquetSource(url, target="y", features=["x1", "x2"], storage_options=options)
    reads = []
    read = source.read
    source.read = lambda piece: reads.append(piece) or read(piece)
    before = objects(fs)
    with pytest.raises(FileExistsError, match=rf"s3://{BUCKET}/taken already exists"):
        write_predictions(model, source, f"s3://{BUCKET}/taken")
    assert reads == [] and objects(fs) == before
    assert fs.cat_file(f"{BUCKET}/taken/mine.txt") == b"mine"
    summary = write_predictions(model, source, f"s3://{BUCKET}/taken", overwrite=True)
    assert summary.n_rows == 1800
    assert objects(fs, f"{BUCKET}/taken") == sorted(
        [f"{BUCKET}/taken/{name}" for name in FILES] + [f"{BUCKET}/taken/{SUCCESS}"])


def test_a_destination_that_appears_meanwhile_is_left_alone(s3, lake):
    """Another writer makes the destination while the predictions are written: error."""
    options, fs = s3
    local, url, model = lake
    source = ParquetSource(url, target="y", features=["x1", "x2"], storage_options=options)
    read, last = source.read, source.plan()[-1]

    def read_and_race(piece):
        if piece == last:
            fs.pipe_file(f"{BUCKET}/raced/other.parquet", b"another run's")
        return read(piece)

    source.read = read_and_race
    with pytest.raises(FileExistsError, match="appeared while these predictions were written"):
        write_predictions(model, source, f"s3://{BUCKET}/raced")
    assert objects(fs, f"{BUCKET}/raced") == [f"{BUCKET}/raced/other.parquet"]
    assert fs.cat_file(f"{BUCKET}/raced/other.parquet") == b"another run's"
    assert not [p for p in objects(fs) if ".tmp" in p or p.endswith(CLAIM)]


def test_a_claim_held_by_another_run_is_not_taken(s3, lake, monkeypatch):
    """Two runs pass the last check together: the exclusive claim lets one through."""
    from streammix.estimator.destination import URLDestination

    options, fs = s3
    local, url, model = lake
    monkeypatch.setattr(URLDestination, "_exists", lambda self: False)
    fs.pipe_file(f"{BUCKET}/claimed/{CLAIM}", b"the other run")
    source = ParquetSource(url, target="y", features=["x1", "x2"], storage_options=options)
    with pytest.raises(FileExistsError, match="appeared while"):
        write_predictions(model, source, f"s3://{BUCKET}/claimed")
    assert objects(fs, f"{BUCKET}/claimed") == [f"{BUCKET}/claimed/{CLAIM}"]
    assert fs.cat_file(f"{BUCKET}/claimed/{CLAIM}") == b"the other run"


def test_a_failure_mid_write_leaves_nothing_at_the_destination(s3, lake, tmp_path,
                                                               monkeypatch):
    options, fs = s3
    _, _, model = lake
    bad = tmp_path / "bad"
    bad.mkdir()
    rng = np.random.default_rng(1)
    for k in range(3):
        cols = {n: rng.normal(size=500) for n in ("x1", "x2", "y")}
        if k == 2:
            cols["x1"][450] = np.nan  # the last chunk of the last file: two files are written
        pq.write_table(pa.table(cols), bad / f"part-{k}.parquet", row_group_size=250)
    fs.put(str(bad), f"{BUCKET}/bad", recursive=True)
    source = ParquetSource(f"s3://{BUCKET}/bad", target="y", features=["x1", "x2"],
                           storage_options=options, chunk_rows=250)
    before = objects(fs)
    with pytest.raises(DataError, match=r"s3://pred-test/bad/part-2\.parquet: column 'x1' has "
                                        r"1 NaN value, first at row 450"):
        write_predictions(model, source, f"s3://{BUCKET}/badpred")
    assert objects(fs) == before
    # an error while copying into place (the third file): what was copied is removed
    good = ParquetSource(f"s3://{BUCKET}/lake", target="y", features=["x1", "x2"],
                         storage_options=options)
    copy, calls = type(fs)._cp_file, []

    async def failing_copy(self, path1, path2, **kwargs):  # s3fs's server-side copy
        calls.append(path2)
        if len(calls) == 3:
            raise OSError("injected: connection reset")
        return await copy(self, path1, path2, **kwargs)

    monkeypatch.setattr(type(fs), "_cp_file", failing_copy)
    with pytest.raises(OSError, match=r"cannot copy the predictions into s3://pred-test/copied: "
                                      r"injected: connection reset; nothing was left there"):
        write_predictions(model, good, f"s3://{BUCKET}/copied")
    assert len(calls) == 3
    assert objects(fs) == before


def test_what_killed_runs_left_is_removed_or_named(s3, lake, caplog):
    """A temporary prefix of a dead process of this host goes; a live one's stays; a
    destination a killed run was copying into is refused, saying so."""
    import socket
    import subprocess

    from streammix.atomic import temporary_prefix

    options, fs = s3
    _, url, model = lake
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid  # reaped: its pid names no process
    host = temporary_prefix("x").split("@", 1)[1].rstrip(".")
    assert host and host[0] == socket.gethostname()[0]  # this host, as atomic names it
    stale = f"{BUCKET}/.stale.{dead}@{host}.ab12cd34.tmp"
    alive = f"{BUCKET}/.stale.{os.getpid()}@{host}.ef56ab78.tmp"
    other = f"{BUCKET}/.stale.{dead}@another-host.ab12cd34.tmp"
    for prefix in (stale, alive, other):
        fs.pipe_file(f"{prefix}/region=eu/part-0.parquet", b"partial")
    source = ParquetSource(url, target="y", features=["x1", "x2"], storage_options=options)
    with caplog.at_level("INFO", logger="streammix"):
        write_predictions(model, source, f"s3://{BUCKET}/stale")
    assert f"removed s3://{stale}, a temporary prefix left by a run that was killed" in \
        caplog.text
    left = objects(fs)
    assert not [p for p in left if p.startswith(stale + "/")]
    assert [p for p in left if p.startswith(alive + "/")] and \
        [p for p in left if p.startswith(other + "/")]
    fs.pipe_file(f"{BUCKET}/halfway/{CLAIM}", b"killed")
    fs.pipe_file(f"{BUCKET}/halfway/region=eu/part-0.parquet", b"copied")
    with pytest.raises(FileExistsError, match=rf"s3://{BUCKET}/halfway already exists \(it "
                                              rf"holds {CLAIM} and no _SUCCESS: a run copying "
                                              r"predictions into it was interrupted\)"):
        write_predictions(model, source, f"s3://{BUCKET}/halfway")
    assert write_predictions(model, source, f"s3://{BUCKET}/halfway",
                             overwrite=True).n_rows == 1800
    assert f"{BUCKET}/halfway/{SUCCESS}" in objects(fs, f"{BUCKET}/halfway")
    assert f"{BUCKET}/halfway/{CLAIM}" not in objects(fs, f"{BUCKET}/halfway")


def test_an_output_inside_or_holding_the_input_url_is_refused(s3, lake):
    options, fs = s3
    _, url, model = lake
    source = ParquetSource(url, target="y", features=["x1", "x2"], storage_options=options)
    before = objects(fs)
    with pytest.raises(ValueError, match=rf"--out {url}/pred is inside the input {url}"):
        write_predictions(model, source, f"{url}/pred")
    with pytest.raises(ValueError, match=rf"--out {url}/region=eu/part-0.parquet/x is inside"):
        write_predictions(model, source, f"{url}/region=eu/part-0.parquet/x")
    eu = ParquetSource(f"{url}/region=eu", target="y", features=["x1", "x2"],
                       storage_options=options)
    with pytest.raises(ValueError, match=rf"--out {url} holds the input {url}/region=eu"):
        write_predictions(model, eu, url, overwrite=True)
    assert objects(fs) == before
    # a sibling whose name starts like the lake's is not inside it
    assert write_predictions(model, source, f"{url}-pred").n_rows == 1800


def test_cli_predict_to_s3_and_credentials_in_the_url_stay_hidden(s3, lake, tmp_path, capsys,
                                                                    monkeypatch):
    """The program writes to the URL (not to a local s3:/... folder); its errors mask secrets.

    Run in this process (``main``): a subprocess's start costs seconds; the tests of
    tests/cli run the program as a subprocess on S3 already.
    """
    from streammix.cli.main import main

    options, fs = s3
    local, url, model = lake
    model_path = tmp_path / "model.json"
    model.save(model_path)
    common = ["predict", str(model_path), url, "--target", "y", "--storage-options",
              json.dumps(options)]
    monkeypatch.chdir(tmp_path)
    assert main([*common, "--out", f"s3://{BUCKET}/cli/pred"]) == 0
    assert f"to s3://{BUCKET}/cli/pred" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["model.json"]  # no local s3:/... folder
    local_out = write_predictions(model, ParquetSource(local, target="y",
                                                       features=["x1", "x2"]), tmp_path / "p")
    for name in local_out.files:
        assert fs.cat_file(f"{BUCKET}/cli/pred/{name}") == (tmp_path / "p" / name).read_bytes()
    assert main([*common, "--out", f"s3://{BUCKET}/cli/pred"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"streammix predict: error: s3://{BUCKET}/cli/pred already exists; remove it or pass "
        "--overwrite")
    assert main([*common, "--out", f"{url}/pred?token=SECRET-TOKEN", "-v"]) == 1
    err = capsys.readouterr().err
    assert "SECRET-TOKEN" not in err
    assert f"--out {url}/pred?token=*** is inside the input" in err


def test_file_urls_are_local_folders_with_the_local_guards(lake, tmp_path):
    local, _, model = lake
    source = ParquetSource(local, target="y", features=["x1", "x2"])
    with pytest.raises(ValueError, match="is inside the input"):
        write_predictions(model, source, f"file://{local}/pred")
    summary = write_predictions(model, source, f"file://{tmp_path}/pred")
    assert summary.out_dir == tmp_path / "pred"
    assert sorted(str(p.relative_to(tmp_path / "pred")) for p in (tmp_path / "pred").rglob(
        "*.parquet")) == FILES
    assert os.listdir(tmp_path) == ["pred"]
