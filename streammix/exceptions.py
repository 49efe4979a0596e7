"""Every error and warning streammix raises (all re-exported from :mod:`streammix`).

The bottom layer of the package, beside :mod:`streammix.atomic`: it imports
nothing of streammix, so every module can raise these.

:class:`NotFittedError` subclasses scikit-learn's, and importing scikit-learn
costs seconds (it imports scipy and more); the class is made when it is first
asked for (``from streammix.exceptions import NotFittedError``), so a program
that never needs it, such as ``streammix --help``, does not pay that.
"""

from __future__ import annotations

import threading

__all__ = [
    "DataError", "NotFittedError", "ConvergenceWarning", "ComponentCollapseError",
    "ComponentCollapseWarning", "SpuriousOptimumWarning",
    "InferenceWarning", "CheckpointError", "ConfigError", "NoClientError", "ChunkCrashError",
    "ClusterTimeoutError", "ClusterLostError", "FeatureNamesWarning", "RecordError",
    "ModelFileError",
    "CorruptCheckpointError", "CredentialWarning", "SourceChangedError",
]


class DataError(ValueError):
    """Bad input data: the message names the file or array, column and rows."""


class SourceChangedError(DataError):
    """A file changed (size, modification time or Parquet footer) or vanished while a fit
    was reading it; the message names the file and what changed."""


#: Declared, not bound: the first lookup calls the module's ``__getattr__``.
NotFittedError: type

_NOT_FITTED_LOCK = threading.Lock()


def _make_not_fitted_error() -> type:
    """The class :class:`NotFittedError`, made once (scikit-learn imported then)."""
    with _NOT_FITTED_LOCK:
        made = globals().get("NotFittedError")
        if made is not None:
            return made
        import sklearn.exceptions

        class NotFittedError(sklearn.exceptions.NotFittedError):
            """The estimator is used before ``fit``.

            A subclass of scikit-learn's ``NotFittedError`` (itself a ``ValueError``
            and an ``AttributeError``), so code written for scikit-learn catches it."""

        NotFittedError.__module__, NotFittedError.__qualname__ = __name__, "NotFittedError"
        globals()["NotFittedError"] = NotFittedError
        return NotFittedError


def __getattr__(name: str):
    if name == "NotFittedError":
        return _make_not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"NotFittedError"})


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the stopping rule was met."""


class ComponentCollapseError(RuntimeError):
    """A component collapsed and the policy is ``on_collapse="error"``."""


class ComponentCollapseWarning(RuntimeWarning):
    """A component was degenerate and was re-seeded or dropped; the message gives
    each component's reason and numbers (effective rows, σ ratio, weight).
    See :mod:`streammix.algorithms.degeneracy`."""


class SpuriousOptimumWarning(UserWarning):
    """A fit passed over a higher log-likelihood reached with a degenerate component
    (a spurious optimum, e.g. a spike of a few rows with σ near 0) and returned
    the best non-degenerate one; the model's ``passed_over_`` holds the details."""


class InferenceWarning(UserWarning):
    """Standard errors were computed but may not be trustworthy."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used: missing, unreadable, or from other data or settings."""


class ConfigError(ValueError):
    """A cluster config file is unreadable or invalid; the message names the file and key."""


class NoClientError(RuntimeError):
    """A :class:`~streammix.DaskEngine` was used with no Dask client given or running."""


class ChunkCrashError(RuntimeError):
    """A chunk killed every worker that tried it (``distributed``'s ``KilledWorker``).

    Attributes
    ----------
    descriptor : object or None
        The chunk's descriptor (for Parquet, a
        :class:`~streammix.data.parquet.source.ParquetPiece`: file and row
        groups); None when the task that died held a run of several small
        chunks (see ``descriptors``).
    descriptors : tuple
        The descriptors of every chunk of the task that died: one, or the
        run of consecutive small chunks read together (one of them is the
        culprit).
    """

    def __init__(self, message: str, descriptor=None, descriptors=()):
        super().__init__(message)
        self.descriptor = descriptor
        self.descriptors = tuple(descriptors) or ((descriptor,) if descriptor is not None
                                                  else ())


class ClusterTimeoutError(RuntimeError):
    """A pass on a cluster waited too long: for the scheduler to answer, for a worker
    to connect, or for any of its tasks to finish (see
    :class:`~streammix.DaskEngine`'s ``worker_timeout`` and ``pass_timeout``)."""


class ClusterLostError(RuntimeError):
    """The client lost its connection to the scheduler during a pass (the scheduler
    process died, or the network between them failed); the pass was abandoned.

    A checkpointed fit keeps the passes it finished: ``--resume`` continues it
    once a scheduler is back.
    """


class RecordError(ValueError):
    """A record read from a file (a checkpoint, a pass file, a stream's state, a model
    file) does not match its schema: a missing or extra field, a wrong type or
    shape, a non-finite number, an unknown name.

    The message names the file and the field (``…/passes/000003.json: field
    'stats[0].s0': has 3000000 entries, expected 2``).

    Attributes
    ----------
    field : str or None
        The field, as a path into the record (``fitted.params.beta``).
    file : str or None
        The file (its credentials redacted), when known.
    """

    def __init__(self, message: str, field: str | None = None, file: str | None = None):
        super().__init__(message)
        self.field = field
        self.file = file


class ModelFileError(RecordError):
    """A model file is not a valid streammix model: the message names the file and field."""


class CorruptCheckpointError(CheckpointError, RecordError):
    """A checkpoint or stream state file is corrupt or edited: names the file and field."""

    def __init__(self, message: str, field: str | None = None, file: str | None = None):
        RecordError.__init__(self, message, field, file)


class CredentialWarning(UserWarning):
    """Credentials were given where they show (``--storage-options`` on a command line
    sits in ``ps`` and shell history); put them in the environment or a file."""


class FeatureNamesWarning(UserWarning):
    """Columns are taken by position where names were expected: an array given to a
    model fitted on named columns, or a table to a model fitted on an array."""
