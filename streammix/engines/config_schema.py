"""The rules of cluster config files: validators, the schema of each kind, secrets.

A validator is ``check(value, config_file, key) -> value`` raising
:class:`~streammix.ConfigError` that names the file and the key.  A key that
looks secret must hold a reference (``env:VAR`` or ``file:/path``, resolved by
:func:`resolve_secret` when connecting), and values that look like secrets
(PEM blocks, cloud keys) are refused anywhere (:func:`scan_secrets`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streammix.exceptions import ConfigError

__all__ = [
    "ADDRESS_PATTERN",
    "CLUSTER_SCHEMAS",
    "ConfigFile",
    "ENGINE_SCHEMA",
    "SCALE_SCHEMAS",
    "TOP_KEYS",
    "choice",
    "file_path",
    "integer",
    "is_reference",
    "number",
    "resolve_secret",
    "scan_secrets",
]


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
ADDRESS_PATTERN = re.compile(r"(tcp|tls|ws|wss|ucx|inproc)://\S+")

# ------------------------------------------------------------------ validators
# A validator is ``check(value, ctx, key) -> value`` raising ConfigError.


class ConfigFile:
    """The config file being checked: names it in every error."""

    def __init__(self, name: str):
        self.name = name

    def error(self, key: str, problem: str) -> ConfigError:
        where = f"key '{key}'" if key else "top level"
        return ConfigError(f"{self.name}: {where}: {problem}")


def integer(low: int = 0):
    """A validator: an integer >= ``low``."""
    def check(value, ctx, key):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ctx.error(key, f"must be an integer >= {low}, got {value!r}")
        return value
    return check


def number(low: float = 0.0):
    """A validator: a number >= ``low``."""
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


def file_path(value, ctx, key):
    """A validator: a file path (one line, not the contents of a file)."""
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


def choice(*options):
    """A validator: one of ``options``."""
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
    "n_workers": integer(1), "threads_per_worker": integer(1), "processes": _bool,
    "memory_limit": _memory, "dashboard_address": _nullable(_str),
    "local_directory": file_path, "host": _str, "scheduler_port": integer(0),
})
_TLS = _mapping({"ca_file": file_path, "cert_file": file_path, "key_file": file_path,
                 "require_encryption": _bool}, required=("ca_file", "cert_file", "key_file"))
_SCHEDULER = _mapping({"address": _str, "tls": _TLS}, required=("address",))
_SSH = _mapping({
    "hosts": _str_list(2),
    "connect_options": _mapping({
        "username": _str, "port": integer(1), "known_hosts": _nullable(file_path),
        "client_keys": _str_list(1), "password": _secret, "passphrase": _secret,
    }),
    "worker_options": _mapping({"n_workers": integer(1), "nthreads": integer(1),
                                "memory_limit": _memory}),
    "scheduler_options": _mapping({"port": integer(0), "dashboard_address": _nullable(_str)}),
    "remote_python": _str,
}, required=("hosts",))
_SLURM = _mapping({
    "cores": integer(1), "memory": _memory, "processes": integer(1), "queue": _str,
    "account": _str, "walltime": _str, "job_extra_directives": _str_list(),
    "job_script_prologue": _str_list(), "local_directory": file_path, "log_directory": file_path,
    "interface": _str, "python": _str, "worker_extra_args": _str_list(),
}, required=("cores", "memory"))
_KUBERNETES = _mapping({
    "name": _str, "namespace": _str, "image": _str, "n_workers": integer(0),
    "resources": _mapping({"requests": _str_map, "limits": _str_map}),
    "env": _str_map,
})
CLUSTER_SCHEMAS = {"local": _LOCAL, "scheduler": _SCHEDULER, "ssh": _SSH, "slurm": _SLURM,
                    "kubernetes": _KUBERNETES}
SCALE_SCHEMAS = {
    "slurm": _mapping({"jobs": integer(1), "workers": integer(1), "adapt": _mapping(
        {"minimum_jobs": integer(0), "maximum_jobs": integer(1)}, required=("maximum_jobs",))}),
    "kubernetes": _mapping({"workers": integer(1), "adapt": _mapping(
        {"minimum": integer(0), "maximum": integer(1)}, required=("maximum",))}),
}
TOP_KEYS = {"type", "cluster", "scale", "engine", "wait_for_workers", "timeout"}
ENGINE_SCHEMA = _mapping({"cache": _bool, "retries": integer(0), "worker_timeout": number(0),
                          "pass_timeout": number(0)})


def scan_secrets(node: Any, ctx: ConfigFile, key: str = "") -> None:
    """Reject literal secrets anywhere in the parsed document."""
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{key}.{k}" if key else str(k)
            if isinstance(k, str) and _SECRET_KEY.search(k) and v is not None:
                if not (isinstance(v, str) and is_reference(v)):
                    raise ctx.error(sub, "looks like a secret and holds a literal value; config "
                                         "files carry no secrets: write env:VAR_NAME (read from "
                                         "the environment) or file:/path/to/secret instead")
            scan_secrets(v, ctx, sub)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            scan_secrets(v, ctx, f"{key}[{i}]")
    elif isinstance(node, str):
        for pattern, what in _SECRET_VALUES:
            if pattern.search(node):
                raise ctx.error(key, f"holds {what}; config files carry no secrets: give a file "
                                     "path or env:VAR_NAME instead")


def is_reference(value: str) -> bool:
    """Whether ``value`` is a secret reference (``env:VAR`` or ``file:/path``)."""
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
