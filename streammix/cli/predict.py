"""``streammix predict``: predictions of a fitted model, written as Parquet."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from streammix.cli.common import (
    add_data_arguments,
    comma_list,
    json_object,
    load_model,
    make_source,
    warn_literal_credentials,
)
from streammix.exceptions import DataError

__all__ = ["register", "run_predict"]

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="write predictions of a fitted model for a Parquet data set",
        description="Write, for every row, the mixture mean and, when the data has the "
                    "target, the most likely component, the log-likelihood and the posterior "
                    "probability of each component (columns mean, component, loglik, "
                    "prob_1..prob_M; components numbered from 1 as in the report); without "
                    "the target, the mixture's standard deviation, its 5%, 50% and 95% "
                    "quantiles and the prior probability of each component (columns mean, "
                    "sd, q05, q50, q95, prior_1..prior_M); plus a row_id or the --keep "
                    "columns.  One "
                    "Parquet file per input file, same relative path under --out, a local "
                    "folder or any fsspec URL (s3://bucket/pred); written to a temporary "
                    "folder beside it and renamed (at a URL: copied, then _SUCCESS written) "
                    "into place at the end, so a failed run leaves nothing, and a run that "
                    "finds --out taken by another at that moment fails instead of replacing "
                    "it.  An --out inside, or holding, the "
                    "input is refused.  Target and features default to those the model was "
                    "fitted on; features are matched by name.  A model fitted with --formula "
                    "reads the data through its formula, with the levels learned in the fit "
                    "(a level it did not see is an error naming column and level).  A model "
                    "fitted with concomitant variables z predicts with the weights pi(z) of "
                    "each row (prior_j is pi_j(z); mean, sd, quantiles and posteriors use "
                    "them): the data must hold the z columns.")
    parser.add_argument("model", metavar="MODEL.json", help="a model written by streammix fit")
    add_data_arguments(parser, require_columns=False)
    parser.add_argument("--out", required=True, metavar="DIR|URL",
                        help="output folder or URL, new (e.g. s3://bucket/pred)")
    parser.add_argument("--out-storage-options", type=json_object, metavar="JSON",
                        help="fsspec options for an --out URL (default: --storage-options "
                             "when --out is on the same file system as the data)")
    parser.add_argument("--keep", type=comma_list, metavar="COL,COL,...",
                        help="input columns to copy to the output (instead of row_id)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out if it exists (once the new output is complete)")
    parser.add_argument("--groups", metavar="COL",
                        help="column of group ids (a model fitted with --groups): prob_j and "
                             "component are those of each row's group, over all its rows")
    parser.set_defaults(func=run_predict)


def run_predict(args) -> int:
    from streammix.atomic import remove_stale_temporaries
    from streammix.estimator.prediction import write_predictions
    from streammix.redact import redact

    model, data = load_model(args.model)
    data = data or {}
    concomitant = getattr(model, "concomitant_formula_", None) \
        or list(getattr(model, "concomitant_names_", None) or [])  # z columns, or a gate formula
    if getattr(model, "formula_", None) is not None:
        source = _formula_source(args, model.formula_, concomitant)
    else:
        source = _columns_source(args, model, data, concomitant)
    if "://" not in args.out:
        out = Path(args.out)
        for name in remove_stale_temporaries(out.parent, target=out.name):
            logger.info("removed %s, a temporary folder left by a run that was killed",
                        out.parent / name)
    warn_literal_credentials(args.out_storage_options)
    summary = write_predictions(model, source, args.out, keep=args.keep,
                                overwrite=args.overwrite,
                                storage_options=args.out_storage_options)
    print(f"wrote predictions for {summary.n_rows} rows in {len(summary.files)} files to "
          f"{redact(str(summary.out_dir))}", file=sys.stderr)
    return 0


def _formula_source(args, design, concomitant):
    """The data read through the model's formula and levels (with its target if there)."""
    if args.features:
        raise DataError(f"the model was fitted with formula {design.formula!r}: its features "
                        "are the formula's columns; do not give --features")
    if args.target and args.target != design.target:
        raise DataError(f"--target {args.target!r} is not the target of the model's formula "
                        f"{design.formula!r}")
    source = make_source(args, formula=design.without_target(), concomitant=concomitant)
    if args.target or (design.target and source.has_column(design.target)):
        return make_source(args, formula=design, concomitant=concomitant)
    logger.info("the data has no target column %r: writing mean, sd, quantiles and prior "
                "probabilities", design.target)
    return source


def _columns_source(args, model, data, concomitant):
    """The data read by the columns of the fit (or the --target/--features given)."""
    from streammix.core.checks import feature_names_of
    from streammix.data.frames import names_mismatch_message

    target = args.target or data.get("target")
    features = data.get("features") or feature_names_of(model)
    if args.features:  # taken by name: the model's order, whatever the order given
        message = names_mismatch_message(features, args.features)
        if message is not None or len(args.features) != len(features):
            raise DataError(f"--features {','.join(args.features)} are not the columns the "
                            f"model was fitted on ({','.join(features)}): "
                            + (message or "").replace("\n", " ").strip())
    if len(features) != model.n_features_in_:
        raise ValueError(f"{len(features)} feature columns given, the model was fitted on "
                         f"{model.n_features_in_}")
    if args.target:  # asked for: it must be there
        return make_source(args, target=args.target, features=features,
                           concomitant=concomitant)
    source = make_source(args, target=None, features=features, concomitant=concomitant)
    if target and source.has_column(target):  # the model's target, when the data has it
        return make_source(args, target=target, features=features, concomitant=concomitant)
    logger.info("the data has no target column %r: writing mean, sd, quantiles and prior "
                "probabilities", target)
    return source
