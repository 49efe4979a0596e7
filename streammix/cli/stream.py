"""``streammix stream``: online EM over a stream, with checkpoints.

::

    streammix stream SOURCE --target y [--features a b c] --components 3 \\
        --checkpoint DIR [--watch] [--forget W] [--batch-rows N] [--max-batches N] [--poll S]

SOURCE is ``-`` (an Arrow IPC stream on standard input), a file holding an
Arrow IPC stream, or a folder where Parquet files land (read once each; with
``--watch`` the folder is polled for new files until the process is stopped
or ``--max-batches`` batches were consumed).  One line per batch goes to
standard output: the batch number, rows seen, the prequential
log-likelihood per row of the batch and the current weights.

Every ``--checkpoint-every`` batches, and at exit (also on SIGINT/SIGTERM),
``DIR/state.json`` (the online state with its ledger, the model and the
source settings) and ``DIR/model.json`` (a model file readable by
:meth:`MixtureOfLinearRegressions.load`) are written atomically.  Started
again with the same DIR, the program resumes from the checkpoint: the state
is restored exactly and batches already consumed (by file name, or by row
offset in a stream) are skipped, so a crash never counts a batch twice and
the final parameters equal those of an uninterrupted run.

``register(subparsers)`` adds the sub-command to the main ``streammix``
parser; ``python -m streammix.cli.stream ...`` runs it on its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from streammix.algorithms.online import OnlineEM
from streammix.atomic import atomic_write_text
from streammix.core.checks import DataError
from streammix.data.streams import ArrowStreamSource, FolderStream
from streammix.estimator.model import MixtureOfLinearRegressions

__all__ = ["register", "main", "run_stream", "load_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

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
    model._set_online_fitted()
    return model, record["source"]


class _SignalGuard:
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


_GUARD = _SignalGuard()


def run_stream(model: MixtureOfLinearRegressions, batches, *, checkpoint_dir=None,
               checkpoint_every: int = 10, max_batches: int | None = None,
               source_meta: dict | None = None, emit=None) -> int:
    """Feed ``batches`` (:class:`~streammix.streams.StreamBatch`) to ``model.partial_fit``.

    Batches already consumed (per the ledger) are skipped.  Checkpoints are
    written every ``checkpoint_every`` consumed batches and when the loop
    ends for any reason.  ``emit(record, model)`` is called after each
    consumed batch.  Returns the number of batches consumed.
    """
    consumed = since = 0
    source_meta = source_meta or {}
    ledger_owner = getattr(batches, "ledger", None)
    _pin_features(batches, model)
    try:
        if max_batches is not None and max_batches <= 0:
            return 0
        for batch in batches:
            _GUARD.busy = True  # a signal now waits for the batch and its checkpoint
            state = getattr(model, "online_", None)
            last = state.history[-1] if state is not None and state.history else None
            model.partial_fit(batch.X, batch.y, batch.w, features=list(batch.feature_names),
                              batch_id=(batch.key, batch.first_row))
            state = model.online_
            if ledger_owner is not None and batches.ledger is not state.ledger:
                state.ledger.update(batches.ledger)  # quarantines before the first batch
                batches.ledger = state.ledger
            _pin_features(batches, model)
            if batch.last:
                state.mark(batch.key, "done")
            record = state.history[-1] if state.history else None
            if record is not last:  # else a replayed batch
                consumed += 1
                since += 1
                if checkpoint_dir is not None and since >= checkpoint_every:
                    save_checkpoint(checkpoint_dir, model, source_meta)
                    since = 0
                if emit is not None:
                    emit(record, model)
            _GUARD.release()
            if max_batches is not None and consumed >= max_batches:
                break
    finally:
        _GUARD.busy = False
        if checkpoint_dir is not None and hasattr(model, "online_") and (
                since or not (Path(checkpoint_dir) / STATE_FILE).exists()):
            save_checkpoint(checkpoint_dir, model, source_meta)
    return consumed


def _pin_features(source, model) -> None:
    """Once the stream has started, a source without a feature list reads the
    model's features, so that a file with other columns is a bad file."""
    if getattr(source, "features", ()) is None and hasattr(model, "online_"):
        source.features = list(model.feature_names_in_)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``stream`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "stream", help="fit by online EM over a stream, with checkpoints",
        description="Fit a mixture of linear regressions by online EM over an Arrow IPC "
                    "stream (a file, or '-' for standard input) or a folder where Parquet "
                    "files land, printing a line per batch and checkpointing the state so "
                    "that a restart resumes exactly.")
    p.add_argument("source", metavar="SOURCE",
                   help="'-' (Arrow IPC stream on stdin), an Arrow IPC stream file, or a "
                        "folder of Parquet files")
    p.add_argument("--target", required=True, help="name of the target column")
    p.add_argument("--features", nargs="+", default=None,
                   help="feature columns (space- or comma-separated); default all others")
    p.add_argument("--weight", default=None, help="frequency-weight column")
    p.add_argument("--components", "-m", type=int, default=None,
                   help="number of components (required unless resuming)")
    p.add_argument("--checkpoint", required=True, metavar="DIR",
                   help="folder for state.json and model.json; resumed from if present")
    p.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                   help="batches between checkpoints (default 10)")
    p.add_argument("--watch", action="store_true", help="keep polling the folder for new files")
    p.add_argument("--poll", type=float, default=1.0, metavar="S",
                   help="seconds between folder scans when watching (default 1)")
    p.add_argument("--forget", type=float, default=None, metavar="W",
                   help="forgetting mode: constant step, window of about W rows")
    p.add_argument("--step-alpha", type=float, default=0.6)
    p.add_argument("--step-offset", type=float, default=2.0)
    p.add_argument("--average", type=int, default=0, metavar="K",
                   help="Polyak-Ruppert averaging from M-step K (0: off)")
    p.add_argument("--batch-rows", type=int, default=None, metavar="N",
                   help="regroup the stream into batches of N rows")
    p.add_argument("--max-batches", type=int, default=None, metavar="N",
                   help="stop after consuming N batches in this run")
    p.add_argument("--on-error", choices=("stop", "skip"), default=None,
                   help="bad batch: stop with an error, or skip it (folders: quarantine the "
                        "file); default stop for streams, skip (quarantine) for folders")
    p.add_argument("--seed", type=int, default=0, help="random seed of the initialisation")
    p.add_argument("--no-intercept", action="store_true")
    p.set_defaults(func=run_command)
    return p


def _features(values):
    if values is None:
        return None
    return [f for v in values for f in v.split(",") if f]


def _source(args, features, ledger):
    if args.source == "-" or not os.path.isdir(args.source):
        if args.watch:
            raise ValueError("--watch needs a folder as SOURCE")
        return ArrowStreamSource(args.source, target=args.target, features=features,
                                 weight=args.weight, batch_rows=args.batch_rows,
                                 on_error=args.on_error or "stop")
    on_error = "stop" if args.on_error == "stop" else "quarantine"
    return FolderStream(args.source, target=args.target, features=features,
                        weight=args.weight, ledger=ledger, watch=args.watch, poll=args.poll,
                        batch_rows=args.batch_rows, on_error=on_error)


def run_command(args) -> int:
    """Run ``streammix stream`` from parsed arguments; returns the exit code.

    Installs SIGINT/SIGTERM handlers that stop between batches (exit code
    130, after the exit checkpoint).  Raises :class:`DataError` on bad data
    with ``--on-error stop`` and ``ValueError`` on bad arguments or an
    incompatible checkpoint; :func:`main` maps them to exit codes 2 and 1.
    """
    features = _features(args.features)
    meta = {"source": args.source, "target": args.target, "features": features,
            "weight": args.weight, "batch_rows": args.batch_rows}
    resumed = load_checkpoint(args.checkpoint)
    if resumed is not None:
        model, saved = resumed
        if args.components is not None and args.components != model.n_components:
            raise ValueError(f"the checkpoint in {args.checkpoint} has {model.n_components} "
                             f"components, not {args.components}")
        for key in ("target", "features", "weight", "batch_rows"):
            if saved.get(key) != meta[key]:
                raise ValueError(f"the checkpoint in {args.checkpoint} was made with "
                                 f"{key}={saved.get(key)!r}, not {meta[key]!r}")
        logger.info("resuming from %s after %d batches", args.checkpoint,
                    model.online_.n_batches)
        ledger = model.online_.ledger
    else:
        if args.components is None:
            raise ValueError("--components is required for a new stream")
        model = MixtureOfLinearRegressions(
            args.components, random_state=args.seed, fit_intercept=not args.no_intercept,
            step_alpha=args.step_alpha, step_offset=args.step_offset, forget=args.forget,
            average=args.average if args.average > 0 else False)
        ledger = {}
    source = _source(args, features, ledger)

    def emit(record, model):
        weights = " ".join(f"{w:.4f}" for w in model.weights_)
        ll = record.get("loglik_per_w", float("nan"))
        sys.stdout.write(f"batch {model.online_.n_batches} rows {model.n_rows_} "
                         f"loglik/row {ll:.6f} weights {weights}\n")
        sys.stdout.flush()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _GUARD.handler)
        signal.signal(signal.SIGINT, _GUARD.handler)
    try:
        n = run_stream(model, source, checkpoint_dir=args.checkpoint,
                       checkpoint_every=max(1, args.checkpoint_every),
                       max_batches=args.max_batches, source_meta=meta, emit=emit)
    except KeyboardInterrupt:
        sys.stderr.write("streammix stream: interrupted; checkpoint written to "
                         f"{args.checkpoint}\n")
        return 130
    logger.info("consumed %d batches; checkpoint in %s", n, args.checkpoint)
    return 0


def main(argv=None) -> int:
    """Entry point of ``python -m streammix.cli.stream``."""
    parser = argparse.ArgumentParser(prog="streammix")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "stream":
        argv.insert(0, "stream")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return args.func(args)
    except DataError as exc:
        sys.stderr.write(f"streammix stream: bad data: {exc}\n")
        return 2
    except (ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"streammix stream: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
