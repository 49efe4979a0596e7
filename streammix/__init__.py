"""streammix: mixtures of linear regressions by EM on data larger than memory."""

from __future__ import annotations

import logging

from streammix.algorithms.em import ComponentCollapseError, ConvergenceWarning
from streammix.core.checks import DataError
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats, estep
from streammix.data.arrays import ArraySource
from streammix.data.dask_collections import DaskSource
from streammix.data.parquet.source import ParquetSource
from streammix.engines.dask_engine import DaskEngine
from streammix.engines.inprocess import InProcessEngine
from streammix.estimator.model import MixtureOfLinearRegressions, NotFittedError
from streammix.estimator.selection import SelectionResult, select_components

__all__ = [
    "MixtureOfLinearRegressions", "MixtureParams", "SuffStats", "estep", "ArraySource",
    "InProcessEngine", "ConvergenceWarning", "ComponentCollapseError", "DataError",
    "NotFittedError", "ParquetSource", "DaskEngine", "DaskSource", "select_components",
    "SelectionResult",
]

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
