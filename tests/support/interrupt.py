"""A fit stopped after some passes, as if its client process died (checkpoint tests)."""

from __future__ import annotations


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
