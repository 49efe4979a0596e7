"""Checkpoints of a batch fit: resume an interrupted ``fit`` where it stopped.

A checkpoint is one JSON file, ``checkpoint.json`` in a folder, rewritten
atomically (:func:`streammix.atomic.atomic_write_text`) after every EM
iteration.  It holds

* the fingerprint of the data (the source's plan: every chunk descriptor,
  and for files their sizes and modification times) and of the settings
  (the estimator's hyper-parameters), so that a checkpoint is never resumed
  on other data or with other settings;
* the random seed every random choice of the fit derives from (the sample of
  pass 0 and the starting values of each run), so a resumed fit with
  ``random_state=None`` makes the same choices;
* the finished runs (of ``n_init``) with their results, and the loop state
  of the current run after its last M-step (parameters, iteration,
  history, last objective, re-seed count, M-step options).

Floats are written with ``repr`` precision and read back bit for bit, and
every pass is deterministic, so a resumed fit ends with exactly the
parameters of an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .em import EMResult, EMSettings
from .online import _options_from_dict, _options_to_dict, _stats_from_dict, _stats_to_dict
from .params import MixtureParams

__all__ = ["CheckpointError", "Checkpoint", "source_fingerprint", "CHECKPOINT_FILE"]

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_FORMAT = "streammix-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used: missing, unreadable, or from other data or settings."""


# ------------------------------------------------------------------ fingerprints
def _file_stamp(source, path: str) -> list:
    """[size, mtime] of a file of a source, as its file system reports them."""
    try:
        info = source._arrow_fs().get_file_info(path)
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        return [info.size, mtime]
    except (OSError, AttributeError) as exc:  # pragma: no cover - listed files vanish
        return [None, f"unreadable: {type(exc).__name__}"]


def source_fingerprint(source) -> dict:
    """What identifies the data of a fit: a dict ``{"kind", "chunks", "digest", "files"}``.

    ``digest`` hashes every chunk descriptor of the plan (and for in-memory
    arrays, their bytes); ``files`` maps each file to its size and mtime.
    """
    plan = source.plan()
    h = hashlib.sha256()
    for descriptor in plan:
        h.update(repr(descriptor).encode())
        h.update(b"\n")
    files: dict[str, list] = {}
    if hasattr(source, "files") and hasattr(source, "_arrow_fs"):  # ParquetSource
        for path in source.files:
            files[path] = _file_stamp(source, path)
    for name in ("X", "y", "w"):  # ArraySource: the data themselves
        value = getattr(source, name, None)
        if isinstance(value, np.ndarray):
            h.update(name.encode())
            h.update(np.ascontiguousarray(value).tobytes())
    return {"kind": type(source).__name__, "chunks": len(plan), "digest": h.hexdigest(),
            "files": files}


def _data_difference(saved: dict, now: dict) -> str | None:
    if saved == now:
        return None
    if saved.get("kind") != now.get("kind"):
        return f"a {saved.get('kind')} then, a {now.get('kind')} now"
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
    keys = sorted(set(saved) | set(now))
    diff = [f"{k} {saved.get(k)!r} then, {now.get(k)!r} now" for k in keys
            if saved.get(k) != now.get(k)]
    return "; ".join(diff) if diff else None


# -------------------------------------------------------------------- (de)coding
def _state_to_dict(state: dict) -> dict:
    return {"params": state["params"].to_dict(), "options": _options_to_dict(state["options"]),
            "history": state["history"], "prev_obj": state["prev_obj"],
            "n_reseeds": state["n_reseeds"], "n_iter": state["n_iter"],
            "event": state["event"], "notes": state["notes"]}


def _state_from_dict(d: dict) -> dict:
    state = dict(d)
    state["params"] = MixtureParams.from_dict(d["params"])
    state["options"] = _options_from_dict(d["options"])
    return state


def _result_to_dict(result: EMResult) -> dict:
    s = result.settings
    return {"params": result.params.to_dict(), "loglik": result.loglik,
            "objective": result.objective, "n_iter": result.n_iter,
            "converged": result.converged, "history": result.history,
            "stats": _stats_to_dict(result.stats),
            "settings": {"mstep": _options_to_dict(s.mstep), "tol": s.tol,
                         "max_iter": s.max_iter, "min_rows_factor": s.min_rows_factor,
                         "min_weight": s.min_weight, "on_collapse": s.on_collapse,
                         "max_reseeds": s.max_reseeds}}


def _result_from_dict(d: dict) -> EMResult:
    settings = dict(d["settings"])
    settings["mstep"] = _options_from_dict(settings["mstep"])
    return EMResult(MixtureParams.from_dict(d["params"]), d["loglik"], d["objective"],
                    d["n_iter"], d["converged"], d["history"], _stats_from_dict(d["stats"]),
                    EMSettings(**settings))


# -------------------------------------------------------------------- the file
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
        self.data = data
        self.settings = settings
        self.seed: int | None = None
        self.run = 0
        self.best: EMResult | None = None
        self.state: dict | None = None

    def exists(self) -> bool:
        return self.path.is_file()

    def start(self, seed: int) -> None:
        """Begin a new fit in the folder (an existing checkpoint is refused)."""
        if self.exists():
            raise CheckpointError(
                f"{self.path} already exists: resume it (resume=True, or streammix fit "
                "--resume), or remove it to start afresh")
        if not self.folder.exists():
            if not self.folder.parent.is_dir():
                raise CheckpointError(f"cannot make checkpoint folder {self.folder}: "
                                      f"{self.folder.parent} does not exist")
            self.folder.mkdir()
        self.seed = int(seed)
        self.write()

    def load(self) -> None:
        """Read the checkpoint; refuse one made from other data or settings."""
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
        why = _data_difference(record["data"], self.data)
        if why:
            raise CheckpointError(f"{self.path} was made from different data ({why}); "
                                  "refusing to resume it")
        why = _settings_difference(record["settings"], self.settings)
        if why:
            raise CheckpointError(f"{self.path} was made with different settings ({why}); "
                                  "refusing to resume it")
        self.seed = int(record["seed"])
        self.run = int(record["run"])
        self.best = None if record["best"] is None else _result_from_dict(record["best"])
        self.state = None if record["state"] is None else _state_from_dict(record["state"])
        logger.info("resuming from %s: run %d, iteration %s", self.path, self.run,
                    None if self.state is None else self.state["n_iter"])

    def save_state(self, state: dict) -> None:
        """After an M-step of the current run."""
        self.state = state
        self.write()

    def finish_run(self, run: int, best: EMResult) -> None:
        """Run ``run`` is done; ``best`` is the best result so far."""
        self.run, self.best, self.state = run + 1, best, None
        self.write()

    def write(self) -> None:
        record = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "data": self.data, "settings": self.settings, "seed": self.seed, "run": self.run,
            "best": None if self.best is None else _result_to_dict(self.best),
            "state": None if self.state is None else _state_to_dict(self.state),
        }
        atomic_write_text(self.path, json.dumps(record, allow_nan=False))
        logger.debug("checkpoint written to %s", os.fspath(self.path))
