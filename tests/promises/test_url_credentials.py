"""Credentials inside URLs never show: not in errors, -v logs, checkpoints, model files or output.

A lake is served over HTTP by a loopback server (tests/support/http_server.py)
at a URL carrying sentinel credentials in its userinfo
(``http://alice:<sentinel>@127.0.0.1:…``) and in its query (``?token=…``,
``X-Amz-Signature=…``).  The server records that the credentials were sent,
so they were used, and every output, log and file written by real
``streammix`` runs (fit with a checkpoint, a failing fit, info, predict,
resume) is searched for the sentinels.  ``--storage-options`` with literal
keys against a moto S3 server on 127.0.0.1 warns without repeating them.
"""

from __future__ import annotations

import base64
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
from support.http_server import http_file_server
from support.mixtures import make_mixture
from support.servers import moto_endpoint

from streammix import InProcessEngine, MixtureOfLinearRegressions, ParquetSource
from streammix.exceptions import CredentialWarning, DataError
from streammix.redact import redact, redact_url

PASSWORD = f"PW{uuid.uuid4().hex}"
TOKEN = f"TOK{uuid.uuid4().hex}"
SIGNATURE = f"SIG{uuid.uuid4().hex}"
SENTINELS = (PASSWORD, TOKEN, SIGNATURE, base64.b64encode(f"alice:{PASSWORD}".encode()).decode())


@pytest.mark.parametrize("url, shown", [
    ("http://alice:secret@host:8080/lake/a.parquet", "http://***@host:8080/lake/a.parquet"),
    ("s3://AKIAXXXX:verysecret@bucket/lake", "s3://***@bucket/lake"),
    ("https://h/a.parquet?token=abc&x=1", "https://h/a.parquet?token=***&x=1"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=AK%2F1&"
     "X-Amz-Signature=f00d&X-Amz-Security-Token=t0k",
     "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&"
     "X-Amz-Signature=***&X-Amz-Security-Token=***"),
    ("https://acct.blob.core.windows.net/c/f?sv=2020&sp=r&sig=AbC%3D",
     "https://acct.blob.core.windows.net/c/f?sv=2020&sp=r&sig=***"),
    ("https://h/f?password=p&api_key=k&access_token=t&code=c&page=2",
     "https://h/f?password=***&api_key=***&access_token=***&code=***&page=2"),
    ("https://h/cb#access_token=t&state=s", "https://h/cb#access_token=***&state=s"),
    ("/data/lake/user:pass@x.parquet", "/data/lake/user:pass@x.parquet"),  # a local name
    ("gs://bucket/a=1/b.parquet", "gs://bucket/a=1/b.parquet"),
])
def test_redact_removes_userinfo_and_query_credentials(url, shown):
    assert redact(url) == shown == redact_url(url)
    text = f"{url}: column 'y' is missing (first at {url})"  # URLs inside a message
    assert redact(text) == f"{shown}: column 'y' is missing (first at {shown})"
    assert redact([url, {"path": url}]) == [shown, {"path": shown}]
    assert redact(None) is None and redact(3) == 3


@pytest.fixture(scope="module")
def served_lake(tmp_path_factory):
    """One Parquet file of a 2-component mixture, served over HTTP at a URL with sentinels."""
    root = tmp_path_factory.mktemp("http_lake")
    X, y, _ = make_mixture(600, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5], seed=16)
    pq.write_table(pa.table({"x": X[:, 0], "y": y}), str(root / "part-0.parquet"),
                   row_group_size=150)
    with http_file_server(root) as server:
        host, port = server.server_address[:2]
        url = (f"http://alice:{PASSWORD}@{host}:{port}/part-0.parquet"
               f"?token={TOKEN}&X-Amz-Signature={SIGNATURE}")
        yield {"url": url, "server": server, "netloc": f"{host}:{port}"}


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "streammix", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


def _no_sentinel(what: str, text: str) -> None:
    for sentinel in SENTINELS:
        assert sentinel not in text, f"{sentinel[:6]}... in {what}"


def test_sentinel_credentials_in_a_url_appear_in_no_output_log_or_file(served_lake, tmp_path):
    url, server = served_lake["url"], served_lake["server"]
    ck, model = tmp_path / "ck", tmp_path / "model.json"
    fit = ["-vv", "fit", url, "--target", "y", "--features", "x", "-k", "2", "--seed", "0",
           "--tol", "1e-6", "--in-process", "--out", str(model)]
    runs = {"fit": _cli(*fit, "--checkpoint", str(ck), "--max-iter", "4", cwd=tmp_path)}
    assert runs["fit"].returncode == 0, runs["fit"].stderr
    assert "DEBUG" in runs["fit"].stderr  # the most verbose log was on
    # the credentials were used: the server got them
    assert any(TOKEN in path and SIGNATURE in path for path, _ in server.seen)
    assert any(auth == "Basic " + SENTINELS[3] for _, auth in server.seen)
    runs["resume"] = _cli(*fit, "--checkpoint", str(ck), "--max-iter", "4", "--resume",
                          cwd=tmp_path)
    assert runs["resume"].returncode == 0, runs["resume"].stderr  # replayed: same URL, same data
    runs["bad"] = _cli("-v", "fit", url, "--target", "y", "--features", "x,nope", "-k", "2",
                       "--in-process", "--out", str(tmp_path / "never.json"), cwd=tmp_path)
    assert runs["bad"].returncode == 1
    shown = f"http://***@{served_lake['netloc']}/part-0.parquet?token=***&X-Amz-Signature=***"
    assert f"error: {shown}: column 'nope' is missing" in runs["bad"].stderr
    runs["info"] = _cli("info", str(model), cwd=tmp_path)
    assert runs["info"].returncode == 0 and f"fitted on {shown}" in runs["info"].stdout
    runs["predict"] = _cli("-vv", "predict", str(model), url, "--out", str(tmp_path / "pred"),
                           cwd=tmp_path)
    assert runs["predict"].returncode == 0, runs["predict"].stderr
    for name, run in runs.items():
        assert "http://http://" not in run.stderr
        _no_sentinel(f"{name} stdout", run.stdout)
        _no_sentinel(f"{name} stderr", run.stderr)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"checkpoint.json", "000000.json", "model.json"}
    assert any(p.suffix == ".parquet" for p in written)
    for path in written:
        _no_sentinel(str(path), path.read_bytes().decode("latin-1"))
    header = json.loads((ck / "checkpoint.json").read_text())
    assert list(header["data"]["files"]) == [shown]  # stored, redacted
    assert json.loads(model.read_text())["data"]["path"] == shown


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_the_library_shows_a_url_without_its_credentials(served_lake, tmp_path):
    url = served_lake["url"]
    handler = _Collect()
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        source = ParquetSource(url, target="y", features=["x"])
        model = MixtureOfLinearRegressions(2, random_state=0, max_iter=3,
                                           engine=InProcessEngine())
        model.fit(source, checkpoint=tmp_path / "ck")
        with pytest.raises(DataError) as bad:
            ParquetSource(url, target="y", features=["nope"]).plan()
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    model.save(tmp_path / "m.json", data={"path": url})
    texts = {"log": "\n".join(handler.lines), "describe": source.describe(),
             "repr": repr(source), "error": str(bad.value), "report": model.report()}
    assert "http://***@" in texts["describe"] and "http://***@" in texts["error"]
    for what, text in texts.items():
        _no_sentinel(what, text)
    for path in tmp_path.rglob("*.json"):
        _no_sentinel(str(path), path.read_text())


def test_literal_keys_in_storage_options_warn_and_point_to_the_environment(tmp_path):
    import s3fs
    secret = f"S3SECRET{uuid.uuid4().hex}"
    with moto_endpoint() as endpoint:
        client = {"endpoint_url": endpoint, "region_name": "eu-west-1"}
        fs = s3fs.S3FileSystem(key="kid", secret=secret, client_kwargs=client,
                               skip_instance_cache=True)
        fs.mkdir("cred-test")
        X, y, _ = make_mixture(200, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5],
                               seed=3)
        local = tmp_path / "p.parquet"
        pq.write_table(pa.table({"x": X[:, 0], "y": y}), str(local))
        fs.put(str(local), "cred-test/lake/p.parquet")
        options = json.dumps({"key": "kid", "secret": secret, "client_kwargs": client})
        run = _cli("fit", "s3://cred-test/lake", "--target", "y", "--features", "x", "-k", "2",
                   "--seed", "0", "--in-process", "--max-iter", "3", "--storage-options",
                   options, "--out", str(tmp_path / "m.json"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "CredentialWarning" in run.stderr
    assert "literal credentials (key, secret)" in run.stderr and "environment" in run.stderr
    for text in (run.stdout, run.stderr, (tmp_path / "m.json").read_text()):
        assert secret not in text
    # from the environment: no warning
    import warnings

    from streammix.cli.common import warn_literal_credentials
    with warnings.catch_warnings():
        warnings.simplefilter("error", CredentialWarning)
        warn_literal_credentials({"anon": False, "client_kwargs": client})
        with pytest.raises(CredentialWarning):
            warn_literal_credentials({"client_kwargs": {"aws_secret_access_key": "x"}})
    assert np.isfinite(json.loads((tmp_path / "m.json").read_text())["fitted"]["loglik_"])
