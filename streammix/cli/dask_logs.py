"""Dask's own log records, as the command line shows them.

When the scheduler dies, the Dask client logs the traceback of its failed
reconnection (about 30 lines, under an empty message) before the pass fails;
the command's one-line error already says what happened. While a command
runs on a cluster, Dask's records leave without credentials in URLs and,
unless ``--debug``, as one line without a traceback (a record that was only a
traceback is dropped).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

__all__ = ["dask_log_records"]


class _DaskRecords(logging.Filter):
    """Redact a record; unless ``keep_tracebacks``, drop its traceback."""

    def __init__(self, keep_tracebacks: bool):
        super().__init__()
        self.keep_tracebacks = keep_tracebacks

    def filter(self, record: logging.LogRecord) -> bool:
        from streammix.redact import printable, redact

        if not self.keep_tracebacks and (record.exc_info or record.exc_text):
            record.exc_info, record.exc_text = None, None
            if not record.getMessage().strip():
                return False
        message = record.getMessage()
        clean = redact(message) if self.keep_tracebacks else printable(redact(message))
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _dask_handlers() -> list[logging.Handler]:
    """The handlers Dask's logging configuration put on its loggers in this process."""
    import distributed  # noqa: F401 - importing it applies Dask's logging configuration

    found: dict[int, logging.Handler] = {}
    for name in list(logging.Logger.manager.loggerDict):
        if name.split(".", 1)[0] in ("distributed", "dask"):
            for handler in logging.getLogger(name).handlers:
                found[id(handler)] = handler
    return list(found.values())


@contextlib.contextmanager
def dask_log_records(debug: bool = False) -> Iterator[None]:
    """Within the block, filter the records of Dask's loggers (see the module's text).

    Parameters
    ----------
    debug : bool
        Keep tracebacks (``--debug``); credentials are redacted either way.
    """
    records = _DaskRecords(keep_tracebacks=debug)
    handlers = _dask_handlers()
    for handler in handlers:
        handler.addFilter(records)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(records)
