"""``streammix fit`` and ``streammix info``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from streammix.cli.common import (
    add_cluster_arguments,
    add_data_arguments,
    load_model,
    make_source,
    non_negative_float,
    non_negative_int,
    open_engine,
    positive_int,
)

__all__ = ["register", "run_fit", "run_info"]

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    fit = subparsers.add_parser(
        "fit", help="fit a mixture of linear regressions to a Parquet data set",
        description="Fit by EM, one pass over the data per iteration, on a local Dask cluster "
                    "(default), a cluster from a config file, or in this process; print the "
                    "model and write it (JSON, atomically) to --out.")
    add_data_arguments(fit)
    fit.add_argument("--components", "-k", type=positive_int, required=True, metavar="M",
                     help="number of components")
    fit.add_argument("--out", required=True, metavar="MODEL.json",
                     help="where to write the fitted model")
    fit.add_argument("--noise", choices=("per_component", "shared"), default="per_component",
                     help="one noise level per component (default) or one for all")
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
    fit.add_argument("--checkpoint", metavar="DIR",
                     help="save the fit in DIR as it goes (DIR/checkpoint.json, then one "
                          "record per pass in DIR/passes/, each written atomically), so that "
                          "an interrupted fit can be resumed")
    fit.add_argument("--se", nargs="?", const="louis", default=None,
                     choices=["louis", "opg", "sandwich"],
                     help="also compute standard errors (one more pass; default method "
                          "louis); they are saved with the model and shown by 'info'")
    fit.add_argument("--resume", action="store_true",
                     help="continue the fit saved in --checkpoint DIR (same data and "
                          "settings, else refused); the result equals an uninterrupted fit")
    add_cluster_arguments(fit)
    fit.set_defaults(func=run_fit)

    info = subparsers.add_parser("info", help="print a fitted model",
                                 description="Print the report of a model file.")
    info.add_argument("model", metavar="MODEL.json")
    info.set_defaults(func=run_info)


def run_fit(args) -> int:
    from streammix.cli.progress import FitProgress
    from streammix.data.parquet.files import redact_url
    from streammix.estimator.model import MixtureOfLinearRegressions

    out = Path(args.out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"cannot write the model to {out}: folder {out.parent} "
                                "does not exist")
    if out.is_dir():
        raise IsADirectoryError(f"cannot write the model to {out}: it is a folder")
    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint DIR (the folder of the fit to resume)")
    source = make_source(args)
    n_chunks = len(source.plan())
    logger.info("%s", source.describe())
    with open_engine(args) as engine:
        progress = None if args.quiet else FitProgress(n_chunks, args.n_init)
        if progress is not None and hasattr(engine, "on_wait"):
            engine.on_wait = progress.waiting  # what a pass waits for, on the progress line
        model = MixtureOfLinearRegressions(
            args.components, noise=args.noise, max_iter=args.max_iter, tol=args.tol,
            n_init=args.n_init, random_state=args.seed, chunk_rows=args.chunk_rows,
            init_sample_size=args.init_sample_size, standardize=args.standardize,
            engine=engine)
        try:
            model.fit(source, callback=progress, checkpoint=args.checkpoint,
                      resume=args.resume, se=args.se or False)
        finally:
            if progress is not None:
                progress.close()
    if args.on_invalid == "drop" and source.n_rows > model.n_rows_:
        logger.warning("dropped %d of %d rows with null, NaN or infinite values",
                       source.n_rows - model.n_rows_, source.n_rows)
    model.save(out, data={"path": redact_url(args.data), "target": source.target,
                          "features": source.features, "weight": source.weight})
    sys.stdout.write(model.report() + "\n")
    logger.info("model written to %s", out)
    return 0


def run_info(args) -> int:
    model, data = load_model(args.model)
    lines = [str(model.summary())]
    if data:
        weight = f", weight {data['weight']!r}" if data.get("weight") else ""
        lines.append(f"fitted on {data.get('path')}: target {data['target']!r}, "
                     f"features {', '.join(data['features'])}{weight}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
