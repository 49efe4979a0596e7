"""The checkpoint folder of a batch fit, opened and closed the same way by every fit.

Plain, grouped and concomitant fits (:mod:`~streammix.estimator.fitting`,
:mod:`~streammix.estimator.grouped_fitting`,
:mod:`~streammix.estimator.concomitant_fitting`) open it with the source's
fingerprint and the model's hyper-parameters, and release its lock however
the fit ends; their seed and pass 0 come from
:func:`streammix.estimator.fitting.seed_and_profile`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["open_checkpoint"]


@contextlib.contextmanager
def open_checkpoint(model, source, checkpoint) -> Iterator[object]:
    """The :class:`~streammix.estimator.checkpoint.Checkpoint` of folder ``checkpoint`` for
    ``model`` on ``source`` (None without a folder), closed (its lock released) on exit."""
    if checkpoint is None:
        yield None
        return
    from streammix.estimator.checkpoint import Checkpoint, source_fingerprint
    from streammix.estimator.persistence import hyperparameters_record

    saver = Checkpoint(checkpoint, source_fingerprint(source), hyperparameters_record(model))
    try:
        yield saver
    finally:
        saver.close()
