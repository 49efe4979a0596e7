"""Parquet sources that misbehave on purpose, steered by marker files (reliability tests).

They are read on Dask worker processes, so their state lives in files of a
``gate`` folder that every process sees:

* ``crash`` holds a file name: reading any chunk of that file ends the reading
  process at once (``os._exit``), as a segfaulting reader would.
* ``crash-once`` holds a file name: the first read of a chunk of that file
  (over all processes) leaves a marker ``crashed`` and ends the reading
  process; later reads succeed (a worker lost once, mid-pass).
* ``flaky``: the first read of each chunk raises ``OSError`` and leaves a
  marker ``failed-<file>-<first row>``; later reads of that chunk succeed.
* ``slow`` holds a number of seconds: every read first sleeps that long.
* ``block`` holds the name of a ``distributed.Event``: a read first writes
  ``waiting-<pid>`` and then waits until the event is set (while ``block``
  exists).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from streammix import ParquetSource


class GatedSource(ParquetSource):
    """A :class:`ParquetSource` whose reads obey the marker files in ``gate``."""

    def __init__(self, path, *, gate, **kwargs):
        super().__init__(path, **kwargs)
        self.gate = str(gate)

    def read(self, piece):
        gate = Path(self.gate)
        if (gate / "slow").exists():
            time.sleep(float((gate / "slow").read_text()))
        crash = gate / "crash"
        if crash.exists() and os.path.basename(piece.path) == crash.read_text().strip():
            os._exit(3)  # the worker process dies with the task
        once = gate / "crash-once"
        if once.exists() and os.path.basename(piece.path) == once.read_text().strip():
            try:
                with open(gate / "crashed", "x"):
                    pass
            except FileExistsError:
                pass
            else:
                os._exit(3)  # this worker dies once; the task is retried elsewhere
        if (gate / "flaky").exists():
            marker = gate / f"failed-{os.path.basename(piece.path)}-{piece.first_row}"
            try:
                with open(marker, "x"):
                    pass
            except FileExistsError:
                pass
            else:
                raise OSError(f"transient failure reading {piece.path} (test)")
        block = gate / "block"
        if block.exists():
            try:
                name = block.read_text().strip()
            except FileNotFoundError:  # unblocked meanwhile
                name = ""
            if name:
                from distributed import Event
                (gate / f"waiting-{os.getpid()}").write_text(str(piece.first_row))
                Event(name).wait(timeout=60)
        return super().read(piece)
