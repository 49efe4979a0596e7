"""Model files: the one writer and the one reader of the estimator's JSON record.

A model file holds the hyper-parameters, the fitted state (with the
standard errors, when computed) and, when ``streammix fit`` wrote it, the
columns the model was fitted on (``"data"``).  Floats are written by
``json`` with ``repr`` precision, so a loaded model equals the saved one.
"""

from __future__ import annotations

import json
import os

import numpy as np

from streammix.atomic import atomic_write_text
from streammix.core.params import MixtureParams
from streammix.core.records import (
    as_dict,
    as_list,
    boolean,
    check_keys,
    float_array,
    integer,
    number,
    params_from_record,
    string,
    string_list,
    sub,
    within,
)
from streammix.estimator import base
from streammix.estimator.inference import set_inference
from streammix.exceptions import ModelFileError, RecordError
from streammix.redact import printable, redact

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
        if getattr(model, "formula_", None) is not None:  # its levels: predict encodes with them
            fitted["formula"] = model.formula_.to_record()
        if hasattr(model, "concomitant_coef_"):
            fitted["concomitant"] = {"coef": np.asarray(model.concomitant_coef_).tolist(),
                                     "names": list(model.concomitant_names_)}
            if getattr(model, "concomitant_formula_", None) is not None:  # the gate's levels
                fitted["concomitant"]["formula"] = model.concomitant_formula_.to_record()
        if hasattr(model, "n_groups_"):  # a fit with grouped classes
            fitted["n_groups"] = int(model.n_groups_)
        record["fitted"] = fitted
    return record


_SAVED_CHECKS = {
    "n_features_in_": lambda v, w: integer(v, w, low=0),
    "n_rows_": lambda v, w: integer(v, w, low=0),
    "sum_weights_": lambda v, w: number(v, w, low=0.0),
    "loglik_": lambda v, w: number(v, w),
    "objective_": lambda v, w: number(v, w),
    "n_iter_": lambda v, w: integer(v, w, low=0),
    "converged_": lambda v, w: boolean(v, w),
    "class_loglik_": lambda v, w: number(v, w, allow_none=True),
    "entropy_": lambda v, w: number(v, w, allow_none=True),
    "variance_floor_": lambda v, w: number(v, w, low=0.0),
}
_SE_METHODS = ("louis", "opg", "sandwich")


def _hyperparameters(cls, hyper, where: str):
    """The estimator of class ``cls`` built from checked hyper-parameters."""
    hyper = dict(as_dict(hyper, where))
    known = set(cls().get_params()) - {"engine"}
    check_keys(hyper, where, known)
    init = hyper.get("init")
    if isinstance(init, dict) and "__mixture_params__" in init:
        hyper["init"] = params_from_record(init["__mixture_params__"],
                                           f"{where}.init.__mixture_params__")
    for name in ("n_components", "max_iter", "n_init", "chunk_rows", "init_sample_size"):
        if name in hyper:  # integers, not floats or strings
            integer(hyper[name], sub(where, name))
    model = cls(**hyper)
    try:
        base.check_hyperparameters(model)
    except ValueError as exc:
        name = str(exc).split()[0]
        name = name if name in known else "?"
        raise ModelFileError(f"field {sub(where, name)!r}: {exc}",
                             field=sub(where, name)) from None
    return model


def _fitted(model, fitted, where: str) -> None:
    """Set the fitted state of ``model`` from a checked ``fitted`` record."""
    check_keys(fitted, where, set(base.SAVED) | {"params", "inference", "concomitant", "formula",
                                                 "n_groups"}, set(base.SAVED) | {"params"})
    values = {name: check(fitted[name], sub(where, name))
              for name, check in _SAVED_CHECKS.items()}
    p = values["n_features_in_"]
    names = fitted["feature_names_in_"]  # None: fitted on an array
    if names is not None:
        names = string_list(names, sub(where, "feature_names_in_"), p)
    values["feature_names_in_"] = names
    history = as_list(fitted["history_"], sub(where, "history_"))
    for i, item in enumerate(history):
        as_dict(item, sub(sub(where, "history_"), i))
    values["history_"] = history
    n_coef = p + (1 if model.fit_intercept else 0)
    params = params_from_record(fitted["params"], sub(where, "params"), n_coef=n_coef)
    m = params.n_components
    at = sub(sub(where, "params"), "weights")
    if m > model.n_components or (m < model.n_components and model.on_collapse == "error"):
        raise ModelFileError(f"field {at!r}: has {m} components, the hyper-parameter "
                             f"n_components is {model.n_components}", field=at)
    started = [h.get("n_components") for h in history[:1] if "iteration" in h]
    if started and started[0] != model.n_components:
        raise ModelFileError(f"field 'hyperparameters.n_components': is {model.n_components}, "
                             f"but the fit started with {started[0]!r} components "
                             f"({where}.history_[0])", field="hyperparameters.n_components")
    if model.noise == "shared" and np.ptp(params.sigma2) > 1e-12 * params.sigma2.max():
        raise ModelFileError(f"field {sub(sub(where, 'params'), 'sigma2')!r}: noise is "
                             "'shared', but the components have different variances",
                             field=f"{where}.params.sigma2")
    model.params_ = params
    for name in base.SAVED:
        if name != "feature_names_in_":
            setattr(model, name, values[name])
    if values["feature_names_in_"] is not None:
        model.feature_names_in_ = np.asarray(values["feature_names_in_"], dtype=object)
    base.set_public_arrays(model)
    if fitted.get("formula") is not None:  # files written before formulas have none
        model.formula_ = _formula(fitted["formula"], sub(where, "formula"), model)
    if fitted.get("n_groups") is not None:  # a fit with grouped classes
        model.n_groups_ = integer(fitted["n_groups"], sub(where, "n_groups"), low=1)
    gate = fitted.get("concomitant")
    if gate is not None:  # the gate of a fit with concomitant variables
        at = sub(where, "concomitant")
        check_keys(gate, at, ("coef", "names", "formula"), ("coef", "names"))
        gate_names = string_list(gate["names"], sub(at, "names"))
        model.concomitant_coef_ = float_array(gate["coef"], sub(at, "coef"),
                                              (m, len(gate_names) + 1))
        model.concomitant_names_ = gate_names
        if gate.get("formula") is not None:  # a gate formula: its levels encode new z
            model.concomitant_formula_ = _gate_formula(gate["formula"], sub(at, "formula"),
                                                       gate_names)
    inference = fitted.get("inference")
    if inference is not None:
        at = sub(where, "inference")
        check_keys(inference, at, ("method", "names", "vcov", "score_gap"),
                   ("method", "names", "vcov"))
        method = string(inference["method"], sub(at, "method"), choices=_SE_METHODS)
        names = string_list(inference["names"], sub(at, "names"))
        vcov = float_array(inference["vcov"], sub(at, "vcov"), (len(names), len(names)))
        gap = number(inference.get("score_gap", 0.0), sub(at, "score_gap"), finite=False)
        try:
            set_inference(model, vcov, method, gap)
        except ValueError as exc:
            raise ModelFileError(f"field {sub(at, 'vcov')!r}: {exc}",
                                 field=sub(at, "vcov")) from None


def _formula(record, where: str, model):
    """The learned formula design of a ``fitted.formula`` record, checked against the model."""
    design = _design_record(record, where)
    names = [str(n) for n in getattr(model, "feature_names_in_", [])]
    if design.feature_names != names or design.intercept != model.fit_intercept:
        raise ModelFileError(f"field {sub(where, 'columns')!r}: the formula's columns "
                             f"{design.columns} are not the model's features {names} "
                             f"(fit_intercept={model.fit_intercept})", field=sub(where, "columns"))
    return design


def _design_record(record, where: str):
    """A learned :class:`~streammix.data.formula.FormulaDesign` from its checked record."""
    from streammix.data.formula import FormulaDesign
    check_keys(record, where, ("formula", "levels", "columns"), ("formula", "levels", "columns"))
    string(record["formula"], sub(where, "formula"))
    levels = as_dict(record["levels"], sub(where, "levels"))
    for name, values in levels.items():
        as_list(values, sub(sub(where, "levels"), name))
    string_list(record["columns"], sub(where, "columns"))
    try:
        design = FormulaDesign.from_record(record)
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"field {where!r}: {exc}", field=where) from None
    return design


def _gate_formula(record, where: str, names: list[str]):
    """The learned design of a ``fitted.concomitant.formula`` record, checked against the
    gate's names (its design columns without the intercept)."""
    design = _design_record(record, where)
    if design.feature_names != names or not design.intercept:
        raise ModelFileError(f"field {sub(where, 'columns')!r}: the formula's columns "
                             f"{design.columns} are not the gate's intercept and {names}",
                             field=sub(where, "columns"))
    return design


def from_dict(cls, record: dict, where: str = ""):
    """An estimator of class ``cls`` from a :func:`to_dict` record, checked against the schema.

    Every field is checked before use: known hyper-parameters with valid
    values, fitted arrays of the shapes the hyper-parameters and
    ``n_features_in_`` give, finite numbers, names that are strings.  Raises
    :class:`~streammix.ModelFileError` naming the field (``where`` prefixes
    it, for a record inside another file).
    """
    try:
        return _from_dict(cls, record)
    except RecordError as exc:
        raise within(exc, where, ModelFileError) from None


def _from_dict(cls, record):
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise ModelFileError("not a streammix model record (missing format tag)",
                             field="format")
    if record.get("version") != MODEL_VERSION:
        raise ModelFileError(f"field 'version': unsupported model version "
                             f"{record.get('version')!r}", field="version")
    check_keys(record, "", ("format", "version", "hyperparameters", "fitted", DATA_KEY),
               ("hyperparameters",))
    model = _hyperparameters(cls, record["hyperparameters"], "hyperparameters")
    fitted = record.get("fitted")
    if fitted is not None:
        _fitted(model, fitted, "fitted")
    data = record.get(DATA_KEY)
    if data is not None:
        _data_record(model, data)
    return model


def _data_record(model, data) -> None:
    """The record of the columns a model was fitted on, checked against the model."""
    check_keys(data, DATA_KEY, ("path", "target", "features", "weight", "filter", "formula",
                                "concomitant"), ("target", "features"))
    gate = data.get("concomitant")  # z columns, or a gate formula "~ z1 + C(segment)"
    if isinstance(gate, str):
        string(gate, "data.concomitant")
    elif gate is not None:
        string_list(gate, "data.concomitant")
    string(data.get("path"), "data.path", allow_none=True)
    string(data.get("filter"), "data.filter", allow_none=True)
    string(data.get("formula"), "data.formula", allow_none=True)
    string(data["target"], "data.target")
    string(data.get("weight"), "data.weight", allow_none=True)
    n = getattr(model, "n_features_in_", None)
    string_list(data["features"], "data.features", n)


def save(model, path, data: dict | None = None) -> None:
    """Write ``model`` to a JSON file atomically; ``data`` records the columns it was fitted on."""
    record = to_dict(model)
    if data is not None:
        record[DATA_KEY] = redact(data)
    atomic_write_text(path, json.dumps(record, indent=1, allow_nan=False))


def read_model_file(path, cls, *, fitted: bool = False):
    """The estimator (of class ``cls``) saved in ``path``, and its record of data columns.

    Returns ``(model, data)``; ``data`` is None when the file has no such
    record.  The record is checked against the schema (:func:`from_dict`);
    a file that is not a valid streammix model raises
    :class:`~streammix.ModelFileError` (a ``ValueError``) naming the file
    and the field (``FileNotFoundError`` when it is missing); with
    ``fitted=True``, so does a model that is not fitted.
    """
    shown = printable(redact(os.fspath(path)))
    with open(path, encoding="utf-8") as fh:
        try:
            record = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{shown}: not a valid model file ({exc})",
                                 file=shown) from None
    if not isinstance(record, dict):
        raise ModelFileError(f"{shown}: not a streammix model file", file=shown)
    try:
        model = from_dict(cls, record)
    except RecordError as exc:
        raise ModelFileError(f"{shown}: {printable(str(exc))}", field=exc.field,
                             file=shown) from None
    if fitted and not hasattr(model, "params_"):
        raise ModelFileError(f"{shown}: the model is not fitted", field="fitted", file=shown)
    return model, record.get(DATA_KEY)
