"""Checkpoints of a batch fit: resume an interrupted ``fit`` where it stopped.

A checkpoint folder is claimed and locked for the fit
(:mod:`streammix.checkpoint_folder`: a folder of other files is refused, a
second fit on the same folder is refused while the first runs) and holds
``checkpoint.json``, written once when the fit
starts, and ``passes/NNNNNN.json``, one file per pass over the data, each
written atomically (:func:`streammix.atomic.atomic_write_text`) as soon as the
pass's statistics are reduced.

``checkpoint.json`` holds the fingerprint of the data (the source's plan:
every chunk descriptor, and for files their sizes and modification times)
and of the settings (the estimator's hyper-parameters), so that a checkpoint
is never resumed on other data or with other settings, and the random seed
every random choice of the fit derives from (the sample of pass 0 and the
starting values of each run), so a resumed fit with ``random_state=None``
makes the same choices.

A pass file holds the parameter sets the pass was made at and the
statistics it returned.  Everything a fit does between passes is a
deterministic function of the statistics it received (EM, SQUAREM,
restarts in lock-step, culling), so a resumed fit *replays* the saved
passes -- the same parameters are asked for, and the saved statistics are
handed back without reading the data -- and then continues with new passes.
Floats are written with ``repr`` precision and read back bit for bit, so the
resumed fit ends with exactly the parameters of an uninterrupted one.  A
replay that asks for other parameters than were saved (another version of
streammix, say) is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from streammix.algorithms.restarts import StatsBundle
from streammix.atomic import atomic_write_text
from streammix.checkpoint_folder import claim_checkpoint_folder
from streammix.core.grouped_estep import GroupedStats
from streammix.core.params import MixtureParams
from streammix.core.records import (
    as_dict,
    as_list,
    check_keys,
    integer,
    number,
    params_from_record,
    stats_from_dict,
    stats_to_dict,
    string,
    sub,
)
from streammix.estimator.gate_checkpoint import gate_gap, gate_record, gates_from_record
from streammix.exceptions import CheckpointError, CorruptCheckpointError, RecordError
from streammix.redact import redact

__all__ = ["Checkpoint", "source_fingerprint", "profile_digest", "pass_from_record",
           "CHECKPOINT_FILE"]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.json"
_PASS_NAME = re.compile(r"[0-9]{6}\.json")
CHECKPOINT_FORMAT = "streammix-checkpoint"
CHECKPOINT_VERSION = 1
_HEADER_KEYS = ("format", "version", "data", "settings", "seed", "profile")
#: At most this many parameter sets in one pass (restarts evaluated together).
_MAX_SETS = 10_000


@contextmanager
def _naming(path):
    """Turn a :class:`RecordError` of a record read from ``path`` into a
    :class:`CorruptCheckpointError` naming the file and the field."""
    try:
        yield
    except RecordError as exc:
        raise CorruptCheckpointError(f"{path}: {exc}; the file is corrupt or was edited, "
                                     "so the checkpoint cannot be resumed",
                                     field=exc.field, file=str(path)) from None


def _check_data_record(data) -> None:
    """The stored fingerprint of the data has the types :func:`source_fingerprint` writes."""
    check_keys(data, "data", ("kind", "chunks", "digest", "files", "config"),
               ("kind", "chunks", "digest", "files"))
    string(data["kind"], "data.kind")
    integer(data["chunks"], "data.chunks")
    string(data["digest"], "data.digest")
    for name, stamp in as_dict(data["files"], "data.files").items():
        at = f"data.files[{name!r}]"
        as_list(stamp, at, 2)
        if not (stamp[0] is None or isinstance(stamp[0], int)) or isinstance(stamp[0], bool):
            raise RecordError(f"field {at!r}: the size must be an integer or null", field=at)
    as_dict(data.get("config", {}), "data.config")


def pass_from_record(entry, n_gate: int | None = None) -> tuple[list[MixtureParams],
                                                                 StatsBundle, list | None]:
    """The parameter sets, statistics and gates of a pass file's record, checked.

    ``n_gate`` is q + 1 of a fit with concomitant variables (the record must
    then have the field ``gate`` of that q,
    :mod:`streammix.estimator.gate_checkpoint`; the gates returned are the
    Γ of each set), None for a fit without them (a record with a gate is refused).

    Every parameter set must have the shapes of the first, and the statistics
    of set ``i`` the shapes of set ``i``; numbers must be finite (except the
    log-likelihood terms of a point SQUAREM rejected).  Raises
    :class:`~streammix.RecordError` naming the field.
    """
    required = ("params", "stats") if n_gate is None else ("params", "stats", "gate")
    check_keys(entry, "", ("params", "stats", "groups", "gate"), required)
    if n_gate is None and "gate" in entry:
        raise RecordError("field 'gate': the pass is of a fit with concomitant variables, "
                          "this fit has none", field="gate")
    sets = as_list(entry["params"], "params")
    if not 1 <= len(sets) <= _MAX_SETS:
        raise RecordError(f"field 'params': has {len(sets)} parameter sets, expected 1 to "
                          f"{_MAX_SETS}", field="params")
    first = params_from_record(sets[0], "params[0]")
    params = [first] + [params_from_record(d, sub("params", i), n_coef=first.n_coef)
                        for i, d in enumerate(sets[1:], start=1)]
    records = as_list(entry["stats"], "stats", len(params))
    stats = StatsBundle(stats_from_dict(d, sub("stats", i), n_components=prm.n_components,
                                        n_coef=prm.n_coef)
                        for i, (d, prm) in enumerate(zip(records, params, strict=True)))
    if "groups" in entry:  # a fit with grouped classes: Σ_g γ_gj and G of each set
        groups = as_list(entry["groups"], "groups", len(params))
        stats = StatsBundle(_grouped_from_record(g, sub("groups", i), st, prm.n_components)
                            for i, (g, st, prm) in enumerate(zip(groups, stats, params,
                                                                 strict=True)))
    gates = None
    if n_gate is not None:  # a fit with concomitant variables: Γ and the gate statistics
        bundle, gates = gates_from_record(entry["gate"], stats, params, n_gate)
        stats = StatsBundle(bundle)
    return params, stats, gates


def _grouped_from_record(record, where: str, stats, n_components: int) -> GroupedStats:
    check_keys(record, where, ("group_s0", "n_groups"), ("group_s0", "n_groups"))
    values = as_list(record["group_s0"], sub(where, "group_s0"), n_components)
    s0 = np.array([number(v, sub(sub(where, "group_s0"), j), low=0.0)
                   for j, v in enumerate(values)])
    return GroupedStats(stats, s0, integer(record["n_groups"], sub(where, "n_groups")))


def _pass_record(params, stats, gates=None) -> dict:
    """The JSON record of a pass: its parameter sets and statistics (and gates)."""
    entry = {"params": [prm.to_dict() for prm in params]}
    if gates is not None:
        entry["stats"] = [stats_to_dict(st.stats) for st in stats]
        entry["gate"] = [gate_record(g, st) for g, st in zip(gates, stats, strict=True)]
        return entry
    grouped = [st for st in stats if isinstance(st, GroupedStats)]
    if grouped:
        entry["stats"] = [stats_to_dict(st.stats) for st in grouped]
        entry["groups"] = [{"group_s0": st.group_s0.tolist(), "n_groups": st.n_groups}
                           for st in grouped]
    else:
        entry["stats"] = [stats_to_dict(st) for st in stats]
    return entry


# ------------------------------------------------------------------ fingerprints
def _file_stamp(source, path: str) -> list:
    """[size, mtime] of a file of a source, as its file system reports them."""
    try:
        info = source.filesystem().get_file_info(path)
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        return [info.size, mtime]
    except (OSError, AttributeError) as exc:  # pragma: no cover - listed files vanish
        return [None, f"unreadable: {type(exc).__name__}"]


def source_fingerprint(source) -> dict:
    """What identifies the data of a fit: a dict ``{"kind", "chunks", "digest", "files"}``.

    ``digest`` hashes every chunk descriptor of the plan (and for in-memory
    arrays, their bytes); ``files`` maps each file (its URL without
    credentials, :func:`streammix.redact.redact`) to its size and mtime.
    """
    plan = source.plan()
    h = hashlib.sha256()
    for descriptor in plan:
        h.update(repr(descriptor).encode())
        h.update(b"\n")
    files: dict[str, list] = {}
    if hasattr(source, "files") and hasattr(source, "filesystem"):  # ParquetSource
        for path in source.files:
            files[redact(path)] = _file_stamp(source, path)  # stored: no credentials
    for name in ("X", "y", "w", "groups"):  # ArraySource: the data themselves
        value = getattr(source, name, None)
        if isinstance(value, np.ndarray):
            h.update(name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
    config = {}
    for name in ("target", "features", "feature_names", "weight", "filters", "on_invalid",
                 "n_features"):
        if hasattr(source, name):  # which columns, rows and policy a source reads
            config[name] = redact(json.loads(json.dumps(getattr(source, name), default=str)))
    for name in ("groups", "max_task_rows"):  # a grouped ParquetSource (only when set)
        value = getattr(source, name, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            config[name] = value
    gate = getattr(source, "_gate", None)  # concomitant columns or a gate formula (when set)
    names = list(getattr(source, "concomitant", None) or [])
    if names or gate is not None:
        config["concomitant"] = names or str(getattr(gate, "formula", gate))
    Z = getattr(source, "Z", None)  # in-memory concomitant variables
    if isinstance(Z, np.ndarray):
        h.update(b"Z")
        h.update(np.ascontiguousarray(Z).tobytes())
    return {"kind": type(source).__name__, "chunks": len(plan), "digest": h.hexdigest(),
            "files": files, "config": config}


def profile_digest(profile) -> str:
    """A digest of the pass-0 profile (row counts, total weight, the sample).

    It identifies the data also where the plan cannot (a Dask collection's
    partitions are only numbered): other data give another sample.
    """
    h = hashlib.sha256()
    h.update(repr((int(profile.n_rows), int(profile.n_positive), float(profile.sum_w))).encode())
    for array in (profile.keys, profile.X, profile.y):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _data_difference(saved: dict, now: dict) -> str | None:
    if saved == now:
        return None
    if saved.get("kind") != now.get("kind"):
        return f"a {saved.get('kind')} then, a {now.get('kind')} now"
    if saved.get("config") != now.get("config"):
        old, new = saved.get("config", {}), now.get("config", {})
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return "; ".join(f"{k} {old.get(k)!r} then, {new.get(k)!r} now" for k in keys)
    old, new = saved.get("files", {}), now.get("files", {})
    gone = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    changed = sorted(f for f in set(old) & set(new) if old[f] != new[f])
    parts = []
    if gone:
        parts.append(f"{len(gone)} file(s) gone (first {gone[0]})")
    if added:
        parts.append(f"{len(added)} new file(s) (first {added[0]})")
    if changed:
        parts.append(f"{len(changed)} file(s) changed size or time (first {changed[0]})")
    if not parts:
        parts.append(f"the chunk plan differs ({saved.get('chunks')} chunks then, "
                     f"{now.get('chunks')} now)")
    return "; ".join(parts)


def _settings_difference(saved: dict, now: dict) -> str | None:
    # A setting the checkpoint's version did not have yet (e.g. min_sigma_ratio,
    # max_reseeds) is not compared; every setting it recorded must match.
    keys = sorted(saved)
    diff = [f"{k} {saved.get(k)!r} then, {now.get(k)!r} now" for k in keys
            if saved.get(k) != now.get(k)]
    return "; ".join(diff) if diff else None


# -------------------------------------------------------------------- the folder

#: Largest difference (relative to each array's scale) between the parameters
#: a resumed fit asks for and those a saved pass was made at that is taken as
#: rounding: another CPU (AVX-512 or AVX2 code in numpy, the BLAS or the
#: kernel) or another numpy build evaluates the same starting values a few
#: units in the last place apart.  Anything larger means another fit.
REPLAY_RTOL = 1e-9


def replay_gap(saved: list, asked) -> float:
    """How far the parameters ``asked`` for are from the ``saved`` ones.

    0.0 when they are equal bit for bit; ``inf`` when their number or
    shapes differ; otherwise the largest absolute difference of an array's
    entries divided by that array's largest magnitude.
    """
    asked = list(asked)
    if len(saved) != len(asked):
        return float("inf")
    gap = 0.0
    for a, b in zip(saved, asked, strict=True):
        if a == b:
            continue
        for key in ("weights", "beta", "sigma2"):
            x, z = getattr(a, key), getattr(b, key)
            if x.shape != z.shape:
                return float("inf")
            if not (np.isfinite(x).all() and np.isfinite(z).all()):
                if not np.array_equal(x, z, equal_nan=True):
                    return float("inf")
                continue
            scale = max(float(np.max(np.abs(x), initial=0.0)), np.finfo(float).tiny)
            gap = max(gap, float(np.max(np.abs(x - z), initial=0.0)) / scale)
    return gap


class Checkpoint:
    """The checkpoint folder of one fit.

    Parameters
    ----------
    folder : str or path
        Created if missing (its parent must exist).
    data, settings : dict
        Fingerprints of the data (:func:`source_fingerprint`) and of the
        settings (JSON-ready hyper-parameters).
    """

    def __init__(self, folder, data: dict, settings: dict):
        self.folder = Path(folder)
        self.path = self.folder / CHECKPOINT_FILE
        self.pass_dir = self.folder / "passes"
        self.data = data
        self.settings = settings
        self.seed: int | None = None
        self.profile: str | None = None
        self.saved: list[tuple[list[MixtureParams], StatsBundle, list | None]] = []
        #: q + 1 of a fit with concomitant variables (set before load), else None.
        self.n_gate: int | None = None
        self.replaying = False
        self._next = 0
        self._rounding_noted = False
        self._lock = None

    def exists(self) -> bool:
        return self.path.is_file()

    def start(self, seed: int) -> None:
        """Begin a new fit in the folder (an existing checkpoint is refused)."""
        if self.exists():
            raise CheckpointError(
                f"{self.path} already exists: resume it (resume=True, or streammix fit "
                "--resume), or remove it to start afresh")
        self._claim()
        self.pass_dir.mkdir(exist_ok=True)
        for stale in self.pass_dir.glob("*.json"):  # ours: the folder has our marker
            if _PASS_NAME.fullmatch(stale.name):
                stale.unlink()
        self.seed = int(seed)
        self.profile = None
        self._write_header()

    def _write_header(self) -> None:
        record = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                  "data": self.data, "settings": self.settings, "seed": self.seed,
                  "profile": self.profile}
        atomic_write_text(self.path, json.dumps(record, allow_nan=False))

    def check_profile(self, digest: str) -> None:
        """Record the pass-0 profile of a new fit, or refuse a resume whose differs."""
        if self.profile is None:
            self.profile = digest
            self._write_header()
        elif self.profile != digest:
            raise CheckpointError(
                f"{self.path} was made from different data (pass 0 drew another sample "
                "or counted other rows); refusing to resume it")

    def _claim(self) -> None:
        """Check the folder is ours (or new, or empty) and lock it; see
        :mod:`streammix.checkpoint_folder`."""
        if self._lock is None:
            self._lock = claim_checkpoint_folder(self.folder, kind="fit",
                                                 known=(CHECKPOINT_FILE,))

    def close(self) -> None:
        """Release the folder's lock (the fit is over)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def load(self) -> None:
        """Read the checkpoint and its passes; refuse one from other data or settings."""
        if not self.path.is_file():
            raise CheckpointError(f"no checkpoint to resume: {self.path} does not exist")
        self._claim()
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"no checkpoint to resume: {self.path} does not exist") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{self.path}: not a readable checkpoint ({exc})") from None
        if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.path}: not a streammix checkpoint")
        if record.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"{self.path}: unsupported checkpoint version "
                                  f"{record.get('version')!r}")
        with _naming(self.path):
            check_keys(record, "", _HEADER_KEYS, _HEADER_KEYS[:-1])
            _check_data_record(record["data"])
            as_dict(record["settings"], "settings")
            seed = integer(record["seed"], "seed")
            string(record.get("profile"), "profile", allow_none=True)
        why = _data_difference(record["data"], self.data)
        if why:
            raise CheckpointError(f"{self.path} was made from different data ({why}); "
                                  "refusing to resume it")
        why = _settings_difference(record["settings"], self.settings)
        if why:
            raise CheckpointError(f"{self.path} was made with different settings ({why}); "
                                  "refusing to resume it")
        self.seed = seed
        self.profile = record.get("profile")
        self.saved = []
        while True:
            path = self._pass_path(len(self.saved))
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                break
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CorruptCheckpointError(f"{path}: not a readable pass record ({exc})",
                                             file=str(path)) from None
            with _naming(path):
                self.saved.append(pass_from_record(entry, self.n_gate))
        logger.info("resuming from %s: %d passes to replay", self.path, len(self.saved))

    def _pass_path(self, k: int) -> Path:
        return self.pass_dir / f"{k:06d}.json"

    def wrap(self, pass_many, gates=None):
        """``pass_many`` (a tuple of parameter sets -> StatsBundle) that saves each pass.

        Saved passes are replayed first: the parameters asked for must be the
        saved ones, bit for bit, and the saved statistics are returned without
        a pass over the data (``replaying`` is then True).  ``gates`` (a fit
        with concomitant variables) gives the gates Γ each pass is made at,
        one per set: saved with the pass, and on replay compared as the
        parameters are.
        """
        def checkpointed(params) -> StatsBundle:
            k = self._next
            self._next += 1
            asked = None if gates is None else list(gates())
            if k < len(self.saved):
                saved_params, stats, saved_gates = self.saved[k]
                gap = replay_gap(saved_params, params)
                if asked is not None:
                    gap = max(gap, gate_gap(saved_gates, asked))
                if gap > REPLAY_RTOL:
                    raise CheckpointError(
                        f"{self._pass_path(k)}: the resumed fit asks for other parameters "
                        "than the saved pass was made at; refusing to resume it")
                if gap > 0.0 and not self._rounding_noted:
                    self._rounding_noted = True
                    logger.warning(
                        "%s: the resumed fit asks for parameters that differ from the saved "
                        "ones by rounding only (%.1e of their scale): the checkpoint was "
                        "made by another CPU or numpy build; the resumed fit equals the "
                        "uninterrupted one to rounding, not bit for bit",
                        os.fspath(self._pass_path(k)), gap)
                self.replaying = True
                return stats
            self.replaying = False
            stats = pass_many(params)
            entry = _pass_record(params, stats, asked)
            # allow_nan: SQUAREM may evaluate (and then reject) a point whose
            # likelihood is not finite; json writes and reads NaN/Infinity back.
            atomic_write_text(self._pass_path(k), json.dumps(entry))
            logger.debug("checkpoint: pass %d written to %s", k, os.fspath(self.pass_dir))
            return stats

        return checkpointed

    def quiet(self, callback):
        """``callback`` that stays silent while saved passes are replayed."""
        if callback is None:
            return None

        def call(record):
            if not self.replaying:
                callback(record)

        return call
