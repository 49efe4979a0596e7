"""Where the files of a data lake are: URLs, file systems, listing and hive partitions.

Used by :class:`streammix.ParquetSource` when it plans: a path, glob, folder
or fsspec URL becomes a sorted list of files, the root they hang from, and
the ``name=value`` partition values of each file.  Names starting with
``_`` or ``.`` (``_SUCCESS``, ``.crc``, temporary files) are skipped.
"""

from __future__ import annotations

import os
import posixpath
import re
from urllib.parse import unquote

import pyarrow as pa

from streammix.exceptions import DataError
from streammix.redact import redact, redact_logs_of

_GLOB_CHARS = re.compile(r"[*?\[]")


def protocol_of(url: str) -> str:
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def strip_protocol(url: str, protocol: str) -> str:
    if protocol == "file":
        path = url[len("file://"):] if url.startswith("file://") else url
        return os.path.abspath(os.path.expanduser(path))
    import fsspec
    cls = fsspec.get_filesystem_class(protocol)
    return cls._strip_protocol(url).rstrip("/")


def fsspec_filesystem(protocol: str, storage_options: dict):
    import fsspec
    if protocol != "file":
        redact_logs_of()  # fsspec, s3fs, ... log the URLs they open at DEBUG
    try:
        return fsspec.filesystem(protocol, **(storage_options if protocol != "file" else {}))
    except (ImportError, ValueError) as exc:
        raise DataError(f"cannot open file system {protocol!r}: {exc}") from None


def arrow_filesystem(protocol: str, storage_options: dict):
    from pyarrow import fs as pafs
    if protocol == "file":
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_filesystem(protocol, storage_options)))


def _hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def list_files(fs, path: str, shown: str):
    """Files under a path, a glob or a single file, and the root they hang from."""
    try:
        if _GLOB_CHARS.search(path):
            prefix = path[:_GLOB_CHARS.search(path).start()]
            root = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
            found = [f for f in fs.glob(path) if fs.isfile(f)]
            found = [f for f in found if not _hidden(posixpath.relpath(f, root or "."))]
            if not found:
                raise DataError(f"{shown}: no files match this pattern")
            return sorted(found), root
        if not fs.exists(path):
            raise DataError(f"{shown} does not exist")
        if fs.isdir(path):
            found = _local_find(path, shown) if _is_local(fs) else fs.find(path)
            found = [f for f in found if not _hidden(posixpath.relpath(f, path))]
            if not found:
                raise DataError(f"{shown}: the folder holds no Parquet files")
            return sorted(found), path
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{shown}: cannot be listed ({type(exc).__name__}: {exc})") from None
    return [path], posixpath.dirname(path)


def _is_local(fs) -> bool:
    protocol = fs.protocol
    return bool({"file", "local"} & set(protocol if isinstance(protocol, tuple) else [protocol]))


def _local_find(root: str, shown: str) -> list[str]:
    """Files under a local folder, following symbolic links to sub-folders.

    fsspec's listing does not follow them (it lists such a link as a file).
    A link is followed under its own name, so rows keep their origin
    ``link/part.parquet``.  A link to a folder the listing already holds (a
    loop, or the same files twice) and a broken link are refused, naming them.
    """
    found: list[str] = []
    seen = {os.path.realpath(root): root}
    for folder, dirs, files in os.walk(root, followlinks=True, onerror=_raise):
        for name in sorted(dirs):
            link = posixpath.join(folder, name)
            if not os.path.islink(link) or _hidden(posixpath.relpath(link, root)):
                continue
            real = os.path.realpath(link)
            inside = next((f for r, f in seen.items()
                           if real == r or r.startswith(real + os.sep)
                           or real.startswith(r + os.sep)), None)
            if inside is not None:
                raise DataError(f"{shown}: {link} is a symbolic link to {real}, a folder that "
                                f"holds {inside} or is held by it: its files would be read "
                                "twice (or forever); remove the link or list the folders")
            seen[real] = link
        for name in files:
            path = posixpath.join(folder, name)
            if os.path.islink(path) and not os.path.exists(path):
                if not _hidden(posixpath.relpath(path, root)):
                    raise DataError(f"{shown}: {path} is a broken symbolic link (to "
                                    f"{os.readlink(path)})")
                continue
            found.append(path)
    return found


def _raise(exc: OSError) -> None:
    raise exc


def common_dir(files: list[str]) -> str:
    return posixpath.commonpath([posixpath.dirname(f) for f in files])


def hive_partitions(files: list[str], root: str):
    """Partition names, their types and each file's partition values."""
    raw: dict[str, dict[str, str]] = {}
    for f in files:
        rel = f[len(root) + 1:] if root and f.startswith(root + "/") else f
        parts = {}
        for segment in rel.split("/")[:-1]:
            if "=" in segment:
                key, value = segment.split("=", 1)
                parts[unquote(key)] = unquote(value)
        raw[f] = parts
    names = list(dict.fromkeys(k for parts in raw.values() for k in parts))
    for f, parts in raw.items():
        missing = [k for k in names if k not in parts]
        if missing:
            raise DataError(f"{f}: not inside a {missing[0]}=... folder, unlike other files "
                            "(mixed hive partitioning)")
    types = {}
    for name in names:
        values = [parts[name] for parts in raw.values()]
        types[name] = _infer_type(values)
    partitions = {
        f: tuple((k, _convert(parts[k], types[k])) for k in names) for f, parts in raw.items()
    }
    return tuple(names), types, partitions


def _infer_type(values: list[str]) -> pa.DataType:
    if all(re.fullmatch(r"[+-]?\d+", v) for v in values):
        return pa.int64()
    try:
        [float(v) for v in values]
    except ValueError:
        return pa.string()
    return pa.float64()


def _convert(value: str, typ: pa.DataType):
    if pa.types.is_integer(typ):
        return int(value)
    if pa.types.is_floating(typ):
        return float(value)
    return value


def file_size(fs, path: str) -> int | None:
    try:
        return fs.get_file_info(path).size
    except (OSError, pa.ArrowException):
        return None


def redact_url(url) -> str:
    """A path or URL without credentials (:func:`streammix.redact.redact`); a list of
    paths is shown as its first three."""
    if isinstance(url, (list, tuple)):
        shown = [redact_url(u) for u in url[:3]]
        more = f", ... ({len(url)} paths)" if len(url) > 3 else ""
        return "[" + ", ".join(shown) + more + "]"
    return redact(os.fspath(url))
