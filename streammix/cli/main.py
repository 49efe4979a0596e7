"""The ``streammix`` command line program: parse, call the library, set the exit code.

Subcommands live in small modules listed in :data:`COMMAND_MODULES`; each
defines ``register(subparsers)``, which adds its parser(s) with
``subparsers.add_parser(...)`` and sets ``func=run`` (``run(args) -> int``)
with ``parser.set_defaults``.  Adding a command is one line in that table.

Exit codes: 0 success, 1 a data, configuration or fit error (one line on
stderr, no traceback unless ``--debug``), 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
import traceback
import warnings
from pathlib import Path

__all__ = ["main", "build_parser", "COMMAND_MODULES"]

logger = logging.getLogger(__name__)

#: (module, required): modules that register subcommands, in help order.
#: Optional ones are skipped when the module is not installed.
COMMAND_MODULES: tuple[tuple[str, bool], ...] = (
    ("streammix.cli.fit", True),        # fit, info
    ("streammix.cli.predict", True),    # predict
    ("streammix.cli.regroup", True),    # regroup (lakes by group)
    ("streammix.cli.stream", False),    # stream (online EM)
    ("streammix.cli.plot", False),      # plot (inference)
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand registered."""
    from streammix import __version__

    parser = argparse.ArgumentParser(
        prog="streammix",
        description="Mixtures of linear regressions by EM on data larger than memory.",
    )
    parser.add_argument("--version", action="version", version=f"streammix {__version__}")
    _add_global_arguments(parser, default=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name, required in COMMAND_MODULES:
        module = _command_module(module_name, required)
        if module is not None:
            module.register(subparsers)
    # The global options are accepted after the subcommand too (``fit ... -q``);
    # there they have no default, so that one given before it is kept.
    for command in subparsers.choices.values():
        _add_global_arguments(command, default=False)
    return parser


def _add_global_arguments(parser: argparse.ArgumentParser, *, default: bool) -> None:
    """-v, -q and --debug; with ``default`` False they set nothing when absent."""
    def given(value):
        return value if default else argparse.SUPPRESS

    group = parser.add_argument_group("global options") if not default else parser
    group.add_argument("-v", "--verbose", action="count", default=given(0),
                       help="more log output (-v: library info, -vv: debug)")
    group.add_argument("-q", "--quiet", action="store_true", default=given(False),
                       help="only errors on stderr (no progress)")
    group.add_argument("--debug", action="store_true", default=given(False),
                       help="show the full traceback when a command fails")


def _command_module(module_name: str, required: bool):
    """Import a command module; an optional one that is absent or fails to import is skipped.

    A failed import is reported on stderr (a warning), and the other commands work.

    Optional ``streammix.*`` modules count only when they belong to this copy
    of the package (an editable install of another checkout can otherwise
    supply a module of a different version).
    """
    if required:
        return importlib.import_module(module_name)
    try:
        spec = importlib.util.find_spec(module_name)
    except ImportError:
        spec = None
    if spec is None:
        return None
    here = Path(__file__).resolve().parent
    if module_name.startswith("streammix.") and (
            spec.origin is None or Path(spec.origin).resolve().parent != here):
        logger.debug("skipping %s from another installation (%s)", module_name, spec.origin)
        return None
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:  # e.g. a missing optional dependency: the rest still works
        # logging is not set up yet (and the package may add a NullHandler): print
        print(f"streammix: warning: the commands of {module_name} are unavailable: {exc}",
              file=sys.stderr)
        return None


def _configure_logging(verbose: int, quiet: bool) -> list[tuple[logging.Logger, object]]:
    """Send streammix logs and Python warnings to stderr; return what to undo."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    handler.addFilter(_Redacting())
    if quiet:
        levels = {"streammix": logging.ERROR, "py.warnings": logging.ERROR}
    else:
        base = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
        levels = {"streammix": base, "streammix.cli.progress": min(base, logging.INFO),
                  "py.warnings": logging.WARNING}
        if verbose >= 2:
            levels["distributed"] = logging.INFO
    undo = []
    for name, level in levels.items():
        log = logging.getLogger(name)
        undo.append((log, (log.level, log.propagate)))
        log.setLevel(level)
        if name in ("streammix", "py.warnings"):
            log.addHandler(handler)
            log.propagate = False
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    undo.append((None, previous))
    return [(log, state, handler) for log, state in undo]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one log line: its class and message, not the code that raised it."""
    text = " ".join(str(message).split())
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, text)


def _restore_logging(undo) -> None:
    for log, state, *_ in undo:
        if log is None:
            warnings.showwarning = state
    undo = [item for item in undo if item[0] is not None]
    for log, (level, propagate), handler in undo:
        log.setLevel(level)
        log.propagate = propagate
        log.removeHandler(handler)


class _Redacting(logging.Filter):
    """Log records leave without credentials in URLs (:func:`streammix.redact.redact`)
    and without control characters (:func:`streammix.redact.printable`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from streammix.redact import printable, redact

        message = record.getMessage()
        clean = printable(redact(message))
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _one_line(exc: BaseException) -> str:
    from streammix.redact import printable, redact

    text = printable(redact(" ".join(str(exc).split())))
    if not text:
        text = type(exc).__name__
    elif not isinstance(exc, (ValueError, OSError, RuntimeError)):
        text = f"{type(exc).__name__}: {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the program; return the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check = getattr(args, "usage_check", None)
        if check is not None:  # usage errors argparse cannot see (options excluding others)
            check(args)
    except SystemExit as exc:  # argparse: --help / --version (0) or a usage error (2)
        return int(exc.code or 0)
    undo = _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("streammix: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:  # the traceback, without credentials in URLs
            from streammix.redact import redact

            sys.stderr.write(redact("".join(traceback.format_exception(exc))))
            return 1
        print(f"streammix {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    finally:
        _restore_logging(undo)


if __name__ == "__main__":  # pragma: no cover - python -m streammix.cli.main
    sys.exit(main())
