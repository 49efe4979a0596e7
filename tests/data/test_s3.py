"""ParquetSource over s3:// (s3fs) against a moto S3 server on 127.0.0.1."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.mixtures import make_mixture
from support.servers import moto_endpoint

from streammix import DaskEngine, DataError, MixtureOfLinearRegressions, ParquetSource

FEATURES = ["x1", "x2"]
KEY, SECRET = "testing-key-id", "testing-secret-value"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server and storage options that reach it (dummy credentials)."""
    with pytest.MonkeyPatch.context() as mp, moto_endpoint() as url:
        mp.setenv("AWS_ACCESS_KEY_ID", KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        mp.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        yield {"key": KEY, "secret": SECRET,
               "client_kwargs": {"endpoint_url": url, "region_name": "eu-west-1"}}


@pytest.fixture(scope="module")
def lakes(s3, tmp_path_factory):
    """The same hive-partitioned lake in a local folder and in a bucket."""
    import s3fs
    X, y, _ = make_mixture(2400, [0.5, 0.5], [-2.0, 2.0], [[1.0, -1.0], [-1.0, 1.0]],
                           [0.5, 0.8], seed=21)
    local = tmp_path_factory.mktemp("s3src") / "lake"
    for k, region in enumerate(["eu", "us", "asia"]):
        folder = local / f"region={region}"
        folder.mkdir(parents=True)
        sl = slice(800 * k, 800 * (k + 1))
        for part in range(2):
            rows = np.arange(sl.start, sl.stop)[part::2]
            pq.write_table(pa.table({"x1": X[rows, 0], "x2": X[rows, 1], "y": y[rows],
                                     "year": np.full(rows.size, 2020 + part)}),
                           str(folder / f"part-{part}.parquet"), row_group_size=150)
    fs = s3fs.S3FileSystem(**s3, skip_instance_cache=True)
    fs.mkdir("streammix-test")
    fs.put(str(local), "streammix-test/lake", recursive=True)
    assert len(fs.find("streammix-test/lake")) == 6
    return str(local), "s3://streammix-test/lake"


def fit(source, engine=None):
    return MixtureOfLinearRegressions(2, random_state=0, tol=1e-3, engine=engine).fit(source)


def test_s3_fit_equals_local_fit(s3, lakes):
    local, url = lakes
    here = ParquetSource(local, target="y", features=FEATURES + ["year"], chunk_rows=300)
    there = ParquetSource(url, target="y", features=FEATURES + ["year"], chunk_rows=300,
                          storage_options=s3)
    assert there.partition_names == ("region",) and there.n_files == 6
    assert [p.first_row for p in there.plan()] == [p.first_row for p in here.plan()]
    a, b = fit(here), fit(there)
    np.testing.assert_array_equal(a.params_.beta, b.params_.beta)
    np.testing.assert_array_equal(a.params_.sigma2, b.params_.sigma2)
    assert a.loglik_ == b.loglik_ and b.n_rows_ == 2400


def test_s3_filters_and_workers_reading_the_bucket(s3, lakes):
    from distributed import Client, LocalCluster
    local, url = lakes
    flt = [("region", "in", {"eu", "asia"}), ("year", "==", 2021)]
    here = ParquetSource(local, target="y", features=FEATURES, filters=flt)
    there = ParquetSource(url + "/", target="y", features=FEATURES, filters=flt,
                          storage_options=s3)
    assert len(there.plan()) == 2 and {p.partition for p in there.plan()} == {
        (("region", "eu"),), (("region", "asia"),)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        on_workers = fit(there, DaskEngine(client))
    in_process = fit(here)
    np.testing.assert_array_equal(on_workers.params_.beta, in_process.params_.beta)
    assert on_workers.n_rows_ == 800


def test_s3_errors_are_clear_and_secrets_stay_hidden(s3, lakes):
    _, url = lakes
    with pytest.raises(DataError, match=r"s3://streammix-test/nope does not exist"):
        ParquetSource("s3://streammix-test/nope", target="y", features=FEATURES,
                      storage_options=s3)
    with pytest.raises(DataError, match=r"s3://no-such-bucket-here/lake"):
        ParquetSource("s3://no-such-bucket-here/lake", target="y", features=FEATURES,
                      storage_options=s3)
    with pytest.raises(DataError, match=r"s3://streammix-test/lake/region=asia/part-0\.parquet: "
                                        r"column 'x9' is missing"):
        ParquetSource(url, target="y", features=["x1", "x9"], storage_options=s3)
    src = ParquetSource(url, target="y", features=FEATURES, storage_options=s3)
    for text in (repr(src), src.describe()):
        assert SECRET not in text and KEY not in text
    assert os.environ.get("AWS_SECRET_ACCESS_KEY") == SECRET
