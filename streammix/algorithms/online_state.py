"""The schema check of a saved online-EM state (``OnlineEM.to_dict`` records).

:func:`checked_state` reads a record that came from a file (a stream's
``state.json``) and returns its parts, built and checked: the parameters,
statistics and averaging sums with the shapes of the parameters, finite
numbers, counts that are non-negative integers, a ledger of known fields,
and a random generator whose bit generator is one of :data:`BIT_GENERATORS`
(a name read from a file is never looked up in ``numpy.random``).  A failed
check raises :class:`~streammix.RecordError` naming the field.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from streammix.algorithms.online_settings import OnlineSettings
from streammix.core.records import (
    as_dict,
    as_list,
    boolean,
    check_keys,
    field,
    float_array,
    integer,
    number,
    options_from_dict,
    params_from_record,
    stats_from_dict,
    string,
    sub,
)
from streammix.exceptions import RecordError

__all__ = ["checked_state", "history_records", "BIT_GENERATORS", "STATE_KEYS"]

#: The bit generators a saved state may name (numpy's, by their class names).
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                  "MT19937": np.random.MT19937, "Philox": np.random.Philox,
                  "SFC64": np.random.SFC64}

STATE_KEYS = ("format", "version", "settings", "options", "fit_intercept", "params", "stats",
              "n_batches", "n_rows", "sum_w", "n_msteps", "n_averaged", "avg_sum", "totals",
              "history", "ledger", "rng")
_TOTALS = ("loglik", "class_loglik", "entropy", "sum_w", "n_rows")
_LEDGER_STATUS = ("reading", "done", "quarantined")
_LEDGER_FIELDS = ("next", "status", "name", "digest", "reason")


def _settings(d, where: str) -> OnlineSettings:
    names = [f.name for f in dataclasses.fields(OnlineSettings)]
    check_keys(d, where, names)
    for name in ("step_alpha", "step_offset"):
        if name in d:
            number(d[name], sub(where, name))
    if "forget" in d:
        number(d["forget"], sub(where, "forget"), allow_none=True)
    if "average" in d and not isinstance(d["average"], bool):
        integer(d["average"], sub(where, "average"))
    if "burn_in" in d:
        integer(d["burn_in"], sub(where, "burn_in"), allow_none=True)
    if "history_size" in d:
        integer(d["history_size"], sub(where, "history_size"), low=1)
    try:
        return OnlineSettings(**d)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"field {where!r}: {exc}", field=where) from None


def _rng(d, where: str) -> np.random.Generator:
    as_dict(d, where)
    name = string(field(d, "bit_generator", where), sub(where, "bit_generator"),
                  choices=BIT_GENERATORS)
    bitgen = BIT_GENERATORS[name]()
    try:
        bitgen.state = d
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise RecordError(f"field {sub(where, 'state')!r}: not a state of {name} ({exc!r})",
                          field=sub(where, "state")) from None
    return np.random.Generator(bitgen)


def _ledger(d, where: str) -> dict:
    as_dict(d, where)
    ledger = {}
    for key, entry in d.items():
        at = f"{where}[{key!r}]"
        check_keys(entry, at, _LEDGER_FIELDS, ("next", "status"))
        integer(entry["next"], sub(at, "next"))
        string(entry["status"], sub(at, "status"), choices=_LEDGER_STATUS)
        for name in ("name", "digest", "reason"):
            string(entry.get(name), sub(at, name), allow_none=True)
        ledger[key] = dict(entry)
    return ledger


def _plain(value) -> bool:
    """A value of a history record: None, a string, a number, a bool or a list of numbers."""
    if value is None or isinstance(value, (str, int, float)):
        return True
    return isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def history_records(items, where: str, limit: int) -> list:
    as_list(items, where)
    if len(items) > limit:
        raise RecordError(f"field {where!r}: has {len(items)} entries, more than the "
                          f"history size {limit}", field=where)
    for i, record in enumerate(items):
        at = sub(where, i)
        as_dict(record, at)
        for k, v in record.items():
            if not _plain(v):
                raise RecordError(f"field {sub(at, k)!r}: expected a number, a string or a "
                                  f"list of numbers, got {type(v).__name__}", field=sub(at, k))
    return list(items)


def checked_state(d) -> dict:
    """The parts of an ``OnlineEM.to_dict`` record, built and checked against the schema.

    Returns a dict with the keys of the record, holding built objects
    (``params`` a MixtureParams, ``stats`` SuffStats or None, ``rng`` a
    Generator, ``settings`` OnlineSettings, ``options`` MStepOptions, arrays
    for ``avg_sum``).  Raises :class:`~streammix.RecordError` naming the
    first field that is wrong.
    """
    check_keys(d, "", STATE_KEYS, STATE_KEYS)
    out: dict = {}
    out["params"] = params = params_from_record(d["params"], "params")
    m, p = params.n_components, params.n_coef
    out["settings"] = _settings(d["settings"], "settings")
    out["options"] = options_from_dict(d["options"], "options", n_components=m)
    out["fit_intercept"] = boolean(d["fit_intercept"], "fit_intercept")
    out["stats"] = (None if d["stats"] is None else
                    stats_from_dict(d["stats"], "stats", n_components=m, n_coef=p))
    for name in ("n_batches", "n_rows", "n_msteps", "n_averaged"):
        out[name] = integer(d[name], name)
    out["sum_w"] = number(d["sum_w"], "sum_w", low=0.0)
    if d["avg_sum"] is None:
        out["avg_sum"] = None
    else:
        shapes = {"weights": (m,), "beta": (m, p), "sigma2": (m,)}
        check_keys(d["avg_sum"], "avg_sum", shapes, shapes)
        out["avg_sum"] = {k: float_array(v, sub("avg_sum", k), shapes[k])
                          for k, v in d["avg_sum"].items()}
    check_keys(d["totals"], "totals", _TOTALS, _TOTALS)
    totals = {k: number(d["totals"][k], sub("totals", k)) for k in _TOTALS[:-1]}
    totals["n_rows"] = integer(d["totals"]["n_rows"], "totals.n_rows")
    out["totals"] = totals
    out["history"] = history_records(d["history"], "history", out["settings"].history_size)
    out["ledger"] = _ledger(d["ledger"], "ledger")
    out["rng"] = _rng(d["rng"], "rng")
    return out
