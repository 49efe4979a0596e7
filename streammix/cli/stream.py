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
is restored exactly and batches already consumed are skipped, so a crash
never counts a batch twice and the final parameters equal those of an
uninterrupted run.  What was consumed is known by content: a file by its
size, modification time and footer (a renamed file is not read again, a new
file under an old name is), a stream by a hash of its schema and first
batch, and its consumed rows by a running hash (another stream on standard
input is read as new; one that starts the same and then differs is refused).
Arrow streams written one after the other are all read; one with another
schema stops the run with an error saying what was left unread.

``register(subparsers)`` adds the sub-command to the main ``streammix``
parser; ``python -m streammix.cli.stream ...`` runs it on its own.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from streammix.cli.common import non_empty
from streammix.exceptions import DataError
from streammix.redact import printable, redact

# The estimator and the stream sources are imported when a stream runs, not when the
# command registers: ``streammix --help`` need not import scikit-learn and pyarrow.

__all__ = ["register", "main", "run_command"]

logger = logging.getLogger(__name__)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``stream`` sub-command to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "stream", help="fit by online EM over a stream, with checkpoints",
        description="Fit a mixture of linear regressions by online EM over an Arrow IPC "
                    "stream (a file, or '-' for standard input) or a folder where Parquet "
                    "files land, printing a line per batch and checkpointing the state so "
                    "that a restart resumes exactly.")
    p.add_argument("source", metavar="SOURCE", type=non_empty,
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
    from streammix.data.streams import ArrowStreamSource, FolderStream

    if args.source == "-" or not os.path.isdir(args.source):
        if args.watch:
            raise ValueError("--watch needs a folder as SOURCE")
        return ArrowStreamSource(args.source, target=args.target, features=features,
                                 weight=args.weight, batch_rows=args.batch_rows,
                                 on_error=args.on_error or "stop", ledger=ledger)
    on_error = "stop" if args.on_error == "stop" else "quarantine"
    return FolderStream(args.source, target=args.target, features=features,
                        weight=args.weight, ledger=ledger, watch=args.watch, poll=args.poll,
                        batch_rows=args.batch_rows, on_error=on_error)


def run_command(args) -> int:
    """Run ``streammix stream`` from parsed arguments; returns the exit code.

    The checkpoint folder is claimed and locked for the run
    (:mod:`streammix.checkpoint_folder`: a folder of other files, or one in
    use by another run, is refused).  Installs SIGINT/SIGTERM handlers that
    stop between batches (exit code 130, after the exit checkpoint).  Raises
    :class:`DataError` on bad data with ``--on-error stop`` and
    ``ValueError`` on bad arguments or an incompatible checkpoint;
    :func:`main` maps them to exit codes 2 and 1.
    """
    from streammix.checkpoint_folder import claim_checkpoint_folder
    from streammix.estimator.streaming import STATE_FILE

    lock = claim_checkpoint_folder(args.checkpoint, kind="stream", known=(STATE_FILE,))
    try:
        return _run_locked(args)
    finally:
        lock.release()


def _run_locked(args) -> int:
    from streammix.estimator.model import MixtureOfLinearRegressions
    from streammix.estimator.streaming import GUARD, load_checkpoint, run_stream

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
        signal.signal(signal.SIGTERM, GUARD.handler)
        signal.signal(signal.SIGINT, GUARD.handler)
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
        sys.stderr.write(f"streammix stream: bad data: {printable(redact(str(exc)))}\n")
        return 2
    except (ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"streammix stream: {printable(redact(str(exc)))}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
