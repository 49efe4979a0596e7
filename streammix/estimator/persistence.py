"""Saving and loading the estimator: an exact JSON record of settings and fit.

A mixin of :class:`streammix.MixtureOfLinearRegressions`.  Floats are written
by ``json`` with ``repr`` precision, so a loaded model equals the saved one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from streammix.atomic import atomic_write_text
from streammix.core.params import MixtureParams

if TYPE_CHECKING:
    from streammix.estimator.model import MixtureOfLinearRegressions

__all__ = ["PersistenceMixin", "MODEL_FORMAT", "MODEL_VERSION"]

MODEL_FORMAT = "streammix-model"
MODEL_VERSION = 1


def _jsonable(value):
    """``value`` with numpy scalars and arrays, and tuples, turned into JSON types.

    So that a hyper-parameter given as ``np.int64(2)``, an array or a tuple
    is stored, and compares equal after a JSON round trip.
    """
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class PersistenceMixin:
    """``to_dict``/``from_dict`` and ``save``/``load``."""

    _FITTED = ("n_features_in_", "feature_names_in_", "n_rows_", "sum_weights_", "loglik_",
               "objective_", "n_iter_", "converged_", "history_", "class_loglik_", "entropy_",
               "variance_floor_")

    def to_dict(self) -> dict:
        """A JSON-ready record of the hyper-parameters and the fitted state."""
        params = {}
        for name, value in self.get_params().items():
            if name == "engine":
                continue
            if isinstance(value, MixtureParams):
                value = {"__mixture_params__": value.to_dict()}
            elif name == "random_state" and not (
                    value is None or isinstance(value, (int, np.integer))):
                value = None  # a Generator cannot be stored
            params[name] = _jsonable(value)
        record = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "hyperparameters": params}
        if hasattr(self, "params_"):
            fitted = {name: getattr(self, name) for name in self._FITTED}
            fitted["params"] = self.params_.to_dict()
            if hasattr(self, "vcov_"):
                fitted["inference"] = {"method": self.se_method_, "names": self.vcov_names_,
                                       "vcov": np.asarray(self.vcov_).tolist(),
                                       "score_gap": self.score_gap_}
            record["fitted"] = fitted
        return record

    @classmethod
    def from_dict(cls, record: dict) -> MixtureOfLinearRegressions:
        if record.get("format") != MODEL_FORMAT:
            raise ValueError("not a streammix model record (missing format tag)")
        if record.get("version") != MODEL_VERSION:
            raise ValueError(f"unsupported model version {record.get('version')!r}")
        hyper = dict(record["hyperparameters"])
        if isinstance(hyper.get("init"), dict) and "__mixture_params__" in hyper["init"]:
            hyper["init"] = MixtureParams.from_dict(hyper["init"]["__mixture_params__"])
        model = cls(**hyper)
        fitted = record.get("fitted")
        if fitted is not None:
            model.params_ = MixtureParams.from_dict(fitted["params"])
            for name in cls._FITTED:
                setattr(model, name, fitted[name])
            model._set_public_arrays()
            inference = fitted.get("inference")
            if inference is not None:
                model._set_inference(np.asarray(inference["vcov"], float), inference["method"],
                                     inference["score_gap"])
        return model

    def save(self, path) -> None:
        """Write the model to a JSON file atomically (floats round-trip exactly)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def load(cls, path) -> MixtureOfLinearRegressions:
        """Read a model written by :meth:`save`."""
        with open(path, encoding="utf-8") as fh:
            try:
                record = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not a valid model file ({exc})") from None
        return cls.from_dict(record)
