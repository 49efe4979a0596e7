"""A secret never leaks: not into logs (at DEBUG), reprs, error messages or model files.

A sentinel secret key is used to read a lake from an S3-compatible moto
server on 127.0.0.1, once given in ``storage_options`` and once (the way a
user should) in the environment, by the library and by the ``streammix``
program.  Config files that would carry secrets or ``!!python`` tags are
refused by :mod:`streammix.config` (tests/engines/test_config.py); TLS with
certificate paths is tested there too.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import ROOT
from support.mixtures import make_mixture
from support.servers import moto_endpoint

from streammix import DataError, MixtureOfLinearRegressions, ParquetSource
from streammix.engines.cluster_config import parse_cluster_config, resolve_secret
from streammix.exceptions import ConfigError

SENTINEL = f"SENTINEL-{uuid.uuid4().hex}"
KEY_ID = "streammix-test-key-id"


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """A moto S3 server holding a small lake; the sentinel is the secret key."""
    import s3fs
    with pytest.MonkeyPatch.context() as mp, moto_endpoint() as url:
        mp.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SENTINEL)
        mp.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        endpoint = {"endpoint_url": url, "region_name": "eu-west-1"}
        X, y, _ = make_mixture(900, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5],
                               seed=12)
        local = tmp_path_factory.mktemp("secret_lake")
        for k in range(3):
            sl = slice(300 * k, 300 * (k + 1))
            pq.write_table(pa.table({"x": X[sl, 0], "y": y[sl]}),
                           str(local / f"part-{k}.parquet"))
        fs = s3fs.S3FileSystem(key=KEY_ID, secret=SENTINEL, client_kwargs=endpoint,
                               skip_instance_cache=True)
        fs.mkdir("secret-test")
        fs.put(str(local), "secret-test/lake", recursive=True)
        yield {"url": "s3://secret-test/lake", "endpoint": endpoint}


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def debug_log():
    """Every log record of every library, at DEBUG, formatted with its arguments."""
    handler = Collect()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def test_secret_in_storage_options_appears_nowhere(bucket, tmp_path, debug_log):
    options = {"key": KEY_ID, "secret": SENTINEL, "client_kwargs": bucket["endpoint"]}
    source = ParquetSource(bucket["url"], target="y", features=["x"], storage_options=options)
    model = MixtureOfLinearRegressions(2, random_state=0, tol=1e-3).fit(source)
    path = tmp_path / "model.json"
    model.save(path)
    with pytest.raises(DataError) as missing:
        ParquetSource(bucket["url"], target="y", features=["nope"], storage_options=options)
    with pytest.raises(DataError) as absent:
        ParquetSource(bucket["url"] + "-gone", target="y", features=["x"],
                      storage_options=options)
    texts = {"repr(source)": repr(source), "describe": source.describe(),
             "repr(model)": repr(model), "report": model.report(),
             "model file": path.read_text(), "missing column": str(missing.value),
             "missing path": str(absent.value), "log": "\n".join(debug_log)}
    assert "column 'nope' is missing" in texts["missing column"]
    assert any("streammix" in line for line in debug_log)  # the log was captured
    assert model.n_rows_ == 900 and json.loads(texts["model file"])["fitted"]
    for what, text in texts.items():
        assert SENTINEL not in text, what


def test_secret_in_the_environment_stays_out_of_the_programs_output(bucket, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_ACCESS_KEY_ID": KEY_ID,
           "AWS_SECRET_ACCESS_KEY": SENTINEL, "AWS_DEFAULT_REGION": "eu-west-1"}
    options = json.dumps({"client_kwargs": bucket["endpoint"]})
    out = tmp_path / "model.json"
    base = [sys.executable, "-m", "streammix", "-vv", "--debug"]
    ok = subprocess.run([*base, "fit", bucket["url"], "--target", "y", "--features", "x",
                         "-k", "2", "--seed", "0", "--tol", "1e-3", "--in-process",
                         "--storage-options", options, "--out", str(out)],
                        env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "DEBUG" in ok.stderr  # the most verbose log was on
    bad = subprocess.run([*base[:-1], "fit", bucket["url"], "--target", "y", "--features",
                          "x,nope", "-k", "2", "--in-process", "--storage-options", options,
                          "--out", str(tmp_path / "never.json")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "column 'nope' is missing" in bad.stderr
    assert not (tmp_path / "never.json").exists()
    for text in (ok.stdout, ok.stderr, out.read_text(), bad.stdout, bad.stderr):
        assert SENTINEL not in text


def test_config_secret_references_never_show_the_value(monkeypatch):
    monkeypatch.setenv("STREAMMIX_TEST_SSH_PASSWORD", SENTINEL)
    config = parse_cluster_config(
        "type: ssh\ncluster:\n  hosts: [a, b]\n  connect_options:\n"
        "    password: env:STREAMMIX_TEST_SSH_PASSWORD\n", "ssh.yaml")
    assert SENTINEL not in repr(config) and SENTINEL not in str(config.cluster)
    value = config.cluster["connect_options"]["password"]
    assert resolve_secret(value, "ssh.yaml: key 'password'") == SENTINEL
    # a literal secret is refused without repeating it
    with pytest.raises(ConfigError) as info:
        parse_cluster_config("type: ssh\ncluster:\n  hosts: [a, b]\n  connect_options:\n"
                             f"    password: {SENTINEL}\n", "ssh.yaml")
    assert SENTINEL not in str(info.value) and "no secrets" in str(info.value)
    np.testing.assert_equal(value, "env:STREAMMIX_TEST_SSH_PASSWORD")
