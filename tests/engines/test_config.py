"""Cluster config files: strict validation, no secrets, real clusters started from them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import yaml
from support import ROOT
from support.mixtures import make_mixture

from streammix import DaskEngine, MixtureOfLinearRegressions
from streammix.engines.cluster_config import (
    DEFAULT_LOCAL_CONFIG,
    default_cluster_config,
    load_cluster_config,
    parse_cluster_config,
    resolve_secret,
)
from streammix.exceptions import ConfigError

CONFIGS = ROOT / "cluster_configs"
SHIPPED = ["local", "scheduler", "ssh", "slurm", "kubernetes"]


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", SHIPPED)
def test_every_shipped_config_validates(kind):
    config = load_cluster_config(CONFIGS / f"{kind}.yaml")
    assert config.type == kind
    assert config.source.endswith(f"{kind}.yaml")
    # what validation returns is what the file says (nothing dropped or invented)
    raw = yaml.safe_load((CONFIGS / f"{kind}.yaml").read_text())
    assert config.cluster == raw.get("cluster", {})
    assert config.engine == raw.get("engine", {})


def test_shipped_configs_are_exactly_the_listed_ones():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(SHIPPED)


def test_local_yaml_is_the_embedded_default():
    assert (CONFIGS / "local.yaml").read_text() == DEFAULT_LOCAL_CONFIG
    default = default_cluster_config()
    shipped = load_cluster_config(CONFIGS / "local.yaml")
    assert (default.type, default.cluster, default.engine) == (
        shipped.type, shipped.cluster, shipped.engine)


def test_python_tags_are_rejected_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"type: local\ncluster: !!python/object/apply:os.system "
                           f"['touch {marker}']\n")
    with pytest.raises(ConfigError, match=r"cfg\.yaml: .*!!python") as info:
        load_cluster_config(path)
    assert "not allowed" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("text, key, problem", [
    ("type: local\nclsuter: {}\n", "clsuter", "unknown key"),
    ("type: local\ncluster: {n_worker: 2}\n", "cluster.n_worker", "unknown key"),
    ("type: local\ncluster: {n_workers: two}\n", "cluster.n_workers", "integer >= 1"),
    ("type: local\ncluster: {n_workers: 0}\n", "cluster.n_workers", "integer >= 1"),
    ("type: local\ncluster: {processes: 'yes'}\n", "cluster.processes", "true or false"),
    ("type: local\ncluster: {memory_limit: lots}\n", "cluster.memory_limit", "size like"),
    ("cluster: {}\n", "type", "is required"),
    ("type: mesos\n", "type", "must be one of"),
    ("type: local\nscale: {jobs: 2}\n", "scale", "not used by a local cluster"),
    ("type: slurm\ncluster: {cores: 4}\n", "cluster.memory", "is required"),
    ("type: slurm\ncluster: {cores: 4, memory: 8GiB}\nscale: {jobs: 2, workers: 3}\n",
     "scale", "exactly one"),
    ("type: ssh\ncluster: {hosts: [a]}\n", "cluster.hosts", "at least 2"),
    ("type: scheduler\ncluster: {address: 'tls://h:8786'}\n", "cluster.tls", "is required"),
    ("type: scheduler\ncluster: {address: 'h:8786'}\n", "cluster.address", "tls://"),
    ("type: local\ntimeout: -1\n", "timeout", "number > 0"),
    ("type: local\nengine: {cache: 1}\n", "engine.cache", "true or false"),
])
def test_invalid_configs_name_file_and_key(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_cluster_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key '{key}'"), message
    assert problem in message


def test_not_a_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_cluster_config(write(tmp_path, "- local\n"))
    with pytest.raises(ConfigError, match=r"not valid YAML: .*line 2"):
        load_cluster_config(write(tmp_path, "type: local\ncluster: a: b\n"))
    with pytest.raises(ConfigError, match="cannot read cluster config"):
        load_cluster_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text, key", [
    ("type: ssh\ncluster:\n  hosts: [a, b]\n  connect_options: {password: hunter2}\n",
     "cluster.connect_options.password"),
    ("type: ssh\ncluster:\n  hosts: [a, b]\n  connect_options: {passphrase: 'file:'}\n",
     "cluster.connect_options.passphrase"),
    ("type: kubernetes\ncluster:\n  env: {AWS_SECRET_ACCESS_KEY: abc123}\n",
     "cluster.env.AWS_SECRET_ACCESS_KEY"),
    ("type: kubernetes\ncluster:\n  env: {API_TOKEN: 42}\n", "cluster.env.API_TOKEN"),
    ("type: kubernetes\ncluster:\n  env: {S3_ID: AKIAABCDEFGHIJKLMNOP}\n", "cluster.env.S3_ID"),
    ("type: scheduler\ncluster:\n  address: tls://h:1\n  tls:\n    ca_file: ca.pem\n"
     "    cert_file: c.pem\n    key_file: |\n      -----BEGIN PRIVATE KEY-----\n"
     "      MIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n      -----END PRIVATE KEY-----\n",
     "cluster.tls.key_file"),
])
def test_literal_secrets_are_rejected(tmp_path, text, key):
    with pytest.raises(ConfigError) as info:
        load_cluster_config(write(tmp_path, text))
    message = str(info.value)
    assert f"key '{key}'" in message and "no secrets" in message
    assert "hunter2" not in message and "abc123" not in message


def test_secret_references_are_accepted_and_resolved(tmp_path, monkeypatch):
    secret_file = tmp_path / "pass.txt"
    secret_file.write_text("s3cr3t\n")
    config = parse_cluster_config(
        "type: ssh\ncluster:\n  hosts: [a, b]\n  connect_options:\n"
        "    password: env:MY_SSH_PASS\n"
        f"    passphrase: file:{secret_file}\n", "ssh-test.yaml")
    opts = config.cluster["connect_options"]
    monkeypatch.setenv("MY_SSH_PASS", "from-env")
    assert resolve_secret(opts["password"], "w") == "from-env"
    assert resolve_secret(opts["passphrase"], "w") == "s3cr3t"
    monkeypatch.delenv("MY_SSH_PASS")
    with pytest.raises(ConfigError, match="MY_SSH_PASS is not set"):
        resolve_secret(opts["password"], "ssh-test.yaml: key 'password'")


@pytest.mark.parametrize("kind, module", [
    ("slurm", "dask_jobqueue"), ("kubernetes", "dask_kubernetes"), ("ssh", "asyncssh")])
def test_missing_optional_backend_says_what_to_install(monkeypatch, kind, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    config = load_cluster_config(CONFIGS / f"{kind}.yaml")
    with pytest.raises(ConfigError, match=rf"pip install 'streammix\[{kind}\]'"):
        config.connect()


def test_tls_scheduler_needs_existing_certificate_files(tmp_path):
    config = parse_cluster_config(
        "type: scheduler\ncluster:\n  address: tls://127.0.0.1:1\n  tls:\n"
        "    ca_file: no-ca.pem\n    cert_file: c.pem\n    key_file: k.pem\n",
        str(tmp_path / "sched.yaml"))
    with pytest.raises(ConfigError, match=r"sched\.yaml: key 'cluster.tls.ca_file': file "
                                          r".*no-ca\.pem does not exist"):
        config.connect()


def test_shipped_local_config_starts_a_cluster_with_worker_processes():
    config = load_cluster_config(CONFIGS / "local.yaml")
    client, closer = config.connect()
    try:
        info = client.scheduler_info(n_workers=-1)
        assert len(info["workers"]) == 2
        import os
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        assert client.submit(sum, [1, 2, 3]).result() == 6
    finally:
        closer()
    assert client.status == "closed"


def test_tls_scheduler_config_connects_over_tls(tmp_path):
    from distributed import LocalCluster
    from distributed.security import Security
    from support.tls_certs import make_tls_files

    certs = make_tls_files(tmp_path)
    security = Security(
        tls_ca_file=str(certs["ca"]), tls_scheduler_cert=str(certs["cert"]),
        tls_scheduler_key=str(certs["key"]), tls_worker_cert=str(certs["cert"]),
        tls_worker_key=str(certs["key"]), tls_client_cert=str(certs["cert"]),
        tls_client_key=str(certs["key"]), require_encryption=True)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
                      security=security, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        # relative certificate paths are resolved against the config file's folder
        path = write(tmp_path, f"type: scheduler\ncluster:\n  address: {address}\n  tls:\n"
                               "    ca_file: ca.pem\n    cert_file: cert.pem\n"
                               "    key_file: key.pem\nwait_for_workers: 1\ntimeout: 30\n")
        client, closer = load_cluster_config(path).connect()
        try:
            assert client.scheduler.address.startswith("tls://")
            assert client.submit(pow, 2, 10).result() == 1024
            # a whole fit over the encrypted connection equals the in-process fit
            X, y, _ = make_mixture(1500, [0.5, 0.5], [-2.0, 2.0], [[1.0], [-1.0]], [0.5, 0.5],
                                   seed=4)
            kwargs = dict(random_state=0, chunk_rows=400)
            remote = MixtureOfLinearRegressions(2, engine=DaskEngine(client), **kwargs)
            local = MixtureOfLinearRegressions(2, **kwargs)
            np.testing.assert_array_equal(remote.fit(X, y).params_.beta,
                                          local.fit(X, y).params_.beta)
        finally:
            closer()
        # attaching never stops someone else's scheduler
        assert cluster.status.name == "running"
        # without the client certificate the scheduler refuses the connection
        from distributed import Client
        no_cert = Security(tls_ca_file=str(certs["ca"]), require_encryption=True)
        with pytest.raises(Exception):  # noqa: B017 - TLS/timeout error type varies
            Client(address, security=no_cert, timeout=3, set_as_default=False)
