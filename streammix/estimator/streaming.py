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
from streammix.estimator.model import MixtureOfLinearRegressions
from streammix.estimator.online_fitting import set_online_fitted

__all__ = ["run_stream", "load_checkpoint", "save_checkpoint", "pin_features", "GUARD",
           "SignalGuard", "CHECKPOINT_FORMAT", "STATE_FILE", "MODEL_FILE"]

CHECKPOINT_FORMAT = "streammix-stream-checkpoint"
STATE_FILE = "state.json"
MODEL_FILE = "model.json"


def save_checkpoint(directory, model: MixtureOfLinearRegressions, source: dict) -> None:
    """Write ``state.json`` then ``model.json`` into ``directory``, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {"format": CHECKPOINT_FORMAT, "source": source, "model": model.to_dict(),
              "state": model.online_.to_dict()}
    atomic_write_text(directory / STATE_FILE, json.dumps(record, allow_nan=False))
    model.save(directory / MODEL_FILE)


def load_checkpoint(directory) -> tuple[MixtureOfLinearRegressions, dict] | None:
    """The model (with its online state) and source settings saved in ``directory``,
    or None when there is no checkpoint."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a valid checkpoint ({exc})") from None
    if record.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a streammix stream checkpoint")
    model = MixtureOfLinearRegressions.from_dict(record["model"])
    model.online_ = OnlineEM.from_dict(record["state"])
    set_online_fitted(model)
    return model, record["source"]


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
    consumed batch.  Returns the number of batches consumed.
    """
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
