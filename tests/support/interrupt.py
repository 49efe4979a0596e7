"""A fit stopped after some passes, as if its client process died (checkpoint tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from support import ROOT


class Interrupt(Exception):
    """Stands for a client process that dies after some passes."""


def stop_after(n_passes):
    """A fit callback that raises :class:`Interrupt` at the record after ``n_passes``."""
    count = [0]

    def callback(record):
        count[0] += 1
        if count[0] > n_passes:
            raise Interrupt

    return callback


def run_killed(script, *args):
    """Run ``python -c script *args`` with this checkout importable and assert that the
    process ended by SIGKILL (the script kills itself mid-fit)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
