"""streammix: mixtures of linear regressions by EM on data larger than memory."""

from __future__ import annotations

import logging

from .dask_engine import DaskEngine
from .dask_source import DaskSource
from .em import ComponentCollapseError, ConvergenceWarning
from .engine import InProcessEngine
from .model import MixtureOfLinearRegressions, NotFittedError
from .params import MixtureParams
from .parquet import ParquetSource
from .selection import SelectionResult, select_components
from .sources import ArraySource
from .stats import SuffStats, estep
from .validation import DataError

__all__ = [
    "MixtureOfLinearRegressions", "MixtureParams", "SuffStats", "estep", "ArraySource",
    "InProcessEngine", "ConvergenceWarning", "ComponentCollapseError", "DataError",
    "NotFittedError", "ParquetSource", "DaskEngine", "DaskSource", "select_components",
    "SelectionResult",
]

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
