"""``streammix plot``: diagnostic figures of saved models.

::

    streammix plot model.json DATA --target y [--features x1 x2] --feature x1 --out fit.png
    streammix plot model.json --kind loglik --out trace.png
    streammix plot k1.json k2.json k3.json --kind bic --out bic.png

``DATA`` is a Parquet file, a folder of Parquet files, or a CSV file; only a
random sample of ``--max-points`` rows is kept (the pass-0 reservoir
sampler, reading one record batch at a time), so the data may be larger
than memory.  ``register(subparsers)`` adds the command to the main
``streammix`` parser; ``python -m streammix.cli.plot`` runs it alone.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from streammix.algorithms.start.candidates import Profile, ProfileTask
from streammix.core.checks import DataError, check_finite
from streammix.data.arrays import Chunk
from streammix.engines.inprocess import tree_sum

__all__ = ["register", "main", "run", "read_sample"]

logger = logging.getLogger(__name__)

KINDS = ("fit", "loglik", "bic")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="MODEL_OR_DATA",
                        help="fit: MODEL DATA; loglik: MODEL; bic: MODEL [MODEL ...] "
                             "(models saved by 'streammix fit' / model.save)")
    parser.add_argument("--kind", choices=KINDS, default="fit",
                        help="fit: data coloured by component with fitted lines (default); "
                             "loglik: log-likelihood per EM iteration; bic: BIC against k")
    parser.add_argument("--target", help="target column of DATA (kind fit)")
    parser.add_argument("--features", nargs="+", metavar="COLUMN",
                        help="feature columns of DATA in the model's order "
                             "(default: the names stored in the model)")
    parser.add_argument("--feature", help="feature on the horizontal axis (default: the first)")
    parser.add_argument("--others", choices=("mean", "data"), default="mean",
                        help="fitted lines with the other features at their means (default), "
                             "or fitted means at the sampled rows (for x, x^2 style features)")
    parser.add_argument("--max-points", type=int, default=5000,
                        help="rows sampled from DATA (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--dpi", type=int, default=120)
    parser.add_argument("--out", required=True, help="output image (.png, .pdf, .svg)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``plot`` command to a ``streammix`` sub-parser collection.

    The parser's defaults carry ``func=run``: call ``args.func(args)``, which
    returns the exit status.
    """
    parser = subparsers.add_parser("plot", help="draw diagnostic figures of saved models",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _csv_batches(path: Path, columns: list[str]):
    import pyarrow.csv as pacsv

    try:
        reader = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=columns))
    except Exception as exc:  # pyarrow raises several types for a bad or empty file
        raise DataError(f"{path}: cannot read as CSV ({exc})") from None
    yield str(path), reader


def _parquet_batches(path: Path, columns: list[str]):
    import pyarrow.parquet as pq

    files = sorted(p for p in path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .parquet files in this folder")
    for file in files:
        try:
            pf = pq.ParquetFile(file)
        except Exception as exc:
            raise DataError(f"{file}: not a readable Parquet file ({exc})") from None
        names = pf.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(f"{file}: missing column(s) {missing}; it has {names}")
        yield str(file), pf.iter_batches(columns=columns, batch_size=65_536)


def read_sample(path, target: str, features: list[str], size: int = 5000, seed: int = 0):
    """A chunk-invariant random sample of rows of a Parquet file/folder or CSV file.

    Returns ``(X, y)`` with at most ``size`` rows; the data is read one record
    batch at a time and only the needed columns.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    columns = list(features) + [target]
    if len(set(columns)) != len(columns):
        raise DataError(f"the target {target!r} is also listed as a feature")
    is_csv = path.is_file() and path.suffix.lower() in (".csv", ".gz", ".txt")
    batches = _csv_batches(path, columns) if is_csv else _parquet_batches(path, columns)
    task = ProfileTask(int(seed), int(size))

    def profiles():
        for origin, reader in batches:
            first = 0
            try:
                for batch in reader:
                    arrays = []
                    for name in columns:
                        if name not in batch.schema.names:
                            raise DataError(f"{origin}: missing column {name!r}")
                        col = batch.column(name)
                        if col.null_count:
                            raise DataError(f"{origin}: column {name!r} has {col.null_count} "
                                            f"null values in rows {first}..{first + len(col) - 1}")
                        try:
                            values = col.to_numpy(zero_copy_only=False).astype(np.float64)
                        except (TypeError, ValueError) as exc:
                            raise DataError(f"{origin}: column {name!r} is not numeric "
                                            f"({col.type}): {exc}") from None
                        check_finite(values, f"column {name!r}", first, f"{origin}: ")
                        arrays.append(values)
                    n = len(arrays[-1])
                    X = np.column_stack(arrays[:-1]) if features else np.empty((n, 0))
                    yield task(Chunk(X, arrays[-1], np.ones(n), origin, first))
                    first += n
            except DataError:
                raise
            except Exception as exc:  # decoding errors of a corrupt file
                raise DataError(f"{origin}: cannot read rows from {first} on ({exc})") from None

    profile = tree_sum(profiles(), Profile.empty(len(features), int(size)))
    if profile.n_rows == 0:
        raise DataError(f"{path}: no rows")
    logger.info("sampled %d of %d rows from %s", profile.y.size, profile.n_rows, path)
    return profile.X, profile.y


def _load(path):
    from streammix.estimator.model import MixtureOfLinearRegressions

    try:
        return MixtureOfLinearRegressions.load(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such model file") from None
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a streammix model file ({exc})") from None


def run(args) -> int:
    """Execute a parsed ``plot`` command; returns the exit status."""
    from streammix.reports.plots import plot_bic, plot_fit, plot_loglik, save_figure

    try:
        if args.kind == "fit":
            if len(args.inputs) != 2:
                raise DataError("kind 'fit' needs MODEL DATA")
            if not args.target:
                raise DataError("kind 'fit' needs --target (the target column of DATA)")
            model = _load(args.inputs[0])
            features = args.features or list(model.feature_names_in_)
            if len(features) != model.n_features_in_:
                raise DataError(f"{len(features)} feature columns given; the model was fitted "
                                f"on {model.n_features_in_} ({model.feature_names_in_})")
            if args.max_points < 1:
                raise DataError("--max-points must be >= 1")
            X, y = read_sample(args.inputs[1], args.target, features, args.max_points,
                               args.seed)
            feature = args.feature if args.feature is not None else 0
            if isinstance(feature, str) and feature in features:
                feature = features.index(feature)
            elif isinstance(feature, str):
                raise DataError(f"--feature {feature!r} is not one of the features {features}")
            fig = plot_fit(model, X, y, feature, max_points=args.max_points,
                           random_state=args.seed, others=args.others)
            fig.axes[0].set_xlabel(features[feature])
        elif args.kind == "loglik":
            if len(args.inputs) != 1:
                raise DataError("kind 'loglik' needs exactly one MODEL")
            fig = plot_loglik(_load(args.inputs[0]))
        else:
            table = {}
            for path in args.inputs:
                model = _load(path)
                k = model.n_components_
                if k in table:
                    raise DataError(f"{path}: a second model with k = {k}")
                table[k] = model.information_criteria()["bic"]
            fig = plot_bic(table)
        save_figure(fig, args.out, dpi=args.dpi)
    except (DataError, ValueError, OSError) as exc:
        print(f"streammix plot: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def main(argv=None) -> int:
    """``python -m streammix.cli.plot ...``: the ``plot`` command on its own."""
    parser = argparse.ArgumentParser(prog="python -m streammix.cli.plot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
