"""``streammix fit`` and ``streammix info``."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

from streammix.cli.common import (
    add_cluster_arguments,
    add_data_arguments,
    check_data_arguments,
    components_spec,
    concomitant_spec,
    load_model,
    make_source,
    non_negative_float,
    non_negative_int,
    open_engine,
    positive_float,
    positive_int,
)

__all__ = ["register", "run_fit", "run_info"]

logger = logging.getLogger(__name__)


def _resolution(text: str):
    """``--y-resolution``: "auto", "none" or a number >= 0 (argparse type)."""
    if text.lower() in ("auto", "none"):
        return None if text.lower() == "none" else "auto"
    return non_negative_float(text)


def _check_usage(parser, args) -> None:
    """Usage errors (exit 2) of ``fit``: those of the data arguments."""
    check_data_arguments(parser, args)


def register(subparsers) -> None:
    fit = subparsers.add_parser(
        "fit", help="fit a mixture of linear regressions to a Parquet data set",
        description="Fit by EM, one pass over the data per iteration, in this process "
                    "(default), on a local Dask cluster or a cluster from a config file; "
                    "print the model and write it (JSON, atomically) to --out.")
    add_data_arguments(fit, formula=True)
    fit.add_argument("--components", "-k", type=components_spec, required=True, metavar="M",
                     help="number of components: one (3), or candidates to choose from by "
                          "--criterion in one shared scan (1..6, or 2,3,5); then the table "
                          "is printed and the chosen model written")
    fit.add_argument("--criterion", choices=("bic", "aic", "icl", "icl_bic"), default="bic",
                     help="how --components with several candidates chooses (default "
                          "%(default)s: the smallest)")
    fit.add_argument("--out", required=True, metavar="MODEL.json",
                     help="where to write the fitted model")
    fit.add_argument("--noise", choices=("per_component", "shared", "fixed"),
                     default="per_component",
                     help="one noise level per component (default), one for all, or a "
                          "known one (--sigma)")
    fit.add_argument("--sigma", type=positive_float, metavar="S",
                     help="the known noise standard deviation of --noise fixed")
    fit.add_argument("--init", choices=("auto", "random", "ybins", "resid_bins"),
                     default="auto",
                     help="starting values: auto (default: several methods, the best "
                          "kept), random (flexmix's random partitions), ybins (mixtools' "
                          "bins of y), resid_bins (bins of the OLS residuals)")
    fit.add_argument("--no-intercept", dest="fit_intercept", action="store_false",
                     help="fit no intercept (the features must hold one if wanted; with "
                          "--formula, write '- 1' in the formula instead)")
    fit.add_argument("--df-correction", action="store_true",
                     help="estimate sigma^2 as flexmix does, RSS / (n_j (1 - p/n)), to "
                          "reproduce flexmix's numbers")
    fit.add_argument("--min-weight", type=non_negative_float, default=0.0, metavar="W",
                     help="a component whose weight falls below W collapses (flexmix's "
                          "minprior, 0.05 there; default %(default)s)")
    fit.add_argument("--min-sigma-ratio", type=non_negative_float, default=0.1, metavar="R",
                     help="a component of under 3 (p + 1) effective rows with sigma below R "
                          "x the pooled OLS sigma is a spike and collapses (0: off; default "
                          "%(default)s)")
    fit.add_argument("--y-resolution", type=_resolution, default="auto", metavar="D",
                     help="the step y is recorded to: when choosing among runs, a sigma below "
                          "D/sqrt(12) is a spurious optimum ('auto': found on the data, "
                          "'none': off; default %(default)s)")
    fit.add_argument("--min-eff-rows", type=non_negative_float, default=None, metavar="N",
                     help="a component with fewer effective rows collapses (default p + 1, "
                          "its number of parameters)")
    fit.add_argument("--on-collapse", choices=("reseed", "drop", "error"), default="reseed",
                     help="what happens to a collapsed component: re-seeded (up to 3 times "
                          "per run, then dropped), dropped, or an error (default %(default)s)")
    fit.add_argument("--max-iter", type=non_negative_int, default=500, metavar="N",
                     help="EM iterations per run (default %(default)s)")
    fit.add_argument("--tol", type=non_negative_float, default=1e-4, metavar="T",
                     help="stop when the log-likelihood changes by less than T (absolute; "
                          "default %(default)s)")
    fit.add_argument("--n-init", type=positive_int, default=1, metavar="R",
                     help="runs from different starting values; the best is kept")
    fit.add_argument("--init-sample-size", type=positive_int, default=100_000, metavar="N",
                     help="rows sampled (in one pass) to choose starting values (default "
                          "%(default)s)")
    fit.add_argument("--seed", type=int, default=None, metavar="S",
                     help="random seed (sample and starting values), for reproducible fits")
    fit.add_argument("--standardize", action="store_true",
                     help="fit on standardised features and target, then map the model back "
                          "(the same optimum, better conditioned); done anyway for columns "
                          "beyond 1e-60..1e60 in magnitude")
    fit.add_argument("--groups", metavar="COL",
                     help="column of group ids: all rows of a group share one component "
                          "(flexmix's y ~ x | id); chunks that share a group are read by one "
                          "task (see 'streammix regroup' for lakes whose groups are spread)")
    fit.add_argument("--concomitant", type=concomitant_spec, metavar="COL,COL,... | FORMULA",
                     help="concomitant variables z: the components' weights pi(z) depend on "
                          "them (mixture of experts, flexmix's concomitant=FLXPmultinom): "
                          "columns, comma-separated as for --features, or a gate formula "
                          "starting with '~', e.g. \"~ z1 + C(segment)\" (levels learned in "
                          "one pass); kept in the model file, so predict reads them")
    fit.add_argument("--max-task-rows", type=positive_int, default=None, metavar="N",
                     help="with --groups: the most rows one task of joined chunks may read "
                          "(default 8 x --chunk-rows)")
    fit.add_argument("--checkpoint", metavar="DIR",
                     help="save the fit in DIR as it goes (DIR/checkpoint.json, then one "
                          "record per pass in DIR/passes/, each written atomically), so that "
                          "an interrupted fit can be resumed (one number of components only)")
    fit.add_argument("--se", nargs="?", const="louis", default=None,
                     choices=["louis", "opg", "sandwich"],
                     help="also compute standard errors (one more pass; default method "
                          "louis); they are saved with the model and shown by 'info'")
    fit.add_argument("--resume", action="store_true",
                     help="continue the fit saved in --checkpoint DIR (same data and "
                          "settings, else refused); the result equals an uninterrupted fit")
    add_cluster_arguments(fit)
    fit.set_defaults(func=run_fit, usage_check=functools.partial(_check_usage, fit))

    info = subparsers.add_parser("info", help="print a fitted model",
                                 description="Print the report of a model file.")
    info.add_argument("model", metavar="MODEL.json")
    info.set_defaults(func=run_info)


def _model_options(args) -> dict:
    """The estimator options the fit arguments set."""
    if (args.noise == "fixed") != (args.sigma is not None):
        raise ValueError("--noise fixed needs --sigma S, and --sigma needs --noise fixed")
    return dict(noise=args.noise, sigma=args.sigma, init=args.init,
                fit_intercept=args.fit_intercept, df_correction=args.df_correction,
                min_weight=args.min_weight, min_sigma_ratio=args.min_sigma_ratio,
                y_resolution=args.y_resolution,
                min_eff_rows=args.min_eff_rows, on_collapse=args.on_collapse,
                max_iter=args.max_iter, tol=args.tol,
                n_init=args.n_init, random_state=args.seed, chunk_rows=args.chunk_rows,
                init_sample_size=args.init_sample_size, standardize=args.standardize)


def run_fit(args) -> int:
    from streammix.atomic import check_writable_folder, remove_stale_temporaries
    from streammix.cli.progress import FitProgress
    from streammix.estimator.model import MixtureOfLinearRegressions
    from streammix.redact import printable, redact

    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write the model to {out}: folder {out.parent} "
                                "does not exist")
    if out.is_dir():
        raise IsADirectoryError(f"cannot write the model to {out}: it is a folder")
    check_writable_folder(out.parent, f"the model to {out}")  # before the fit, not after
    for name in remove_stale_temporaries(out.parent, target=out.name):
        logger.info("removed %s, a temporary file left by a run that was killed",
                    out.parent / name)
    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint DIR (the folder of the fit to resume)")
    candidates = args.components
    if len(candidates) > 1 and args.checkpoint:
        raise ValueError("--checkpoint works with one number of components; choose k first "
                         f"(--components {candidates[0]}..{candidates[-1]} without it)")
    if args.formula is not None and not args.fit_intercept:
        raise ValueError("--formula decides the intercept: write '- 1' in the formula "
                         "instead of --no-intercept")
    if args.groups is None and args.max_task_rows is not None:
        raise ValueError("--max-task-rows bounds the tasks of --groups: give --groups COL")
    options = _model_options(args)
    source = make_source(args, groups=args.groups, max_task_rows=args.max_task_rows,
                         concomitant=args.concomitant)
    n_chunks = len(source.plan())
    logger.info("%s", source.describe())
    table = None
    with open_engine(args) as engine:
        if len(candidates) > 1:
            from streammix.estimator.selection import select_components

            result = select_components(source, k=candidates, criterion=args.criterion,
                                       engine=engine, **options)
            model, table = result.model, str(result)
            if args.se:
                model.compute_se(source, method=args.se)
        else:
            progress = None if args.quiet else FitProgress(n_chunks, args.n_init,
                                                            n_rows=source.n_rows)
            if progress is not None and hasattr(engine, "on_wait"):
                engine.on_wait = progress.waiting  # what a pass waits for, on the progress line
            if progress is not None and hasattr(engine, "on_progress"):
                engine.on_progress = progress.in_pass  # how far a pass is
            model = MixtureOfLinearRegressions(candidates[0], engine=engine, **options)
            try:
                model.fit(source, callback=progress, checkpoint=args.checkpoint,
                          resume=args.resume, se=args.se or False)
            finally:
                if progress is not None:
                    progress.close()
    if args.on_invalid == "drop" and source.n_rows > model.n_rows_:
        logger.warning("dropped %d of %d rows with null, NaN or infinite values",
                       source.n_rows - model.n_rows_, source.n_rows)
    data = {"path": redact(args.data), "target": source.target,
            "features": [str(name) for name in model.feature_names_in_],
            "weight": source.weight}
    if args.formula is not None:  # its levels are in the model (fitted.formula)
        data["formula"] = args.formula
    if args.filter is not None:
        data["filter"] = args.filter
    if args.concomitant is not None:  # the gate's names and levels are in the model
        data["concomitant"] = args.concomitant
    model.save(out, data=data)
    if table is not None:
        sys.stdout.write(printable(table) + "\n\n")
    sys.stdout.write(printable(model.report()) + "\n")
    logger.info("model written to %s", out)
    return 0


def run_info(args) -> int:
    from streammix.redact import printable, redact

    model, data = load_model(args.model)
    summary = model.summary()
    summary.header["se_hint"] = "fit again with 'streammix fit ... --se' to have them"
    lines = [str(summary)]
    if data:
        weight = f", weight {data['weight']!r}" if data.get("weight") else ""
        where = f" where {data['filter']}" if data.get("filter") else ""
        if data.get("formula"):
            lines.append(f"formula: {data['formula']}")
        lines.append(f"fitted on {redact(data.get('path'))}{where}: target {data['target']!r}, "
                     f"features {', '.join(data['features'])}{weight}")
        gate = data.get("concomitant")
        if gate:
            lines.append(f"concomitant: {gate if isinstance(gate, str) else ', '.join(gate)}")
    sys.stdout.write(printable("\n".join(lines)) + "\n")  # names from a file: escaped
    return 0
