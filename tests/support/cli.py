"""The ``streammix`` program run in this process or as a real one, its output captured.

Most command-line tests check what the program does with its arguments and
what it prints; for those, :func:`run_main` calls
:func:`streammix.cli.main.main` here (no Python start-up, no import of
scikit-learn, scipy and pandas again: seconds per run on a busy machine).
:func:`run_cli` runs ``python -m streammix`` for what only a process shows:
its exit status as the shell sees it, signals, a terminal, resource limits,
the installed entry point.  Both return a :class:`subprocess.CompletedProcess`
(``returncode``, ``stdout``, ``stderr``).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import warnings

from support import ROOT
from support.lakes import SUBPROCESS_ENV  # a real process's environment: this checkout first

__all__ = ["SUBPROCESS_ENV", "run_main", "run_cli"]


def run_main(*args, cwd=None, umask: int | None = None,
             stdin=None) -> subprocess.CompletedProcess:
    """``main([...])`` in this process: ``args`` as strings, stdout and stderr captured.

    ``stdin``, a file name, is the program's standard input (``sys.stdin``, whose
    ``buffer`` reads the file's bytes).  ``cwd`` and ``umask`` are set for the run and
    restored after it, and so are the
    SIGINT and SIGTERM handlers (``stream`` installs its own); the warning filters
    are those of a new Python process (the suite's turn some warnings into errors;
    the program shows them as log lines).
    """
    from streammix.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    previous_umask = os.umask(umask) if umask is not None else None
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_stdin = sys.stdin
    try:
        if stdin is not None:
            sys.stdin = io.TextIOWrapper(open(stdin, "rb"))
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            _process_default_filters()
            code = main([str(a) for a in args])
    finally:
        if sys.stdin is not previous_stdin:
            sys.stdin.close()
            sys.stdin = previous_stdin
        os.chdir(here)
        for sig, handler in handlers.items():
            if signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        if previous_umask is not None:
            os.umask(previous_umask)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def _process_default_filters() -> None:
    """The warning filters Python starts with (``python -W`` and ``PYTHONWARNINGS`` unset)."""
    warnings.resetwarnings()
    for action, category in (("ignore", ResourceWarning), ("ignore", ImportWarning),
                             ("ignore", PendingDeprecationWarning),
                             ("ignore", DeprecationWarning)):
        warnings.filterwarnings(action, category=category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


def run_cli(*args, cwd=None, timeout: float = 120, env=None,
            **popen) -> subprocess.CompletedProcess:
    """``python -m streammix ARGS`` as a process of its own (text output captured)."""
    return subprocess.run([sys.executable, "-m", "streammix", *map(str, args)],
                          cwd=cwd if cwd is not None else ROOT,
                          env=SUBPROCESS_ENV if env is None else env,
                          capture_output=True, text=True, timeout=timeout, **popen)
