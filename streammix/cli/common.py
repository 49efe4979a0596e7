"""Arguments and helpers common to the subcommands: data, cluster, argument types."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
from collections.abc import Iterator

__all__ = [
    "comma_list", "non_empty", "positive_int", "non_negative_int", "non_negative_float",
    "positive_float",
    "components_spec", "filter_text", "formula_text", "concomitant_spec", "json_object",
    "add_data_arguments", "check_data_arguments", "make_source", "warn_literal_credentials",
    "add_cluster_arguments",
    "open_engine", "load_model",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------ argument types
def comma_list(text: str) -> list[str]:
    """Column names separated by commas (argparse type).

    ``"x1,x2, x3"`` -> ``["x1", "x2", "x3"]``: spaces around a name are
    dropped.  A name holding a comma, a quote or spaces to keep is quoted
    with double quotes (``'"a,b"," f ",x3'`` -> ``["a,b", " f ", "x3"]``;
    ``""`` inside quotes is one quote), or its characters are escaped with
    a backslash (``'a\\\\,b'`` -> ``["a,b"]``).  An empty name, an unclosed
    quote or a trailing backslash is a usage error.
    """
    fields: list[list[tuple[str, bool]]] = [[]]  # (character, protected)
    i, n, quoted = 0, len(text), False
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 == n:
                raise argparse.ArgumentTypeError(f"trailing backslash in {text!r}")
            fields[-1].append((text[i + 1], True))
            i += 2
            continue
        if quoted:
            if c == '"' and text[i + 1:i + 2] == '"':
                fields[-1].append(('"', True))
                i += 1
            elif c == '"':
                quoted = False
            else:
                fields[-1].append((c, True))
        elif c == '"':
            quoted = True
            fields[-1].append(("", True))  # an empty quoted name is still a name
        elif c == ",":
            fields.append([])
        else:
            fields[-1].append((c, False))
        i += 1
    if quoted:
        raise argparse.ArgumentTypeError(f"unclosed double quote in {text!r}")
    names = []
    for field in fields:
        while field and not field[0][1] and field[0][0].isspace():
            field.pop(0)
        while field and not field[-1][1] and field[-1][0].isspace():
            field.pop()
        name = "".join(c for c, _ in field)
        if not name:
            raise argparse.ArgumentTypeError(f"empty column name in {text!r}")
        names.append(name)
    return names


def non_empty(text: str) -> str:
    """A path or URL that is not empty (argparse type): ``""`` is a usage error."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (give a file, folder, glob or URL)")
    return text


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


#: An integer >= 1 (argparse type).
positive_int = _int_at_least(1)
#: An integer >= 0 (argparse type).
non_negative_int = _int_at_least(0)


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (argparse type)."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def components_spec(text: str) -> list[int]:
    """``"3"``, ``"1..6"`` or ``"2,3,5"`` -> the sorted numbers of components (argparse type)."""
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split("..", 1))
            values = list(range(low, high + 1))
        else:
            values = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number of components, a range such as 1..6, or a list such as 2,3,5: "
            f"{text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"numbers of components must be >= 1, got {text!r}")
    return values


def filter_text(text: str) -> str:
    """A row filter such as ``"region in ('a','b') and year >= 2020"``, checked (argparse type).

    The syntax is that of :func:`streammix.data.parquet.filter_text.parse_filter`.
    """
    from streammix.data.parquet.filter_text import parse_filter

    try:
        parse_filter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def formula_text(text: str) -> str:
    """A model formula with a target, such as ``"y ~ x1 + C(region) + x2:x3"``, checked
    (argparse type): the syntax of :mod:`streammix.data.formula`."""
    from streammix.data.formula import FormulaDesign

    try:
        design = FormulaDesign(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if design.target is None:
        raise argparse.ArgumentTypeError(f"formula {text!r} has no left-hand side: give "
                                         "'TARGET ~ TERMS'")
    return text


def concomitant_spec(text: str) -> str | list[str]:
    """``--concomitant``: a gate formula when it starts with "~" (``"~ z1 + C(seg)"``,
    checked: no left-hand side), else columns as :func:`comma_list` reads them (argparse type)."""
    if not text.lstrip().startswith("~"):
        return comma_list(text)
    from streammix.estimator.concomitant_formulas import gate_design

    try:
        gate_design(text)  # a syntax error, or a formula that reads no column
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def json_object(text: str) -> dict:
    """A JSON object such as ``'{"anon": true}'`` (argparse type)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object ({...})")
    return value


# ------------------------------------------------------------------ the data
def add_data_arguments(parser: argparse.ArgumentParser, *, require_columns: bool = True,
                       formula: bool = False) -> None:
    """DATA, --target, --features (or --formula), --weight, --on-invalid, --filter,
    --chunk-rows, --format, --storage-options.

    With ``require_columns``, --target and --features are required unless
    ``formula`` adds --formula and it is given; giving both is a usage error
    (:func:`check_data_arguments`, run by the program after parsing).
    """
    parser.add_argument("data", metavar="DATA", type=non_empty,
                        help="a Parquet, CSV or JSON-lines file, a folder of them (hive "
                             "partitions allowed), a glob, or a URL such as s3://bucket/lake")
    either = " (or --formula)" if formula else ""
    parser.add_argument("--target", metavar="COL", help=f"column of the response y{either}")
    parser.add_argument("--features", type=comma_list, metavar="COL,COL,...",
                        help=f"feature columns, comma-separated{either}")
    if formula:
        parser.add_argument("--formula", type=formula_text, metavar="FORMULA",
                            help="a model formula instead of --target and --features, e.g. "
                                 "\"y ~ x1 + C(region) + x2:x3 + np.log(x4)\": C() or a "
                                 "column of strings is categorical (levels sorted, the first "
                                 "the baseline, learned over all the data in one pass); '- 1' "
                                 "removes the intercept")
    parser.set_defaults(usage_check=functools.partial(
        check_data_arguments, parser, require_columns=require_columns))
    parser.add_argument("--weight", metavar="COL",
                        help="column of non-negative frequency weights (default 1 per row)")
    parser.add_argument("--on-invalid", choices=("error", "drop"), default="error",
                        help="rows with null, NaN or infinite values: stop with an error "
                             "naming file, column and row (default), or drop and count them")
    parser.add_argument("--filter", type=filter_text, metavar="EXPR",
                        help="read only the rows that match, e.g. \"region in ('a','b') and "
                             "year >= 2020\" (comparisons ==, !=, <, <=, >, >=, in, not in "
                             "joined by and/or; `quoted names`); files and row groups that "
                             "cannot match are skipped, hive partitions included")
    parser.add_argument("--chunk-rows", type=positive_int, default=131_072, metavar="N",
                        help="rows per chunk (row groups are grouped up to this; default "
                             "%(default)s)")
    parser.add_argument("--format", choices=("parquet", "csv", "json"),
                        help="the files' format (default: by their names: .csv is CSV; "
                             ".jsonl, .ndjson, .json are JSON lines; else Parquet); a CSV or "
                             "JSON file is one chunk")
    parser.add_argument("--storage-options", type=json_object, metavar="JSON",
                        help="fsspec options for remote URLs, e.g. "
                             "'{\"client_kwargs\": {\"endpoint_url\": \"http://host:9000\"}}'; "
                             "credentials belong in the environment, not here")


def check_data_arguments(parser: argparse.ArgumentParser, args, *,
                         require_columns: bool = True) -> None:
    """Usage errors (exit 2) of the data arguments: --formula with --target or --features,
    or, when they are required, neither --formula nor both of them."""
    formula = getattr(args, "formula", None)
    if formula is not None:
        given = [name for name in ("target", "features") if getattr(args, name) is not None]
        if given:
            parser.error(f"--formula gives the target and the features: do not give "
                         f"{' or '.join('--' + name for name in given)} with it")
    elif require_columns:
        missing = [f"--{name}" for name in ("target", "features") if getattr(args, name) is None]
        if missing:
            alternative = " (or --formula)" if hasattr(args, "formula") else ""
            parser.error(f"the following arguments are required: {', '.join(missing)}"
                         f"{alternative}")


def make_source(args, *, target=None, features=None, weight=None, formula=None,
                concomitant=None, groups=None, max_task_rows=None):
    """A :class:`~streammix.ParquetSource` from the parsed data arguments.

    ``formula`` (a string or a learned design), else ``--formula`` when given,
    reads the data through a formula instead of target and features;
    ``concomitant`` names the columns of a gate's z; ``groups`` the group
    column of grouped classes (default ``--groups`` when the command has it;
    tasks bounded by ``max_task_rows``).
    """
    from streammix.data.parquet.source import ParquetSource

    warn_literal_credentials(args.storage_options)
    formula = formula if formula is not None else getattr(args, "formula", None)
    columns = dict(formula=formula) if formula is not None else dict(
        target=target or args.target, features=features or args.features)
    return ParquetSource(
        args.data, **columns,
        weight=weight if weight is not None else args.weight,
        storage_options=args.storage_options, chunk_rows=args.chunk_rows,
        on_invalid=args.on_invalid, filters=getattr(args, "filter", None),
        concomitant=concomitant or None,
        groups=groups if groups is not None else getattr(args, "groups", None),
        max_task_rows=max_task_rows, format=getattr(args, "format", None),
    )


def warn_literal_credentials(options) -> None:
    """Warn (:class:`~streammix.CredentialWarning`) when ``--storage-options`` holds
    literal credentials: a command line shows in ``ps`` and shell history."""
    import warnings

    from streammix.exceptions import CredentialWarning
    from streammix.redact import literal_secret_keys

    keys = literal_secret_keys(options or {})
    if keys:
        warnings.warn(
            f"--storage-options carries literal credentials ({', '.join(keys)}); a command "
            "line is visible in 'ps' and in shell history. Put them in the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, ...) or in a "
            "credentials file (~/.aws/credentials, AWS_SHARED_CREDENTIALS_FILE) instead",
            CredentialWarning, stacklevel=2)


# --------------------------------------------------------------- the cluster
def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """--cluster FILE | --scheduler ADDR | --in-process."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--cluster", metavar="FILE",
                       help="run the passes on a Dask cluster described by a config file "
                            "(YAML; see cluster_configs/); 'local' is a local cluster of "
                            "worker processes (cluster_configs/local.yaml).  Default: in this "
                            "process, which is faster on one machine")
    group.add_argument("--scheduler", metavar="ADDR",
                       help="address of a running Dask scheduler, e.g. tcp://host:8786 (for "
                            "TLS use a --cluster file with certificate paths)")
    group.add_argument("--in-process", action="store_true",
                       help="run every pass in this process, without Dask (the default)")
    parser.add_argument("--worker-timeout", type=_positive_seconds, default=None, metavar="S",
                        help="seconds to wait for the cluster: for the scheduler to answer "
                             "(also when connecting with --scheduler) and for a worker when "
                             "none is connected; then stop with an error (default: the config "
                             "file's engine.worker_timeout, else its timeout, else 60)")
    parser.add_argument("--pass-timeout", type=_positive_seconds, default=None, metavar="S",
                        help="seconds a pass may go without any of its tasks finishing before "
                             "the fit stops with an error (default 600, or the config file's "
                             "engine.pass_timeout)")


def _positive_seconds(text: str) -> float:
    """A number of seconds > 0 (argparse type)."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


@contextlib.contextmanager
def open_engine(args) -> Iterator[object]:
    """The engine the arguments ask for; a cluster started here is closed on exit."""
    from streammix.engines.cluster_config import (
        ClusterConfig,
        default_cluster_config,
        load_cluster_config,
    )

    if args.in_process or not (args.scheduler or args.cluster):
        from streammix.engines.inprocess import InProcessEngine

        yield InProcessEngine()
        return
    if args.scheduler:
        address = args.scheduler if "://" in args.scheduler else f"tcp://{args.scheduler}"
        config = ClusterConfig("scheduler", {"address": address}, source="--scheduler",
                               timeout=args.worker_timeout or 60.0)
    elif args.cluster == "local" and not os.path.exists(args.cluster):
        config = default_cluster_config()
    else:
        config = load_cluster_config(args.cluster)
    from streammix.cli.dask_logs import dask_log_records
    from streammix.engines.dask_engine import DaskEngine

    with dask_log_records(getattr(args, "debug", False)):
        yield from _dask_engine(args, config, DaskEngine)


def _dask_engine(args, config, engine_class) -> Iterator[object]:
    client, closer = config.connect(worker_logs=getattr(args, "verbose", 0) >= 2)
    try:
        logger.info("running on %s", client.scheduler.address)
        options = dict(config.engine)
        # A cluster that takes long to bring workers (a batch queue) says so in 'timeout'.
        options.setdefault("worker_timeout", config.timeout or 60.0)
        for name in ("worker_timeout", "pass_timeout"):
            if getattr(args, name, None) is not None:
                options[name] = getattr(args, name)
        yield engine_class(client, **options)
    finally:
        closer()


# ---------------------------------------------------------------- model files
def load_model(path):
    """The fitted model saved in ``path`` and its record of data columns (or None).

    Read by :func:`streammix.estimator.persistence.read_model_file`, the one
    reader of model files; ``ValueError`` names the file when it is not a
    fitted streammix model.
    """
    from streammix.estimator.model import MixtureOfLinearRegressions
    from streammix.estimator.persistence import read_model_file

    return read_model_file(path, MixtureOfLinearRegressions, fitted=True)
