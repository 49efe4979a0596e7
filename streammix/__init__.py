"""streammix: mixtures of linear regressions by EM on data larger than memory.

The public face of the package: the estimator, model selection, the sources
of data (arrays, Dask collections, Parquet lakes, streams), the engines that
run passes, and every error and warning.
"""

from __future__ import annotations

import logging

from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, estep
from streammix.data.arrays import ArraySource
from streammix.data.dask_collections import DaskSource
from streammix.data.parquet.regroup import regroup
from streammix.data.parquet.source import ParquetSource
from streammix.data.streams import ArrowStreamSource, FolderStream, StreamBatch
from streammix.engines.dask_engine import DaskEngine
from streammix.engines.inprocess import InProcessEngine
from streammix.estimator.model import MixtureOfLinearRegressions
from streammix.estimator.selection import SelectionResult, select_components
from streammix.exceptions import (
    CheckpointError,
    ChunkCrashError,
    ClusterLostError,
    ClusterTimeoutError,
    ComponentCollapseError,
    ComponentCollapseWarning,
    ConfigError,
    ConvergenceWarning,
    CorruptCheckpointError,
    CredentialWarning,
    DataError,
    FeatureNamesWarning,
    InferenceWarning,
    ModelFileError,
    NoClientError,
    NotFittedError,
    RecordError,
    SourceChangedError,
    SpuriousOptimumWarning,
)

__all__ = [
    "MixtureOfLinearRegressions", "MixtureParams", "SuffStats", "estep", "select_components",
    "regroup",
    "SelectionResult",
    # sources and engines
    "ArraySource", "DaskSource", "ParquetSource", "ArrowStreamSource", "FolderStream",
    "StreamBatch", "InProcessEngine", "DaskEngine",
    # errors and warnings
    "DataError", "NotFittedError", "ConvergenceWarning", "ComponentCollapseError",
    "ComponentCollapseWarning", "SpuriousOptimumWarning", "InferenceWarning", "CheckpointError",
    "ConfigError", "NoClientError", "ChunkCrashError", "ClusterTimeoutError",
    "ClusterLostError",
    "FeatureNamesWarning", "RecordError", "ModelFileError", "CorruptCheckpointError",
    "CredentialWarning", "SourceChangedError",
]

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
