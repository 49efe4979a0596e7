"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_open", "atomic_write_text", "rename_no_replace", "temporary_folder"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_folder(target, suffix: str = ".tmp") -> Path:
    """A new empty folder beside ``target``, to be renamed onto it when complete.

    Named ``.<target name>.<random><suffix>``, so stale ones are recognisable;
    created with the permissions an ordinary ``mkdir`` would give (0777 less
    the umask), not :func:`tempfile.mkdtemp`'s 0700, so that the folder a
    rename puts in place follows the umask like any other output.
    """
    target = Path(target)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=suffix,
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
