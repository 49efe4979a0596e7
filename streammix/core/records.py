"""JSON records of the core's objects, and the schema checks of records read from files.

Used by the checkpoints of batch fits, by the saved state of online EM and
by model files.  Every record read back from a file goes through the checks
here before anything is built from it: types, shapes (against the number of
components and coefficients), finiteness, allowed names.  A failed check
raises :class:`~streammix.RecordError` naming the field as a path into the
record (``stats[0].s0``); the loader of the file adds the file's name.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from streammix.core.mstep import MStepOptions
from streammix.core.params import MixtureParams
from streammix.core.stats import SuffStats
from streammix.exceptions import RecordError

__all__ = ["stats_to_dict", "stats_from_dict", "options_to_dict", "options_from_dict",
           "params_from_record", "field", "sub", "within", "check_keys", "float_array", "number",
           "integer", "string", "boolean", "string_list", "as_list", "as_dict"]

_MAX_SHOWN = 60


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


def sub(where: str, key) -> str:
    """The path of ``key`` inside the field ``where`` (``a.b``, ``a[3]``)."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else str(key)


def _fail(where: str, problem: str) -> RecordError:
    return RecordError(f"field {where!r}: {problem}", field=where)


def within(exc: RecordError, where: str, cls=RecordError) -> RecordError:
    """``exc`` (of a record read inside another) with its field prefixed by ``where``."""
    if not where:
        return cls(str(exc), field=exc.field)
    inner = exc.field
    field_path = f"{where}.{inner}" if inner else where
    text = str(exc)
    prefix = f"field {inner!r}" if inner else ""
    if inner and text.startswith(prefix):
        text = f"field {field_path!r}" + text[len(prefix):]
    elif not inner:
        text = f"field {where!r}: {text}"
    return cls(text, field=field_path)


def as_dict(value, where: str) -> dict:
    """``value`` if it is a JSON object, else a :class:`RecordError`."""
    if not isinstance(value, dict):
        raise _fail(where or "(top level)", f"expected an object, got {type(value).__name__}")
    return value


def as_list(value, where: str, length: int | None = None) -> list:
    """``value`` if it is a JSON array (of ``length`` items), else a :class:`RecordError`."""
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise _fail(where, f"has {len(value)} entries, expected {length}")
    return value


def field(record: dict, key: str, where: str = "", *, optional: bool = False, default=None):
    """``record[key]``; a missing key is a :class:`RecordError` unless ``optional``."""
    as_dict(record, where)
    if key not in record:
        if optional:
            return default
        raise _fail(sub(where, key), "is missing")
    return record[key]


def check_keys(record: dict, where: str, allowed, required=()) -> None:
    """Refuse keys of ``record`` outside ``allowed`` and missing ``required`` ones."""
    as_dict(record, where)
    extra = sorted(str(k) for k in record if k not in allowed)
    if extra:
        raise _fail(sub(where, extra[0]) if where else extra[0],
                    f"is not a known field (known: {', '.join(sorted(allowed))})")
    for key in required:
        field(record, key, where)


def number(value, where: str, *, finite: bool = True, low: float | None = None,
           high: float | None = None, allow_none: bool = False):
    """``value`` as a float: a JSON number (not a bool, not a string)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(where, f"expected a number, got {_shown(value)}")
    value = float(value)
    if finite and not np.isfinite(value):
        raise _fail(where, f"must be finite, got {value!r}")
    if low is not None and not value >= low:
        raise _fail(where, f"must be >= {low}, got {value!r}")
    if high is not None and not value <= high:
        raise _fail(where, f"must be <= {high}, got {value!r}")
    return value


def integer(value, where: str, *, low: int | None = 0, allow_none: bool = False):
    """``value`` as an int: a JSON integer (not a bool, a float or a string)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(where, f"expected an integer, got {_shown(value)}")
    value = int(value)
    if low is not None and value < low:
        raise _fail(where, f"must be >= {low}, got {value}")
    return value


def boolean(value, where: str) -> bool:
    """``value`` if it is a JSON boolean."""
    if not isinstance(value, bool):
        raise _fail(where, f"expected true or false, got {_shown(value)}")
    return value


def string(value, where: str, *, choices=None, allow_none: bool = False):
    """``value`` if it is a string (one of ``choices``, when given)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {_shown(value)}")
    if choices is not None and value not in choices:
        raise _fail(where, f"must be one of {sorted(choices)}, got {_shown(value)}")
    return value


def string_list(value, where: str, length: int | None = None) -> list[str]:
    """``value`` if it is a list of strings (of ``length`` items)."""
    items = as_list(value, where, length)
    for i, item in enumerate(items):
        string(item, sub(where, i))
    return list(items)


def float_array(value, where: str, shape: tuple, *, finite: bool = True,
                positive: bool = False, non_negative: bool = False) -> np.ndarray:
    """``value`` (nested JSON arrays of numbers) as a float64 array of ``shape``.

    ``shape`` holds sizes or None (any size).  Ragged arrays, strings,
    booleans, nulls, a wrong shape and (with ``finite``) NaN or ±inf are
    refused with a :class:`RecordError` naming ``where``.
    """
    def walk(item, depth: int, path: str) -> None:
        if depth == len(shape):
            number(item, path, finite=False)
            return
        items = as_list(item, path)
        want = shape[depth]
        if want is not None and len(items) != want:
            raise _fail(path, f"has {len(items)} entries, expected {want}")
        for i, inner in enumerate(items):
            walk(inner, depth + 1, sub(path, i))

    walk(value, 0, where)
    arr = np.array(value, dtype=np.float64)
    if arr.ndim != len(shape):  # zero-length lists: np.array flattens ([] is 1-d)
        arr = arr.reshape(tuple(0 if s is None else s for s in shape))
    if finite and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        at = tuple(int(i) for i in bad)
        raise _fail(where, f"must be finite, has {float(arr[at])!r} at {at}")
    if positive and np.any(~(arr > 0)):
        raise _fail(where, "must be > 0")
    if non_negative and np.any(~(arr >= 0)):
        raise _fail(where, "must be >= 0")
    return arr


# ----------------------------------------------------------------- parameters
def params_from_record(d, where: str = "params", *, n_components: int | None = None,
                       n_coef: int | None = None) -> MixtureParams:
    """A :class:`MixtureParams` from its ``to_dict`` record, checked (shapes, finite, weights)."""
    check_keys(d, where, ("weights", "beta", "sigma2"), ("weights", "beta", "sigma2"))
    weights = float_array(d["weights"], sub(where, "weights"), (n_components,),
                          non_negative=True)
    m = weights.shape[0]
    if m < 1:
        raise _fail(sub(where, "weights"), "has no components")
    beta = float_array(d["beta"], sub(where, "beta"), (m, n_coef))
    sigma2 = float_array(d["sigma2"], sub(where, "sigma2"), (m,), positive=True)
    if abs(weights.sum() - 1.0) > 1e-9:
        raise _fail(sub(where, "weights"), f"must sum to 1, sum to {weights.sum()!r}")
    return MixtureParams(weights, beta, sigma2)


# ----------------------------------------------------------------- statistics
def stats_to_dict(s: SuffStats) -> dict:
    """A JSON-ready record of statistics (floats as ``repr``, so they read back exactly)."""
    return {"s0": s.s0.tolist(), "s2": s.s2.tolist(), "rx": s.rx.tolist(), "r0": s.r0.tolist(),
            "loglik": s.loglik, "class_loglik": s.class_loglik, "entropy": s.entropy,
            "sum_w": s.sum_w, "n_rows": s.n_rows, "center": s.center.tolist()}


_STATS_KEYS = ("s0", "s2", "rx", "r0", "loglik", "class_loglik", "entropy", "sum_w", "n_rows",
               "center")


def stats_from_dict(d: dict, where: str = "stats", *, n_components: int | None = None,
                    n_coef: int | None = None) -> SuffStats:
    """The statistics a :func:`stats_to_dict` record holds, checked against the schema.

    ``n_components`` and ``n_coef`` (when known: the parameter set the
    statistics were taken at) fix the shapes.  The log-likelihood terms may
    be non-finite (SQUAREM evaluates, then rejects, such points), and then
    so may the arrays; otherwise every number must be finite.
    """
    check_keys(d, where, _STATS_KEYS, _STATS_KEYS)
    loglik = number(d["loglik"], sub(where, "loglik"), finite=False)
    class_loglik = number(d["class_loglik"], sub(where, "class_loglik"), finite=False)
    entropy = number(d["entropy"], sub(where, "entropy"), finite=False)
    finite = bool(np.isfinite(loglik) and np.isfinite(class_loglik) and np.isfinite(entropy))
    s0 = float_array(d["s0"], sub(where, "s0"), (n_components,), finite=finite)
    m = s0.shape[0]
    center = float_array(d["center"], sub(where, "center"), (m, n_coef), finite=finite)
    p = center.shape[1]
    s2 = float_array(d["s2"], sub(where, "s2"), (m, p, p), finite=finite)
    rx = float_array(d["rx"], sub(where, "rx"), (m, p), finite=finite)
    r0 = float_array(d["r0"], sub(where, "r0"), (m,), finite=finite)
    sum_w = number(d["sum_w"], sub(where, "sum_w"), low=0.0)
    n_rows = integer(d["n_rows"], sub(where, "n_rows"))
    return SuffStats(s0, s2, rx, r0, loglik, class_loglik, entropy, sum_w, n_rows, center)


# --------------------------------------------------------------- M-step options
def options_to_dict(o: MStepOptions) -> dict:
    """A JSON-ready record of M-step options."""
    d = dataclasses.asdict(o)
    for k in ("fixed_sigma2", "prior_mean"):
        if d[k] is not None:
            d[k] = np.asarray(d[k], float).tolist()
    return d


_NOISE = ("per_component", "shared", "fixed")


def options_from_dict(d: dict, where: str = "options", *,
                      n_components: int | None = None) -> MStepOptions:
    """The M-step options an :func:`options_to_dict` record holds, checked."""
    names = [f.name for f in dataclasses.fields(MStepOptions)]
    check_keys(d, where, names)
    d = dict(d)
    if "noise" in d:
        string(d["noise"], sub(where, "noise"), choices=_NOISE)
    if d.get("fixed_sigma2") is not None:
        d["fixed_sigma2"] = float_array(d["fixed_sigma2"], sub(where, "fixed_sigma2"),
                                        (n_components,), positive=True)
    if d.get("prior_mean") is not None:
        d["prior_mean"] = float_array(d["prior_mean"], sub(where, "prior_mean"),
                                      (None,) * np.ndim(d["prior_mean"]))
    for name in ("variance_floor", "ridge", "prior_dof", "prior_scale"):
        if name in d:
            d[name] = number(d[name], sub(where, name), low=0.0)
    if "dirichlet_alpha" in d:
        d["dirichlet_alpha"] = number(d["dirichlet_alpha"], sub(where, "dirichlet_alpha"),
                                      low=1.0)
    for name in ("intercept", "df_correction"):
        if name in d:
            boolean(d[name], sub(where, name))
    if "shared" in d:  # design columns shared by all components
        d["shared"] = tuple(integer(k, sub(sub(where, "shared"), i))
                            for i, k in enumerate(as_list(d["shared"], sub(where, "shared"))))
    try:
        return MStepOptions(**d)
    except ValueError as exc:
        raise _fail(where, str(exc)) from None
