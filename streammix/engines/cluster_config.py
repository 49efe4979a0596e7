"""Cluster configuration files: YAML -> a validated :class:`ClusterConfig` -> a Dask client.

A config file names one kind of cluster and its settings::

    type: local            # local | scheduler | ssh | slurm | kubernetes
    cluster:               # settings of that kind (checked: unknown keys are errors)
      n_workers: 2
    scale:                 # slurm / kubernetes only: how many workers to ask for
      jobs: 4
    engine:                # options of streammix.dask_engine.DaskEngine
      cache: false
    wait_for_workers: 1    # wait for this many workers before the first pass
    timeout: 60            # seconds, for connecting and waiting

Files are parsed with ``yaml.safe_load`` (no ``!!python`` tags) and checked
strictly; every error names the file and the key.  Config files carry no
secrets: a key that looks secret (password, token, secret, passphrase,
credential, access key) must hold ``env:VAR_NAME`` (read from the
environment when connecting) or ``file:/path`` (read from that file), and
PEM blocks are rejected anywhere.  TLS material is given by file *paths*.
Relative TLS certificate, SSH key and ``local_directory`` paths are
relative to the config file's folder; paths used on remote machines
(``remote_python``, SLURM directories) are passed on unchanged.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ClusterConfig", "ConfigError", "load_cluster_config", "parse_cluster_config",
    "default_cluster_config", "resolve_secret", "CLUSTER_TYPES", "DEFAULT_LOCAL_CONFIG",
]

logger = logging.getLogger(__name__)

CLUSTER_TYPES = ("local", "scheduler", "ssh", "slurm", "kubernetes")

#: The default configuration (also shipped as ``cluster_configs/local.yaml``).
DEFAULT_LOCAL_CONFIG = """\
# A LocalCluster on this machine: worker processes, one thread each.
type: local
cluster:
  n_workers: 2
  threads_per_worker: 1
  processes: true
  memory_limit: auto
  dashboard_address: null
engine:
  cache: false
timeout: 60
"""

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|token|secret|credential|private_?key|api_?key|access_?key",
    re.IGNORECASE,
)
_SECRET_VALUES = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]+-----"), "a PEM block"),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "a GitHub token"),
)
_ENV_REF = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_ADDRESS = re.compile(r"(tcp|tls|ws|wss|ucx|inproc)://\S+")

_INSTALL_HINTS = {
    "ssh": ("asyncssh", "pip install 'streammix[ssh]'  (or: pip install asyncssh)"),
    "slurm": ("dask_jobqueue", "pip install 'streammix[slurm]'  (or: pip install dask-jobqueue)"),
    "kubernetes": ("dask_kubernetes",
                   "pip install 'streammix[kubernetes]'  (or: pip install dask-kubernetes)"),
}


class ConfigError(ValueError):
    """A cluster config file is unreadable or invalid; the message names the file and key."""


# ------------------------------------------------------------------ validators
# A validator is ``check(value, ctx, key) -> value`` raising ConfigError.


class _Ctx:
    def __init__(self, name: str):
        self.name = name

    def error(self, key: str, problem: str) -> ConfigError:
        where = f"key '{key}'" if key else "top level"
        return ConfigError(f"{self.name}: {where}: {problem}")


def _int(low: int = 0):
    def check(value, ctx, key):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ctx.error(key, f"must be an integer >= {low}, got {value!r}")
        return value
    return check


def _number(low: float = 0.0):
    def check(value, ctx, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low:
            raise ctx.error(key, f"must be a number > {low:g}, got {value!r}")
        return float(value)
    return check


def _bool(value, ctx, key):
    if not isinstance(value, bool):
        raise ctx.error(key, f"must be true or false, got {value!r}")
    return value


def _str(value, ctx, key):
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(key, f"must be a non-empty string, got {value!r}")
    return value


def _nullable(check):
    def wrapped(value, ctx, key):
        return None if value is None else check(value, ctx, key)
    return wrapped


def _path(value, ctx, key):
    value = _str(value, ctx, key)
    if "\n" in value:
        raise ctx.error(key, "must be a file path (one line), not file contents")
    return value


def _memory(value, ctx, key):
    if isinstance(value, bool):
        raise ctx.error(key, f"must be a size like '4GiB', 'auto' or a number of bytes, "
                             f"got {value!r}")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and (value == "auto" or re.fullmatch(
            r"\d+(\.\d+)?\s*([kKmMgGtT]i?)?[bB]?", value.strip())):
        return value
    raise ctx.error(key, f"must be a size like '4GiB', 'auto' or a number of bytes, got {value!r}")


def _str_list(min_len: int = 0):
    def check(value, ctx, key):
        if not isinstance(value, list) or len(value) < min_len:
            raise ctx.error(key, f"must be a list of at least {min_len} strings, got {value!r}")
        return [_str(v, ctx, f"{key}[{i}]") for i, v in enumerate(value)]
    return check


def _choice(*options):
    def check(value, ctx, key):
        if value not in options:
            raise ctx.error(key, f"must be one of {list(options)}, got {value!r}")
        return value
    return check


def _secret(value, ctx, key):
    # The literal-secret scan has already run; what is left is env:/file: or null.
    return _str(value, ctx, key)


def _str_map(value, ctx, key):
    if not isinstance(value, dict):
        raise ctx.error(key, f"must be a mapping, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ctx.error(f"{key}.{k}", "keys must be strings")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ctx.error(f"{key}.{k}", f"must be a string or number, got {v!r}")
        out[k] = str(v)
    return out


def _mapping(schema: dict[str, Callable], required: tuple[str, ...] = ()):
    def check(value, ctx, key):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ctx.error(key, f"must be a mapping, got {type(value).__name__}")
        out = {}
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            if k not in schema:
                raise ctx.error(sub, f"unknown key (allowed here: {', '.join(sorted(schema))})")
            out[k] = schema[k](v, ctx, sub)
        for k in required:
            if k not in out:
                raise ctx.error(f"{key}.{k}" if key else k, "is required")
        return out
    return check


_LOCAL = _mapping({
    "n_workers": _int(1), "threads_per_worker": _int(1), "processes": _bool,
    "memory_limit": _memory, "dashboard_address": _nullable(_str),
    "local_directory": _path, "host": _str, "scheduler_port": _int(0),
})
_TLS = _mapping({"ca_file": _path, "cert_file": _path, "key_file": _path,
                 "require_encryption": _bool}, required=("ca_file", "cert_file", "key_file"))
_SCHEDULER = _mapping({"address": _str, "tls": _TLS}, required=("address",))
_SSH = _mapping({
    "hosts": _str_list(2),
    "connect_options": _mapping({
        "username": _str, "port": _int(1), "known_hosts": _nullable(_path),
        "client_keys": _str_list(1), "password": _secret, "passphrase": _secret,
    }),
    "worker_options": _mapping({"n_workers": _int(1), "nthreads": _int(1),
                                "memory_limit": _memory}),
    "scheduler_options": _mapping({"port": _int(0), "dashboard_address": _nullable(_str)}),
    "remote_python": _str,
}, required=("hosts",))
_SLURM = _mapping({
    "cores": _int(1), "memory": _memory, "processes": _int(1), "queue": _str,
    "account": _str, "walltime": _str, "job_extra_directives": _str_list(),
    "job_script_prologue": _str_list(), "local_directory": _path, "log_directory": _path,
    "interface": _str, "python": _str, "worker_extra_args": _str_list(),
}, required=("cores", "memory"))
_KUBERNETES = _mapping({
    "name": _str, "namespace": _str, "image": _str, "n_workers": _int(0),
    "resources": _mapping({"requests": _str_map, "limits": _str_map}),
    "env": _str_map,
})
_CLUSTER_SCHEMAS = {"local": _LOCAL, "scheduler": _SCHEDULER, "ssh": _SSH, "slurm": _SLURM,
                    "kubernetes": _KUBERNETES}
_SCALE = {
    "slurm": _mapping({"jobs": _int(1), "workers": _int(1), "adapt": _mapping(
        {"minimum_jobs": _int(0), "maximum_jobs": _int(1)}, required=("maximum_jobs",))}),
    "kubernetes": _mapping({"workers": _int(1), "adapt": _mapping(
        {"minimum": _int(0), "maximum": _int(1)}, required=("maximum",))}),
}
_TOP = {"type", "cluster", "scale", "engine", "wait_for_workers", "timeout"}
_ENGINE = _mapping({"cache": _bool, "retries": _int(0)})


def _scan_secrets(node: Any, ctx: _Ctx, key: str = "") -> None:
    """Reject literal secrets anywhere in the parsed document."""
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{key}.{k}" if key else str(k)
            if isinstance(k, str) and _SECRET_KEY.search(k) and v is not None:
                if not (isinstance(v, str) and _is_reference(v)):
                    raise ctx.error(sub, "looks like a secret and holds a literal value; config "
                                         "files carry no secrets: write env:VAR_NAME (read from "
                                         "the environment) or file:/path/to/secret instead")
            _scan_secrets(v, ctx, sub)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _scan_secrets(v, ctx, f"{key}[{i}]")
    elif isinstance(node, str):
        for pattern, what in _SECRET_VALUES:
            if pattern.search(node):
                raise ctx.error(key, f"holds {what}; config files carry no secrets: give a file "
                                     "path or env:VAR_NAME instead")


def _is_reference(value: str) -> bool:
    if _ENV_REF.fullmatch(value):
        return True
    return value.startswith("file:") and len(value) > 5 and "\n" not in value


def resolve_secret(value: str | None, where: str = "") -> str | None:
    """Turn ``env:VAR`` or ``file:/path`` into the secret it points to.

    Raises :class:`ConfigError` naming ``where`` if the variable is unset or
    the file cannot be read.
    """
    if value is None:
        return None
    m = _ENV_REF.fullmatch(value)
    if m:
        try:
            return os.environ[m.group(1)]
        except KeyError:
            raise ConfigError(f"{where}: environment variable {m.group(1)} is not set") from None
    if value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read secret file {path}: {exc.strerror}") from None
    raise ConfigError(f"{where}: expected env:VAR_NAME or file:/path, got a literal value")


# ------------------------------------------------------------------ the config


@dataclass(frozen=True)
class ClusterConfig:
    """A validated cluster configuration.

    Attributes
    ----------
    type : str
        One of :data:`CLUSTER_TYPES`.
    cluster : dict
        The settings of that kind of cluster.
    scale : dict
        How many workers to request (slurm, kubernetes).
    engine : dict
        Keyword arguments for ``DaskEngine`` (``cache``).
    wait_for_workers : int
        Workers to wait for before returning from :meth:`connect` (0: none).
    timeout : float
        Seconds allowed for connecting and for waiting for workers.
    source : str
        The file it came from (for messages); relative paths are resolved
        against its folder.
    """

    type: str
    cluster: dict = field(default_factory=dict)
    scale: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    wait_for_workers: int = 0
    timeout: float = 60.0
    source: str = "<config>"

    # ---------------------------------------------------------------- helpers
    def _path(self, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute() and self.source not in ("<config>", "<default>"):
            path = Path(self.source).resolve().parent / path
        return str(path)

    def _where(self, key: str) -> str:
        return f"{self.source}: key '{key}'"

    def _existing_file(self, value: str, key: str) -> str:
        path = self._path(value)
        if not Path(path).is_file():
            raise ConfigError(f"{self._where(key)}: file {path} does not exist")
        return path

    # ---------------------------------------------------------------- connect
    def connect(self):
        """Start or attach to the cluster.

        Returns
        -------
        client : distributed.Client
        closer : callable
            Call it to close the client and any cluster this call started
            (an existing scheduler is left running).
        """
        from distributed import Client

        starter = getattr(self, f"_start_{self.type}")
        client, cluster = starter(Client)

        def closer() -> None:
            try:
                client.close()
            finally:
                if cluster is not None:
                    cluster.close()

        try:
            if self.wait_for_workers:
                client.wait_for_workers(self.wait_for_workers, timeout=self.timeout)
        except BaseException:
            closer()
            raise
        logger.info("connected to %s (%s cluster from %s)", client.scheduler.address,
                    self.type, self.source)
        return client, closer

    def _start_local(self, Client):
        from distributed import LocalCluster

        opts = dict(self.cluster)
        if "local_directory" in opts:
            opts["local_directory"] = self._path(opts["local_directory"])
        opts.setdefault("dashboard_address", None)
        cluster = LocalCluster(**opts)
        try:
            return Client(cluster, timeout=self.timeout), cluster
        except BaseException:
            cluster.close()
            raise

    def _start_scheduler(self, Client):
        address = self.cluster["address"]
        tls = self.cluster.get("tls")
        security = None
        if tls is not None:
            from distributed.security import Security

            security = Security(
                tls_ca_file=self._existing_file(tls["ca_file"], "cluster.tls.ca_file"),
                tls_client_cert=self._existing_file(tls["cert_file"], "cluster.tls.cert_file"),
                tls_client_key=self._existing_file(tls["key_file"], "cluster.tls.key_file"),
                require_encryption=tls.get("require_encryption", True),
            )
        return Client(address, security=security, timeout=self.timeout), None

    def _start_ssh(self, Client):
        _require("ssh")
        from distributed import SSHCluster

        connect = dict(self.cluster.get("connect_options", {}))
        for key in ("password", "passphrase"):
            if key in connect:
                connect[key] = resolve_secret(connect[key],
                                              self._where(f"cluster.connect_options.{key}"))
        if "client_keys" in connect:
            connect["client_keys"] = [self._path(p) for p in connect["client_keys"]]
        if connect.get("known_hosts"):
            connect["known_hosts"] = self._path(connect["known_hosts"])
        kwargs = {k: v for k, v in self.cluster.items() if k not in ("hosts", "connect_options")}
        cluster = SSHCluster(self.cluster["hosts"], connect_options=connect, **kwargs)
        return Client(cluster, timeout=self.timeout), cluster

    def _start_slurm(self, Client):
        _require("slurm")
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(**self.cluster)
        self._apply_scale(cluster)
        return Client(cluster, timeout=self.timeout), cluster

    def _start_kubernetes(self, Client):
        _require("kubernetes")
        from dask_kubernetes.operator import KubeCluster

        opts = dict(self.cluster)
        if "env" in opts:
            opts["env"] = {
                k: (resolve_secret(v, self._where(f"cluster.env.{k}")) if _is_reference(v)
                    else v) for k, v in opts["env"].items()
            }
        cluster = KubeCluster(**opts)
        self._apply_scale(cluster)
        return Client(cluster, timeout=self.timeout), cluster

    def _apply_scale(self, cluster) -> None:
        scale = self.scale
        if "adapt" in scale:
            adapt = scale["adapt"]
            if self.type == "slurm":
                cluster.adapt(minimum_jobs=adapt.get("minimum_jobs", 0),
                              maximum_jobs=adapt["maximum_jobs"])
            else:
                cluster.adapt(minimum=adapt.get("minimum", 0), maximum=adapt["maximum"])
        elif "jobs" in scale:
            cluster.scale(jobs=scale["jobs"])
        elif "workers" in scale:
            cluster.scale(scale["workers"])


def _require(kind: str) -> None:
    module, hint = _INSTALL_HINTS[kind]
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(
            f"a {kind} cluster needs the optional package {module!r}: {hint}"
        ) from None


# ------------------------------------------------------------------ loading


def parse_cluster_config(text: str, name: str = "<config>") -> ClusterConfig:
    """Parse and validate the YAML text of a cluster config; ``name`` is used in errors."""
    ctx = _Ctx(name)
    try:
        doc = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{name}: {_yaml_problem(exc)} (config files are plain YAML: "
                          "tags such as !!python/... are not allowed)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{name}: must be a YAML mapping with a 'type' key, "
                          f"got {type(doc).__name__}")
    _scan_secrets(doc, ctx)
    for key in doc:
        if key not in _TOP:
            raise ctx.error(str(key), f"unknown key (allowed: {', '.join(sorted(_TOP))})")
    if "type" not in doc:
        raise ctx.error("type", f"is required (one of {', '.join(CLUSTER_TYPES)})")
    kind = _choice(*CLUSTER_TYPES)(doc["type"], ctx, "type")
    cluster = _CLUSTER_SCHEMAS[kind](doc.get("cluster"), ctx, "cluster")
    if kind == "scheduler":
        address = cluster["address"]
        if not _ADDRESS.fullmatch(address):
            raise ctx.error("cluster.address", f"must look like tls://host:8786, got {address!r}")
        if address.startswith("tls://") and "tls" not in cluster:
            raise ctx.error("cluster.tls", "is required for a tls:// address (ca_file, "
                                           "cert_file, key_file)")
        if "tls" in cluster and not address.startswith(("tls://", "wss://")):
            raise ctx.error("cluster.address", "must start with tls:// when 'tls' is given")
    scale: dict = {}
    if "scale" in doc:
        if kind not in _SCALE:
            raise ctx.error("scale", f"is not used by a {kind} cluster")
        scale = _SCALE[kind](doc["scale"], ctx, "scale")
        if len(scale) != 1:
            raise ctx.error("scale", f"give exactly one of {', '.join(sorted(_scale_keys(kind)))}")
    engine = _ENGINE(doc.get("engine"), ctx, "engine")
    wait = _int(0)(doc.get("wait_for_workers", 0), ctx, "wait_for_workers")
    timeout = _number(0)(doc.get("timeout", 60), ctx, "timeout")
    return ClusterConfig(kind, cluster, scale, engine, wait, timeout, name)


def _scale_keys(kind: str) -> tuple[str, ...]:
    return ("jobs", "workers", "adapt") if kind == "slurm" else ("workers", "adapt")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return problem


def load_cluster_config(path) -> ClusterConfig:
    """Read and validate a cluster config file.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not plain YAML, or fails validation;
        the message names the file and the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read cluster config: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cluster config is not UTF-8 text") from None
    return parse_cluster_config(text, str(path))


def default_cluster_config() -> ClusterConfig:
    """The embedded default: a :class:`distributed.LocalCluster` on this machine."""
    return parse_cluster_config(DEFAULT_LOCAL_CONFIG, "<default>")
