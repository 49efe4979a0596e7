"""Cluster configuration files (documented as ``streammix.config``).

The code lives in :mod:`streammix.engines.cluster_config`; this module keeps
the documented import path ``from streammix.config import load_cluster_config``.
"""

from __future__ import annotations

from streammix.engines.cluster_config import (
    CLUSTER_TYPES,
    DEFAULT_LOCAL_CONFIG,
    ClusterConfig,
    default_cluster_config,
    load_cluster_config,
    parse_cluster_config,
    resolve_secret,
)
from streammix.exceptions import ConfigError

__all__ = [
    "ClusterConfig", "ConfigError", "load_cluster_config", "parse_cluster_config",
    "default_cluster_config", "resolve_secret", "CLUSTER_TYPES", "DEFAULT_LOCAL_CONFIG",
]
