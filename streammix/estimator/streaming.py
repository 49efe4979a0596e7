"""Online EM over a stream with checkpoints: :func:`run_stream` and the checkpoint format.

A stream checkpoint is a folder holding ``state.json`` (the online state with
its ledger of consumed batches, the model and the source settings) and
``model.json`` (a model file readable by
:meth:`streammix.MixtureOfLinearRegressions.load`), each written atomically.
Resumed with the same folder, the state is restored exactly and batches
already consumed are skipped, so a crash never counts a batch twice and the
final parameters equal those of an uninterrupted run.  What was consumed is
known by content (see :mod:`streammix.data.streams`): a landed file by its
size, modification time and footer hash, an Arrow stream by a hash of its
schema and first batch, with a running hash of its consumed rows that a
replay is checked against.  ``streammix stream`` (:mod:`streammix.cli.stream`) is the
command line face of this module.
"""

from __future__ import annotations

import json
from pathlib import Path

from streammix.algorithms.online import OnlineEM
from streammix.atomic import atomic_write_text
from streammix.core.checks import feature_names_of
from streammix.core.records import check_keys, integer, string, string_list, within
from streammix.estimator import persistence
from streammix.estimator.model import MixtureOfLinearRegressions
from streammix.estimator.online_fitting import set_online_fitted
from streammix.exceptions import CorruptCheckpointError, RecordError
from streammix.redact import redact

__all__ = ["run_stream", "load_checkpoint", "save_checkpoint", "pin_features", "GUARD",
           "SignalGuard", "CHECKPOINT_FORMAT", "STATE_FILE", "MODEL_FILE"]

CHECKPOINT_FORMAT = "streammix-stream-checkpoint"
STATE_FILE = "state.json"
MODEL_FILE = "model.json"
_SOURCE_KEYS = ("source", "target", "features", "weight", "batch_rows")


def save_checkpoint(directory, model: MixtureOfLinearRegressions, source: dict) -> None:
    """Write ``state.json`` then ``model.json`` into ``directory``, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {"format": CHECKPOINT_FORMAT, "source": redact(source), "model": model.to_dict(),
              "state": model.online_.to_dict()}
    atomic_write_text(directory / STATE_FILE, json.dumps(record, allow_nan=False))
    model.save(directory / MODEL_FILE)


def load_checkpoint(directory) -> tuple[MixtureOfLinearRegressions, dict] | None:
    """The model (with its online state) and source settings saved in ``directory``,
    or None when there is no checkpoint.

    ``state.json`` is checked against the schema before anything is built
    from it; a corrupt or edited file raises
    :class:`~streammix.CorruptCheckpointError` naming the file and the field.
    """
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(f"{path}: not a valid checkpoint ({exc})",
                                     file=str(path)) from None
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_FORMAT:
        raise CorruptCheckpointError(f"{path}: not a streammix stream checkpoint",
                                     file=str(path))
    try:
        check_keys(record, "", ("format", "source", "model", "state"),
                   ("format", "source", "model", "state"))
        source = _checked_source(record["source"])
        model = persistence.from_dict(MixtureOfLinearRegressions, record["model"],
                                      where="model")
        try:
            model.online_ = OnlineEM.from_dict(record["state"])
        except RecordError as exc:
            raise within(exc, "state") from None
        except ValueError as exc:  # the format tag or version
            raise RecordError(f"field 'state': {exc}", field="state") from None
        _check_agree(model)
    except RecordError as exc:
        raise CorruptCheckpointError(f"{path}: {exc}; the file is corrupt or was edited",
                                     field=exc.field, file=str(path)) from None
    set_online_fitted(model)
    return model, source


def _checked_source(d) -> dict:
    """The source settings of a stream checkpoint, checked."""
    check_keys(d, "source", _SOURCE_KEYS)
    string(d.get("source"), "source.source", allow_none=True)
    string(d.get("target"), "source.target", allow_none=True)
    string(d.get("weight"), "source.weight", allow_none=True)
    if d.get("features") is not None:
        string_list(d["features"], "source.features")
    integer(d.get("batch_rows"), "source.batch_rows", low=1, allow_none=True)
    return d


def _check_agree(model) -> None:
    """The model record and the online state describe one mixture."""
    state = model.online_
    m, p = state.params.n_components, state.params.n_coef
    if m != model.n_components:
        raise RecordError(f"field 'state.params': has {m} components, the model's "
                          f"n_components is {model.n_components}", field="state.params")
    if state.fit_intercept != model.fit_intercept:
        raise RecordError("field 'state.fit_intercept': differs from the model's",
                          field="state.fit_intercept")
    if hasattr(model, "params_") and model.params_.n_coef != p:
        raise RecordError(f"field 'state.params.beta': has {p} columns, the model's "
                          f"{model.params_.n_coef}", field="state.params.beta")


class SignalGuard:
    """SIGINT/SIGTERM stop the stream between batches, never inside an update."""

    busy = False
    pending: int | None = None

    def handler(self, signum, frame) -> None:
        if self.busy:
            self.pending = signum
        else:
            raise KeyboardInterrupt(f"signal {signum}")

    def release(self) -> None:
        self.busy = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise KeyboardInterrupt(f"signal {signum}")


#: The guard :func:`run_stream` raises its flag on; install its ``handler`` for
#: SIGINT/SIGTERM so that a signal stops the stream between batches.
GUARD = SignalGuard()


def run_stream(model: MixtureOfLinearRegressions, batches, *, checkpoint_dir=None,
               checkpoint_every: int = 10, max_batches: int | None = None,
               source_meta: dict | None = None, emit=None) -> int:
    """Feed ``batches`` (:class:`~streammix.StreamBatch`) to ``model.partial_fit``.

    Batches already consumed (per the ledger) are skipped.  Checkpoints are
    written every ``checkpoint_every`` consumed batches and when the loop
    ends for any reason.  ``emit(record, model)`` is called after each
    consumed batch.  Returns the number of batches consumed.  A model with
    concomitant variables (a gate) is refused: stream batches have no concomitant columns.
    """
    if hasattr(model, "concomitant_coef_"):
        raise ValueError("streams (run_stream, streammix stream) do not carry concomitant "
                         "variables yet: the model has a gate of "
                         f"{model.concomitant_names_}; call partial_fit(X, y, concomitant=Z) "
                         "batch by batch instead")
    consumed = since = 0
    source_meta = source_meta or {}
    ledger_owner = getattr(batches, "ledger", None)
    pin_features(batches, model)
    try:
        if max_batches is not None and max_batches <= 0:
            return 0
        for batch in batches:
            GUARD.busy = True  # a signal now waits for the batch and its checkpoint
            state = getattr(model, "online_", None)
            last = state.history[-1] if state is not None and state.history else None
            model.partial_fit(batch.X, batch.y, batch.w, features=list(batch.feature_names),
                              batch_id=(batch.key, batch.first_row))
            state = model.online_
            if ledger_owner is not None and batches.ledger is not state.ledger:
                state.ledger.update(batches.ledger)  # quarantines before the first batch
                batches.ledger = state.ledger
            pin_features(batches, model)
            if batch.last:
                state.mark(batch.key, "done")
            entry = state.ledger.get(batch.key)
            if entry is not None and batch.name is not None:
                entry["name"] = batch.name
            if (batch.digest is not None and entry is not None  # a replay is checked against it
                    and entry["next"] == batch.first_row + batch.n_rows):
                entry["digest"] = batch.digest
            record = state.history[-1] if state.history else None
            if record is not last:  # else a replayed batch
                consumed += 1
                since += 1
                if checkpoint_dir is not None and since >= checkpoint_every:
                    save_checkpoint(checkpoint_dir, model, source_meta)
                    since = 0
                if emit is not None:
                    emit(record, model)
            GUARD.release()
            if max_batches is not None and consumed >= max_batches:
                break
    finally:
        GUARD.busy = False
        if checkpoint_dir is not None and hasattr(model, "online_") and (
                since or not (Path(checkpoint_dir) / STATE_FILE).exists()):
            save_checkpoint(checkpoint_dir, model, source_meta)
    return consumed


def pin_features(source, model) -> None:
    """Once the stream has started, a source without a feature list reads the
    model's features, so that a file with other columns is a bad file."""
    if getattr(source, "features", ()) is None and hasattr(model, "online_"):
        source.features = feature_names_of(model)
