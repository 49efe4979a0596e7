"""Where predictions go: a new local folder or a new prefix at any fsspec URL, all or nothing.

:func:`open_destination` turns ``--out`` into a destination.  Files are
written into a temporary folder (a temporary prefix, for a URL) beside the
destination, named ``.<name>.<pid>@<host>.<random>.tmp`` like every
temporary of streammix (:mod:`streammix.atomic`); only when every file is
complete is it claimed:

* **Local folders** (plain paths and ``file://`` URLs) are renamed into
  place with :func:`streammix.atomic.rename_no_replace`: one atomic step
  that fails if the destination appeared meanwhile.
* **Other URLs** (``s3://``, ``gs://``, ``abfs://``, ...) have no rename.
  The destination is claimed by creating ``<destination>/_streammix.claim``
  exclusively (S3's ``If-None-Match: *``; where the file system cannot
  create exclusively, by a check just before), and checked to hold nothing
  else; the files are then copied into it (server-side on object stores),
  ``_SUCCESS`` is written last to mark it complete, and the claim and the
  temporary prefix are removed.  A failure before the claim leaves no
  destination; a failure while copying removes what was copied.  The
  temporary prefixes of killed runs of this host for the same destination
  are removed by the next run (:func:`streammix.atomic.left_by_dead_run`).  Readers
  that must never see a destination being copied wait for ``_SUCCESS``
  (ParquetSource skips names starting with ``_``).

Every message names the destination through :func:`streammix.redact.redact`.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path

from streammix.atomic import (
    left_by_dead_run,
    rename_no_replace,
    temporary_folder,
    temporary_prefix,
)
from streammix.data.parquet.files import fsspec_filesystem, protocol_of, strip_protocol
from streammix.redact import redact

__all__ = ["open_destination", "LocalDestination", "URLDestination", "CLAIM", "SUCCESS",
           "check_apart_from_inputs"]

logger = logging.getLogger("streammix.estimator.prediction")

#: The object that claims a destination at a URL while its files are copied in.
CLAIM = "_streammix.claim"
#: The object written last into a destination at a URL: the destination is complete.
SUCCESS = "_SUCCESS"


def open_destination(out, *, storage_options: dict | None = None):
    """A :class:`LocalDestination` for a path or ``file://`` URL, else a :class:`URLDestination`.

    ``storage_options`` are passed to fsspec for a URL (never shown).
    """
    out = os.fspath(out)
    if not str(out).strip():
        raise ValueError("the output folder is empty")
    protocol = protocol_of(out)
    if protocol == "file":
        return LocalDestination(Path(strip_protocol(out, "file")) if "://" in out else Path(out))
    return URLDestination(out, protocol, storage_options or {})


class LocalDestination:
    """A new local folder, written beside it and renamed into place (see the module notes)."""

    is_local = True

    def __init__(self, path: Path):
        self.path = path
        self.shown = str(path)
        self.location = path
        self._tmp: Path | None = None

    def check(self, overwrite: bool) -> None:
        """Before any work: refuse an existing folder (without ``overwrite``), a missing parent."""
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"{self.path} already exists; remove it or pass --overwrite")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"cannot write {self.path}: folder {self.path.parent} does "
                                    "not exist")

    def start(self) -> None:
        self._tmp = temporary_folder(self.path)

    def open(self, relative: str):
        target = self._tmp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        import pyarrow as pa

        return pa.OSFile(str(target), mode="wb")

    def file_done(self, relative: str) -> None:
        _sync_file(self._tmp / relative)

    def commit(self, overwrite: bool) -> None:
        """Rename the finished folder onto the destination: an atomic claim that fails if the
        destination appeared meanwhile (another run), unless replacing is asked for."""
        _sync_folder(self._tmp)
        out_dir, parent = self.path, self.path.parent
        old = None
        if overwrite and out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=parent))
            os.replace(out_dir, old / "x")
        try:
            rename_no_replace(self._tmp, out_dir)
        except FileExistsError:
            kept = "" if old is None else f"; the output it replaced was moved to {old / 'x'}"
            raise FileExistsError(
                f"{out_dir} appeared while these predictions were written (another run wrote "
                f"it?); it was left as it is and these predictions were not written{kept}"
            ) from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


class URLDestination:
    """A new prefix at an fsspec URL, claimed and copied into place (see the module notes)."""

    is_local = False

    def __init__(self, url: str, protocol: str, storage_options: dict):
        self.url = url
        self.protocol = protocol
        self.shown = redact(url)
        self.location = self.shown
        self.path = strip_protocol(url, protocol).rstrip("/")
        self.parent, self.name = posixpath.split(self.path)
        if not self.parent or not self.name:
            raise ValueError(f"--out {self.shown}: give a folder inside a bucket or share "
                             "(such as s3://bucket/predictions), not its root")
        self.fs = fsspec_filesystem(protocol, storage_options)
        self._tmp: str | None = None
        self._copied: list[str] = []

    def _url(self, path: str) -> str:
        return redact(path if "://" in path else f"{self.protocol}://{path}")

    def _exists(self) -> bool:
        self.fs.invalidate_cache(self.path)
        self.fs.invalidate_cache(self.parent)
        try:
            return bool(self.fs.exists(self.path))
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot check --out {self.shown}: {redact(str(exc))}") from None

    def check(self, overwrite: bool) -> None:
        """Before any work: remove the temporaries of killed runs of this host for this
        destination; refuse an existing destination (without ``overwrite``)."""
        self._remove_stale()
        if self._exists() and not overwrite:
            interrupted = ""
            if self.fs.exists(posixpath.join(self.path, CLAIM)) and not self.fs.exists(
                    posixpath.join(self.path, SUCCESS)):
                interrupted = (f" (it holds {CLAIM} and no {SUCCESS}: a run copying "
                               "predictions into it was interrupted)")
            raise FileExistsError(f"{self.shown} already exists{interrupted}; remove it or "
                                  "pass --overwrite")

    def _remove_stale(self) -> None:
        try:
            self.fs.invalidate_cache(self.parent)
            entries = self.fs.ls(self.parent, detail=False)
        except (OSError, ValueError):
            return
        for entry in entries:
            if left_by_dead_run(posixpath.basename(entry.rstrip("/")), target=self.name):
                try:
                    self.fs.rm(entry, recursive=True)
                except (OSError, ValueError):  # pragma: no cover - best effort
                    continue
                logger.info("removed %s, a temporary prefix left by a run that was killed",
                            self._url(entry))

    def start(self) -> None:
        name = f"{temporary_prefix(self.name)}{uuid.uuid4().hex[:8]}.tmp"
        self._tmp = posixpath.join(self.parent, name)

    def open(self, relative: str):
        path = posixpath.join(self._tmp, relative)
        try:
            return self.fs.open(path, "wb")
        except (OSError, ValueError, NotImplementedError) as exc:
            raise OSError(f"cannot write {self._url(path)}: {redact(str(exc))}") from None

    def file_done(self, relative: str) -> None:
        """Nothing to sync: a file at a URL is stored when it is closed."""

    def commit(self, overwrite: bool) -> None:
        """Claim the destination, copy the files into it, mark it complete, clean up."""
        if self._exists():
            if not overwrite:
                raise self._appeared()
            logger.info("removing %s, replaced by the new predictions", self.shown)
            self.fs.rm(self.path, recursive=True)
        self._claim()
        try:
            self.fs.invalidate_cache(self._tmp)
            for path in sorted(self.fs.find(self._tmp)):
                relative = posixpath.relpath(path, self._tmp)
                target = posixpath.join(self.path, relative)
                self.fs.copy(path, target)
                self._copied.append(target)
            with self.fs.open(posixpath.join(self.path, SUCCESS), "wb"):
                pass
            self.fs.rm(posixpath.join(self.path, CLAIM))
        except BaseException as exc:
            self._remove_copies()
            if isinstance(exc, (OSError, ValueError)):
                raise OSError(f"cannot copy the predictions into {self.shown}: "
                              f"{redact(str(exc))}; nothing was left there") from None
            raise
        self.abort()

    def _claim(self) -> None:
        marker = posixpath.join(self.path, CLAIM)
        text = f"{temporary_prefix(self.name)}\n".encode()
        try:
            with self.fs.open(marker, "xb") as fh:
                fh.write(text)
        except FileExistsError:
            raise self._appeared() from None
        except (ValueError, NotImplementedError, TypeError):  # no exclusive create here
            if self._exists():
                raise self._appeared() from None
            with self.fs.open(marker, "wb") as fh:
                fh.write(text)
        self.fs.invalidate_cache(self.path)
        others = [p for p in self.fs.find(self.path) if posixpath.basename(p) != CLAIM]
        if others:  # written by something that does not claim
            self.fs.rm(marker)
            raise self._appeared()
        self._copied = [marker]

    def _appeared(self) -> FileExistsError:
        return FileExistsError(
            f"{self.shown} appeared while these predictions were written (another run wrote "
            "it?); it was left as it is and these predictions were not written")

    def _remove_copies(self) -> None:
        for path in reversed(self._copied):
            try:
                self.fs.rm(path)
            except (OSError, ValueError):  # pragma: no cover - best effort
                logger.warning("could not remove %s", self._url(path))
        self._copied = []

    def abort(self) -> None:
        if self._tmp is None:
            return
        try:
            self.fs.invalidate_cache(self._tmp)
            if self.fs.exists(self._tmp):
                self.fs.rm(self._tmp, recursive=True)
        except (OSError, ValueError):  # pragma: no cover - best effort
            logger.warning("could not remove the temporary prefix %s", self._url(self._tmp))


def check_apart_from_inputs(source, out) -> None:
    """Refuse an output that is, holds or lies inside an input of ``source``.

    Predictions written inside a lake would be read as data by the next fit
    of it, and ``--overwrite`` of a folder holding an input would delete the
    input.  Local paths are compared after resolving links; URLs of the
    same file system (``s3://bucket/lake`` and ``s3://bucket/lake/pred``) by
    their paths.  Inputs and outputs on different file systems cannot
    overlap.

    Raises
    ------
    ValueError
        Naming the output and the input it overlaps (credentials masked).
    """
    items = getattr(source, "path_or_url", None)
    if items is None or not hasattr(source, "files"):
        return
    items = [items] if isinstance(items, (str, os.PathLike)) else list(items)
    items = [os.fspath(item) for item in items]
    out = os.fspath(out)
    protocols = {protocol_of(item) for item in items}
    if protocols != {protocol_of(out)}:
        return
    protocol = protocols.pop()
    files = list(source.files or [])
    if protocol == "file":
        here = Path(os.path.realpath(strip_protocol(out, "file")))
        paths = [strip_protocol(item, "file") for item in items]
        inputs = [Path(os.path.realpath(p)) for p in paths if os.path.isdir(p)]
        inputs += [Path(os.path.realpath(f)) for f in files]
        pairs = [(here == given or given in here.parents, here in given.parents, str(given))
                 for given in inputs]
    else:
        here_text = strip_protocol(out, protocol).rstrip("/")
        inputs = [strip_protocol(item, protocol).rstrip("/") for item in items
                  if not any(c in item for c in "*?[")] + [f.rstrip("/") for f in files]
        pairs = [(here_text == given or here_text.startswith(given + "/"),
                  given.startswith(here_text + "/"), f"{protocol}://{given}")
                 for given in inputs]
    shown = redact(out)
    for inside, holds, given in pairs:
        if inside:
            raise ValueError(f"--out {shown} is inside the input {redact(given)}: predictions "
                             "there would be read as data by the next fit of it; choose a "
                             "folder outside the input")
        if holds:
            raise ValueError(f"--out {shown} holds the input {redact(given)}; writing there "
                             "(--overwrite replaces the folder) would destroy the input; "
                             "choose a folder outside the input")


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    for root, _, _ in os.walk(folder):
        try:
            fd = os.open(root, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)

