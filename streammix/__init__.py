"""streammix: mixtures of linear regressions by EM on data larger than memory.

The public face of the package: the estimator, model selection, the sources
of data (arrays, Dask collections, Parquet lakes, streams), the engines that
run passes, and every error and warning.
"""

from __future__ import annotations

import importlib
import logging
import threading

#: Where each public name lives.  They are imported when first used
#: (``streammix.MixtureOfLinearRegressions``, ``from streammix import DataError``):
#: the estimator brings scikit-learn, scipy and pandas, seconds of start-up that
#: ``streammix --help``, a Dask worker or ``import streammix.atomic`` do not need.
_HOMES = {
    "MixtureParams": "streammix.core.params",
    "SuffStats": "streammix.core.stats", "estep": "streammix.core.stats",
    "ArraySource": "streammix.data.arrays",
    "DaskSource": "streammix.data.dask_collections",
    "regroup": "streammix.data.parquet.regroup",
    "ParquetSource": "streammix.data.parquet.source",
    "ArrowStreamSource": "streammix.data.streams", "FolderStream": "streammix.data.streams",
    "StreamBatch": "streammix.data.streams",
    "DaskEngine": "streammix.engines.dask_engine",
    "InProcessEngine": "streammix.engines.inprocess",
    "MixtureOfLinearRegressions": "streammix.estimator.model",
    "SelectionResult": "streammix.estimator.selection",
    "select_components": "streammix.estimator.selection",
    **{name: "streammix.exceptions" for name in (
        "CheckpointError", "ChunkCrashError", "ClusterLostError", "ClusterTimeoutError",
        "ComponentCollapseError", "ComponentCollapseWarning", "ConfigError",
        "ConvergenceWarning", "CorruptCheckpointError", "CredentialWarning", "DataError",
        "FeatureNamesWarning", "InferenceWarning", "ModelFileError", "NoClientError",
        "NotFittedError", "RecordError", "SourceChangedError", "SpuriousOptimumWarning")},
}
_IMPORT_LOCK = threading.RLock()

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


#: Sub-packages and modules reachable as attributes after a plain ``import streammix``
#: (``streammix.core.kernel.set_enabled(False)``), as when every public name was imported
#: with the package.
_SUBMODULES = frozenset({"algorithms", "atomic", "checkpoint_folder", "cli", "config", "core",
                         "data", "engines", "estimator", "exceptions", "redact", "reports"})


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None and name in _SUBMODULES:
        with _IMPORT_LOCK:
            for public in __all__:  # what importing the package used to import
                getattr(importlib.import_module(_HOMES[public]), public)
            return importlib.import_module(f"{__name__}.{name}")
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _IMPORT_LOCK:
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
