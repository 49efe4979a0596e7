"""``streammix plot``: diagnostic figures of saved models.

``register(subparsers)`` adds the command to the main ``streammix`` parser;
``python -m streammix.cli.plot`` runs it alone.  What the user sees of it is
:data:`DESCRIPTION`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from streammix.cli.common import (
    comma_list,
    filter_text,
    json_object,
    load_model,
    warn_literal_credentials,
)
from streammix.exceptions import DataError

__all__ = ["register", "main", "run"]

logger = logging.getLogger(__name__)

KINDS = ("fit", "loglik", "bic")

#: The command's help text.
DESCRIPTION = """\
Draw a diagnostic figure of saved models:

    streammix plot model.json DATA --target y [--features x1,x2] --feature x1 --out fit.png
    streammix plot model.json --kind loglik --out trace.png
    streammix plot k1.json k2.json k3.json --kind bic --out bic.png

DATA is read as 'streammix fit' reads it (a Parquet file, a folder with hive
partitions, a glob, a URL; --filter, --on-invalid), or is a CSV file; only a
random sample of --max-points rows is kept, so it may be larger than memory.
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="MODEL_OR_DATA",
                        help="fit: MODEL DATA; loglik: MODEL; bic: MODEL [MODEL ...] "
                             "(models saved by 'streammix fit' / model.save)")
    parser.add_argument("--kind", choices=KINDS, default="fit",
                        help="fit: data coloured by component with fitted lines (default); "
                             "loglik: log-likelihood per EM iteration; bic: BIC against k")
    parser.add_argument("--target", help="target column of DATA (kind fit)")
    parser.add_argument("--features", nargs="+", type=comma_list, metavar="COL,COL,...",
                        help="feature columns of DATA in the model's order, comma-separated "
                             "(default: the names stored in the model)")
    parser.add_argument("--on-invalid", choices=("error", "drop"), default="error",
                        help="rows of DATA with null, NaN or infinite values: stop with an "
                             "error naming file, column and row (default), or leave them out")
    parser.add_argument("--filter", type=filter_text, metavar="EXPR",
                        help="plot only the rows of DATA that match (as for 'fit')")
    parser.add_argument("--storage-options", type=json_object, metavar="JSON",
                        help="fsspec options for a remote DATA URL (as for 'fit')")
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
                                   description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _load(path):
    try:
        return load_model(path)[0]
    except FileNotFoundError:
        raise DataError(f"{path}: no such model file") from None


def run(args) -> int:
    """Execute a parsed ``plot`` command; returns the exit status."""
    from streammix.core.checks import feature_names_of
    from streammix.reports.plots import plot_bic, plot_fit, plot_loglik, save_figure
    from streammix.reports.sample import read_sample

    try:
        if args.kind == "fit":
            if len(args.inputs) != 2:
                raise DataError("kind 'fit' needs MODEL DATA")
            model = _load(args.inputs[0])
            design = getattr(model, "formula_", None)  # fitted with --formula: read through it
            if design is not None and (args.features or args.target not in (None, design.target)):
                raise DataError(f"the model was fitted with formula {design.formula!r}: DATA is "
                                "read through it; do not give --features or another --target")
            if not args.target and design is None:
                raise DataError("kind 'fit' needs --target (the target column of DATA)")
            features = ([name for names in args.features for name in names] if args.features
                        else feature_names_of(model))
            if len(features) != model.n_features_in_:
                raise DataError(f"{len(features)} feature columns given; the model was fitted "
                                f"on {model.n_features_in_} ({feature_names_of(model)})")
            if args.max_points < 1:
                raise DataError("--max-points must be >= 1")
            warn_literal_credentials(args.storage_options)
            X, y = read_sample(args.inputs[1], args.target or design.target, features,
                               args.max_points, args.seed, on_invalid=args.on_invalid,
                               filters=args.filter, storage_options=args.storage_options,
                               formula=design)
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
        return 1
    print(f"wrote {args.out}")
    return 0


def main(argv=None) -> int:
    """``python -m streammix.cli.plot ...``: the ``plot`` command on its own."""
    parser = argparse.ArgumentParser(prog="python -m streammix.cli.plot", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
