"""Cluster configuration files: YAML -> a validated :class:`ClusterConfig` -> a Dask client.

A config file names one kind of cluster and its settings::

    type: local            # local | scheduler | ssh | slurm | kubernetes
    cluster:               # settings of that kind (checked: unknown keys are errors)
      n_workers: 2
    scale:                 # slurm / kubernetes only: how many workers to ask for
      jobs: 4
    engine:                # options of streammix.DaskEngine
      cache: false
      worker_timeout: 60   # s: scheduler silent, or no worker connected -> error
                           # (default: 'timeout' below)
      pass_timeout: 600    # s: no task of a pass finished -> error
    wait_for_workers: 1    # wait for this many workers before the first pass
    timeout: 60            # seconds, for connecting and waiting

Files are parsed with a ``yaml.SafeLoader`` (no ``!!python`` tags) that also
refuses anchors and aliases (``&name`` / ``*name``: a few hundred bytes of
nested aliases would otherwise expand to billions of nodes), and checked
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
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from streammix.engines.config_schema import (
    ADDRESS_PATTERN,
    CLUSTER_SCHEMAS,
    ENGINE_SCHEMA,
    SCALE_SCHEMAS,
    TOP_KEYS,
    ConfigFile,
    choice,
    integer,
    is_reference,
    number,
    resolve_secret,
    scan_secrets,
)
from streammix.exceptions import ConfigError

__all__ = [
    "ClusterConfig", "load_cluster_config", "parse_cluster_config",
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

_INSTALL_HINTS = {
    "ssh": ("asyncssh", "pip install 'streammix[ssh]'  (or: pip install asyncssh)"),
    "slurm": ("dask_jobqueue", "pip install 'streammix[slurm]'  (or: pip install dask-jobqueue)"),
    "kubernetes": ("dask_kubernetes",
                   "pip install 'streammix[kubernetes]'  (or: pip install dask-kubernetes)"),
}


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
    def file_path(self, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute() and self.source not in ("<config>", "<default>"):
            path = Path(self.source).resolve().parent / path
        return str(path)

    def _where(self, key: str) -> str:
        return f"{self.source}: key '{key}'"

    def _existing_file(self, value: str, key: str) -> str:
        path = self.file_path(value)
        if not Path(path).is_file():
            raise ConfigError(f"{self._where(key)}: file {path} does not exist")
        return path

    # ---------------------------------------------------------------- connect
    def connect(self, *, worker_logs: bool = False):
        """Start or attach to the cluster.

        Parameters
        ----------
        worker_logs : bool
            Let the workers of a local cluster started here write their logs
            (INFO and up) to this terminal.  By default they are silenced: a
            task's error reaches the client, which reports it once, so their
            "Compute Failed" tracebacks only repeat it.

        Returns
        -------
        client : distributed.Client
        closer : callable
            Call it to close the client and any cluster this call started
            (an existing scheduler is left running).
        """
        from distributed import Client

        if self.type == "local":
            client, cluster = self._start_local(Client, worker_logs)
        else:
            client, cluster = getattr(self, f"_start_{self.type}")(Client)

        def closer() -> None:
            try:
                try:  # bounded: a stopped scheduler must not hold the program
                    client.close(timeout=min(self.timeout, 10.0))
                except (TimeoutError, OSError) as exc:
                    logger.warning("closing the client of %s: %s", self.source, exc)
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

    def _start_local(self, Client, worker_logs: bool = False):
        from distributed import LocalCluster

        opts = dict(self.cluster)
        if "local_directory" in opts:
            opts["local_directory"] = self.file_path(opts["local_directory"])
        # null (the default) asks for no dashboard; LocalCluster would still serve
        # the scheduler's HTTP routes on :8787 (on all interfaces, and with a
        # warning when another cluster holds that port): a free port on loopback.
        if opts.get("dashboard_address") is None:
            opts["dashboard_address"] = "127.0.0.1:0"
        # The workers of a cluster started here write to this terminal (see connect).
        opts.setdefault("silence_logs", logging.INFO if worker_logs else logging.CRITICAL)
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
            connect["client_keys"] = [self.file_path(p) for p in connect["client_keys"]]
        if connect.get("known_hosts"):
            connect["known_hosts"] = self.file_path(connect["known_hosts"])
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
                k: (resolve_secret(v, self._where(f"cluster.env.{k}")) if is_reference(v)
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


class _AliasError(yaml.YAMLError):
    """An anchor or alias in a config file (refused before anything is built)."""


class _PlainLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors (``&name``) and aliases (``*name``).

    An alias shares a node, and a walk over the parsed document (the secret
    scan, validation) visits it once per reference: nine nested levels of
    nine aliases each ("billion laughs", a few hundred bytes) make 9**9
    visits.  Config files need neither, so the first anchor or alias stops
    the parse, before any node is composed from it.
    """

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _AliasError(f"alias *{event.anchor} at {_mark(event)} is not allowed")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _AliasError(f"anchor &{anchor} at {_mark(event)} is not allowed")
        return super().compose_node(parent, index)


def _mark(event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


def parse_cluster_config(text: str, name: str = "<config>") -> ClusterConfig:
    """Parse and validate the YAML text of a cluster config; ``name`` is used in errors."""
    ctx = ConfigFile(name)
    try:
        doc = yaml.load(text, Loader=_PlainLoader)  # noqa: S506 - a safe loader, no aliases
    except _AliasError as exc:
        raise ConfigError(f"{name}: {exc} (config files are plain YAML: anchors and aliases "
                          "are refused, so that no document expands beyond its size)") from None
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{name}: {_yaml_problem(exc)} (config files are plain YAML: "
                          "tags such as !!python/... are not allowed)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{name}: must be a YAML mapping with a 'type' key, "
                          f"got {type(doc).__name__}")
    scan_secrets(doc, ctx)
    for key in doc:
        if key not in TOP_KEYS:
            raise ctx.error(str(key), f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
    if "type" not in doc:
        raise ctx.error("type", f"is required (one of {', '.join(CLUSTER_TYPES)})")
    kind = choice(*CLUSTER_TYPES)(doc["type"], ctx, "type")
    cluster = CLUSTER_SCHEMAS[kind](doc.get("cluster"), ctx, "cluster")
    if kind == "scheduler":
        address = cluster["address"]
        if not ADDRESS_PATTERN.fullmatch(address):
            raise ctx.error("cluster.address", f"must look like tls://host:8786, got {address!r}")
        if address.startswith("tls://") and "tls" not in cluster:
            raise ctx.error("cluster.tls", "is required for a tls:// address (ca_file, "
                                           "cert_file, key_file)")
        if "tls" in cluster and not address.startswith(("tls://", "wss://")):
            raise ctx.error("cluster.address", "must start with tls:// when 'tls' is given")
    scale: dict = {}
    if "scale" in doc:
        if kind not in SCALE_SCHEMAS:
            raise ctx.error("scale", f"is not used by a {kind} cluster")
        scale = SCALE_SCHEMAS[kind](doc["scale"], ctx, "scale")
        if len(scale) != 1:
            raise ctx.error("scale", f"give exactly one of {', '.join(sorted(_scale_keys(kind)))}")
    engine = ENGINE_SCHEMA(doc.get("engine"), ctx, "engine")
    wait = integer(0)(doc.get("wait_for_workers", 0), ctx, "wait_for_workers")
    timeout = number(0)(doc.get("timeout", 60), ctx, "timeout")
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
