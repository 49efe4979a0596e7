"""Checkpoint folders: a marker that says a folder is ours, a lock that says whose it is.

A checkpoint folder (``fit --checkpoint DIR``, ``stream --checkpoint DIR``)
holds the marker file :data:`MARKER`, written when streammix first uses the
folder.  streammix writes into, and deletes its own files from, only

* a new folder (made here; its parent must exist),
* an existing empty folder,
* a folder with the marker,
* a folder without the marker that holds one of the checkpoint's own files
  (``checkpoint.json``, ``state.json``): a checkpoint written before markers
  existed; the marker is added.

Any other folder is refused (:class:`~streammix.exceptions.CheckpointError`),
so that ``--checkpoint`` on a folder of other files deletes or overwrites
nothing.

While a run uses the folder it holds the lock file :data:`LOCK`: an
exclusive ``flock`` on it, and the owner's pid and host written in it.  A
second run on the same folder is refused, naming the owner.  The kernel
drops the ``flock`` of a process that dies, however it dies, so a lock left
by a killed run is taken over by the next one, with a warning naming the
dead pid.  (Where ``flock`` is not supported, the pid is checked instead.)
The lock file is removed when the run ends.

The bottom layer of the package, beside :mod:`streammix.atomic`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from pathlib import Path

from streammix.atomic import atomic_write_text, remove_stale_temporaries
from streammix.exceptions import CheckpointError

__all__ = ["MARKER", "LOCK", "FolderLock", "claim_checkpoint_folder"]

logger = logging.getLogger(__name__)

#: The file that marks a folder as a streammix checkpoint folder.
MARKER = ".streammix-checkpoint"
#: The lock file of the run that uses a checkpoint folder.
LOCK = ".streammix.lock"


def claim_checkpoint_folder(folder, *, kind: str, known: tuple[str, ...]) -> FolderLock:
    """Check that ``folder`` may be used as a checkpoint folder, lock it and mark it.

    Parameters
    ----------
    folder : str or path
    kind : str
        What the checkpoint is for (``"fit"``, ``"stream"``), recorded in the
        marker.
    known : tuple of str
        Files of such a checkpoint: a folder holding one of them is a
        checkpoint written before markers existed.

    Returns
    -------
    FolderLock
        The held lock; call :meth:`FolderLock.release` when the run ends.

    Raises
    ------
    CheckpointError
        The folder is not ours (see the module docstring), its parent does
        not exist, or another live process holds its lock.
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise CheckpointError(f"checkpoint folder {folder} is a file, not a folder")
        if not (folder / MARKER).exists():
            entries = sorted(name for name in os.listdir(folder) if name != LOCK)
            if entries and not any((folder / name).is_file() for name in known):
                raise CheckpointError(
                    f"{folder} is not a streammix checkpoint folder (no {MARKER} marker and no "
                    f"{' or '.join(known)}) and is not empty ({len(entries)} entries, e.g. "
                    f"{entries[0]!r}); refusing to write into it: give a new or empty folder")
    else:
        if not folder.parent.is_dir():
            raise CheckpointError(f"cannot make checkpoint folder {folder}: "
                                  f"{folder.parent} does not exist")
        folder.mkdir(exist_ok=True)
    lock = FolderLock(folder)
    lock.acquire()
    # The lock is ours: no other run writes here, so every temporary file of our
    # naming (atomic writes of a run killed mid-write) is stale.
    for where in (folder, folder / "passes"):
        for name in remove_stale_temporaries(where, exclusive=True):
            logger.info("%s: removed %s, a temporary file left by a run that was killed",
                        folder, where / name)
    try:
        if not (folder / MARKER).exists():
            atomic_write_text(folder / MARKER, json.dumps(
                {"format": "streammix-checkpoint-folder", "kind": kind}) + "\n")
    except BaseException:
        lock.release()
        raise
    return lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class FolderLock:
    """The lock file of a checkpoint folder (see the module docstring)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`CheckpointError` naming its live owner."""
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                flocked = True
            except BlockingIOError:
                owner = _owner(fd)
                os.close(fd)
                raise self._busy(owner) from None
            except OSError as exc:  # no flock on this file system: trust the pid
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                    os.close(fd)
                    raise
                flocked = False
            try:  # the owner may have removed the file between our open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        owner = _owner(fd)
        pid = owner.get("pid")
        if pid is not None and pid != os.getpid():
            if not flocked and owner.get("host") == socket.gethostname() and _pid_alive(pid):
                os.close(fd)
                raise self._busy(owner)
            logger.warning("%s: took over the stale lock of process %s on %s (no longer "
                           "running)", self.folder, pid, owner.get("host", "?"))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
                  + b"\n", 0)
        os.fsync(fd)
        self._fd = fd

    def _busy(self, owner: dict) -> CheckpointError:
        who = (f"pid {owner['pid']} on {owner.get('host', '?')}" if "pid" in owner
               else "a process that has not written its pid yet")
        return CheckpointError(
            f"{self.folder} is in use by another streammix run ({who}, see {self.path}); two "
            "runs cannot share a checkpoint folder: wait for it to end, or stop it")

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op if not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it: the next owner re-checks the inode
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> FolderLock:
        if not self.held:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _owner(fd: int) -> dict:
    """The pid and host recorded in a lock file ({} if none or unreadable)."""
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int):
        return {}
    return record
