"""Per-iteration progress of a fit: a live line on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["FitProgress"]

logger = logging.getLogger(__name__)


class FitProgress:
    """Callback for :meth:`MixtureOfLinearRegressions.fit` that shows each EM pass.

    On a terminal the line ``run 1/2  iteration 12  chunks 156 (13/pass)
    loglik -1234.5  change +0.012  (9.6 s)`` is redrawn in place (the time is
    the time since the fit started, its first pass included); when
    the stream is not a terminal (a log file, a pipe, CI) each pass becomes
    one INFO record of the ``streammix.cli.progress`` logger instead.

    Parameters
    ----------
    n_chunks : int
        Chunks in one pass (the source's plan length).
    n_runs : int
        Number of EM runs (``n_init``).
    stream : file, optional
        Where the live line goes (default ``sys.stderr``).
    tty : bool, optional
        Force the live line on or off (default: ``stream.isatty()``).
    """

    #: Seconds between redraws of the live line within a pass, and between log
    #: lines within a long pass off a terminal.
    TTY_EVERY, LOG_EVERY = 0.25, 10.0

    def __init__(self, n_chunks: int, n_runs: int = 1, stream=None, tty: bool | None = None,
                 n_rows: int | None = None):
        self.n_rows = None if n_rows is None else int(n_rows)
        self._pass_start = time.perf_counter()
        self._shown = 0.0
        self.n_chunks = int(n_chunks)
        self.n_runs = int(n_runs)
        self.stream = sys.stderr if stream is None else stream
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if isatty is not None else False
        self.tty = tty
        self.passes = 0
        self.prev: dict[int, float] = {}  # run -> its last log-likelihood
        self._iterations: set[int] = set()
        self.lines: list[str] = []
        self._clock = time.perf_counter()
        self._drawn = False
        self._wait_kind: str | None = None

    def __call__(self, record: dict) -> None:
        self._pass_start = time.perf_counter()
        seconds = self._pass_start - self._clock
        # Runs are in lock-step: the records of one scan carry the same iteration
        # (one per live run), so a scan is counted once per iteration.
        run_no = int(record.get("run", 0))
        self._iterations.add(record["iteration"])
        self.passes = len(self._iterations)
        loglik = record["loglik"]
        prev = self.prev.get(run_no)
        change = "" if prev is None else f"  change {loglik - prev:+.3g}"
        self.prev[run_no] = loglik
        run = f"run {run_no + 1}/{self.n_runs}  " if self.n_runs > 1 else ""
        event = f"  [{record['event']}]" if record.get("event") else ""
        line = (f"{run}iteration {record['iteration']:>3}  chunks {self.passes * self.n_chunks}"
                f" ({self.n_chunks}/pass)  loglik {loglik:.10g}{change}  "
                f"({seconds:.3g} s){event}")
        self.lines.append(line)
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self._drawn = True
        else:
            logger.info(line)

    def in_pass(self, fraction: float) -> None:
        """Show how far the current pass is (``engine.on_progress``).

        On a terminal the live line gets ``[pass 3: 45%, 1.2e+06 rows/s, ETA
        12 s]``, redrawn at most every :attr:`TTY_EVERY` seconds; otherwise a
        pass that has run for :attr:`LOG_EVERY` seconds logs the same every
        :attr:`LOG_EVERY` seconds (a long first pass over a large lake, say).
        """
        now = time.perf_counter()
        elapsed = now - self._pass_start
        if not 0.0 < fraction < 1.0 or elapsed <= 0.0:
            return
        if now - self._shown < (self.TTY_EVERY if self.tty else self.LOG_EVERY):
            return
        if not self.tty and elapsed < self.LOG_EVERY:
            return
        self._shown = now
        rate = "" if self.n_rows is None else f", {fraction * self.n_rows / elapsed:.3g} rows/s"
        eta = elapsed * (1.0 - fraction) / fraction
        text = f"pass {self.passes}: {100 * fraction:.0f}%{rate}, ETA {eta:.0f} s"
        if self.tty:
            last = self.lines[-1] + "  " if self.lines else ""
            self._draw(f"{last}[{text}]")
        else:
            logger.info("%s", text)

    def waiting(self, message: str | None) -> None:
        """Show what a pass waits for (``DaskEngine.on_wait``); None: the wait is over.

        On a terminal the message is appended to the live line, updated in
        place; otherwise the first message of each wait is one INFO record.
        """
        if message is None:
            self._wait_kind = None
            if self.tty and self._drawn:
                self._draw(self.lines[-1] if self.lines else "")
            return
        kind = message.split(":", 1)[0]
        if self.tty:
            last = self.lines[-1] + "  " if self.lines else ""
            self._draw(f"{last}[{message}]")
        elif kind != self._wait_kind:
            logger.info("%s", message)
        self._wait_kind = kind

    def _draw(self, line: str) -> None:
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the live line (call once the fit is over)."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
