"""Atomic file output: write to a temporary file beside the target, then rename.

Temporary files are named ``.<target>.<pid>@<host>.<random>.tmp``: a run
killed with SIGKILL leaves one behind, and :func:`remove_stale_temporaries`
(called when a run next uses the folder) knows it as ours and its owner as
dead.  A write that fails (a full disk, a file-size limit, a read-only
folder) raises an ``OSError`` whose message names the target and says it was
left as it was.
"""

from __future__ import annotations

import errno as _errno
import functools
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_open", "atomic_write_text", "rename_no_replace", "temporary_folder",
           "temporary_prefix", "remove_stale_temporaries", "check_writable_folder",
           "left_by_dead_run"]

#: ``.<target>.<pid>@<host>.<random>.tmp``: ours, with the owner's pid and host.
_OURS = re.compile(r"\.(?P<target>.+)\.(?P<pid>[0-9]+)@(?P<host>[A-Za-z0-9-]*)\.[a-z0-9_]{8}\.tmp")
#: ``.<target>.<random>.tmp``, as versions before the pid was in the name wrote them.
_EARLIER = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp")
#: Errors of writing a file (as opposed to errors of the caller's code).
_WRITE_ERRORS = (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG, _errno.EROFS, _errno.EIO,
                 _errno.EACCES, _errno.EPERM)
#: Temporaries of the earlier naming are stale once this old (seconds).
EARLIER_STALE_AFTER = 3600.0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63]


def temporary_prefix(name: str) -> str:
    """The prefix of this process's temporary files for a target named ``name``."""
    return f".{name}.{os.getpid()}@{_host()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's live process / not a pid
        return True
    return True


def remove_stale_temporaries(folder, *, target: str | None = None,
                             exclusive: bool = False) -> list[str]:
    """Remove temporary files (and prediction folders) that dead runs left in ``folder``.

    Only entries of our naming are considered (see the module docstring):
    those of a process of this host that is no longer running, and those of
    the earlier naming (no pid) older than :data:`EARLIER_STALE_AFTER`.  With
    ``exclusive`` (the caller holds the folder's lock, so no other run
    writes there) every temporary of our naming is stale.  ``target``
    restricts it to the temporaries of one file name.  Returns the names
    removed; errors (a folder that cannot be listed) remove nothing.
    """
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    removed, host, now = [], _host(), time.time()
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        ours, earlier = _OURS.fullmatch(name), _EARLIER.fullmatch(name)
        match = ours or earlier
        if match is None or (target is not None and match["target"] != target):
            continue
        try:
            if ours and not exclusive:
                pid = int(ours["pid"])
                if ours["host"] != host or pid == os.getpid() or _pid_alive(pid):
                    continue
            elif not exclusive and now - entry.stat(follow_symlinks=False).st_mtime \
                    < EARLIER_STALE_AFTER:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(name)
    return removed


def left_by_dead_run(name: str, *, target: str) -> bool:
    """Whether ``name`` is one of our temporaries for ``target`` whose owner, a process
    of this host, is no longer running (as :func:`remove_stale_temporaries` judges; used
    for temporary prefixes at URLs, which have no modification time to go by)."""
    ours = _OURS.fullmatch(name)
    if ours is None or ours["target"] != target or ours["host"] != _host():
        return False
    pid = int(ours["pid"])
    return pid != os.getpid() and not _pid_alive(pid)


def check_writable_folder(folder, what: str) -> None:
    """Raise ``OSError`` naming ``what`` unless a file can be made in ``folder``.

    It makes (and removes) a temporary file of our naming: permissions,
    read-only mounts and full disks are all found before any work is done.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix("probe"), suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {what}: folder {folder} is not writable "
                                 f"({exc.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def _write_error(exc: OSError, path: Path) -> OSError:
    """``exc`` with a message naming the file that could not be written."""
    reason = exc.strerror or str(exc)
    if exc.errno in (_errno.ENOSPC, _errno.EDQUOT):
        reason += " (the disk or quota is full)"
    elif exc.errno == _errno.EFBIG:
        reason += " (beyond the file-size limit)"
    return OSError(exc.errno, f"cannot write {path}: {reason}; {path} was left as it was")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_folder(target, suffix: str = ".tmp") -> Path:
    """A new empty folder beside ``target``, to be renamed onto it when complete.

    Named ``.<target name>.<pid>@<host>.<random><suffix>``, so stale ones are
    recognisable (:func:`remove_stale_temporaries`);
    created with the permissions an ordinary ``mkdir`` would give (0777 less
    the umask), not :func:`tempfile.mkdtemp`'s 0700, so that the folder a
    rename puts in place follows the umask like any other output.
    """
    target = Path(target)
    folder = Path(tempfile.mkdtemp(prefix=temporary_prefix(target.name), suffix=suffix,
                                   dir=target.parent))
    os.chmod(folder, 0o777 & ~_umask())
    return folder


@contextmanager
def atomic_open(path, mode: str = "w") -> Iterator:
    """Open a file that replaces ``path`` only if the ``with`` block succeeds.

    The data go to a temporary file in the same folder, which is flushed,
    fsynced, given the permissions an ordinary ``open`` would (0666 less the
    umask) and renamed onto ``path`` with :func:`os.replace`.  Readers see
    the old file or the new one, never a part; on any error the temporary
    file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or path
    mode : {"w", "wb"}
        Text (UTF-8) or binary.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), suffix=".tmp",
                                   dir=path.parent or ".")
    except OSError as exc:
        raise _write_error(exc, path) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno in _WRITE_ERRORS:
            raise _write_error(exc, path) from None
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


_RENAME_NOREPLACE = 1  # linux/fs.h
_AT_FDCWD = -100


@functools.lru_cache(maxsize=1)
def _renameat2():
    """glibc's ``renameat2`` (Linux), or None where there is none."""
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def rename_no_replace(src, dst) -> None:
    """Rename ``src`` to ``dst``, atomically failing if ``dst`` exists.

    :func:`os.rename` silently replaces an existing file, or an *empty*
    folder, at ``dst``; this claims ``dst`` instead.  On Linux it is one
    ``renameat2(RENAME_NOREPLACE)`` call.  Where that is not available (other
    systems, file systems that refuse the flag), ``dst`` is claimed with
    :func:`os.mkdir` (atomic: it fails if ``dst`` exists) and the entries of
    the folder ``src`` are moved into it; only folders are renamed then.

    Raises
    ------
    FileExistsError
        ``dst`` exists (it appeared after any earlier check); ``src`` is
        left as it was.
    """
    import errno

    src, dst = os.fsencode(os.fspath(src)), os.fsencode(os.fspath(dst))
    function = _renameat2()
    if function is not None:
        import ctypes

        if function(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), os.fsdecode(dst))
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(code, os.strerror(code), os.fsdecode(src))
    if not os.path.isdir(src):
        raise OSError(errno.ENOTSUP, "no atomic rename without replace here for a file",
                      os.fsdecode(src))
    os.mkdir(dst)  # the claim: FileExistsError if another got there first
    for name in os.listdir(src):
        os.rename(os.path.join(src, name), os.path.join(dst, name))
    os.rmdir(src)
