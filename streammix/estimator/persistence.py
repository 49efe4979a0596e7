"""Model files: the one writer and the one reader of the estimator's JSON record.

A model file holds the hyper-parameters, the fitted state (with the
standard errors, when computed) and, when ``streammix fit`` wrote it, the
columns the model was fitted on (``"data"``).  Floats are written by
``json`` with ``repr`` precision, so a loaded model equals the saved one.
"""

from __future__ import annotations

import json

import numpy as np

from streammix.atomic import atomic_write_text
from streammix.core.params import MixtureParams
from streammix.estimator import base
from streammix.estimator.inference import set_inference

__all__ = ["MODEL_FORMAT", "MODEL_VERSION", "DATA_KEY", "hyperparameters_record", "to_dict",
           "from_dict", "save", "read_model_file"]

MODEL_FORMAT = "streammix-model"
MODEL_VERSION = 1

#: Key of the model file's record of the columns it was fitted on (read by predict and info).
DATA_KEY = "data"


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


def hyperparameters_record(model) -> dict:
    """The JSON-ready hyper-parameters of ``model`` (not the engine)."""
    params = {}
    for name, value in model.get_params().items():
        if name == "engine":
            continue
        if isinstance(value, MixtureParams):
            value = {"__mixture_params__": value.to_dict()}
        elif name == "random_state" and not (
                value is None or isinstance(value, (int, np.integer))):
            value = None  # a Generator cannot be stored
        params[name] = _jsonable(value)
    return params


def to_dict(model) -> dict:
    """A JSON-ready record of the hyper-parameters and the fitted state."""
    record = {"format": MODEL_FORMAT, "version": MODEL_VERSION,
              "hyperparameters": hyperparameters_record(model)}
    if hasattr(model, "params_"):
        fitted = {name: _jsonable(getattr(model, name, None)) for name in base.SAVED}
        fitted["params"] = model.params_.to_dict()
        if hasattr(model, "vcov_"):
            fitted["inference"] = {"method": model.se_method_, "names": model.vcov_names_,
                                   "vcov": np.asarray(model.vcov_).tolist(),
                                   "score_gap": model.score_gap_}
        record["fitted"] = fitted
    return record


def from_dict(cls, record: dict):
    """An estimator of class ``cls`` from a :func:`to_dict` record."""
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
        for name in base.SAVED:
            setattr(model, name, fitted[name])
        names = model.__dict__.pop("feature_names_in_")  # None: fitted on an array
        if names is not None:
            model.feature_names_in_ = np.asarray([str(n) for n in names], dtype=object)
        base.set_public_arrays(model)
        inference = fitted.get("inference")
        if inference is not None:
            set_inference(model, np.asarray(inference["vcov"], float), inference["method"],
                          inference["score_gap"])
    return model


def save(model, path, data: dict | None = None) -> None:
    """Write ``model`` to a JSON file atomically; ``data`` records the columns it was fitted on."""
    record = to_dict(model)
    if data is not None:
        record[DATA_KEY] = data
    atomic_write_text(path, json.dumps(record, indent=1, allow_nan=False))


def read_model_file(path, cls, *, fitted: bool = False):
    """The estimator (of class ``cls``) saved in ``path``, and its record of data columns.

    Returns ``(model, data)``; ``data`` is None when the file has no such
    record.  A file that is not a streammix model raises ``ValueError``
    naming the file (``FileNotFoundError`` when it is missing); with
    ``fitted=True``, so does a model that is not fitted.
    """
    with open(path, encoding="utf-8") as fh:
        try:
            record = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a valid model file ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a streammix model file")
    try:
        model = from_dict(cls, record)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a valid streammix model file ({exc!r} is wrong)") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if fitted and not hasattr(model, "params_"):
        raise ValueError(f"{path}: the model is not fitted")
    return model, record.get(DATA_KEY)
