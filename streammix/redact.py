"""Credentials out of everything shown or stored: :func:`redact` and :func:`printable`.

A path given to streammix can carry credentials: the userinfo of a URL
(``https://user:password@host/lake``) and query parameters of presigned or
token URLs (``?token=…``, ``X-Amz-Signature=…``, an Azure SAS ``sig=…``).
:func:`redact` is the one function that removes them; it is applied
wherever a path is shown or stored: error messages, log records of the
command line, ``checkpoint.json`` and the state of a stream, model files,
``describe()`` and ``repr``.  It works on a URL, a list of them, or any text
that holds URLs (an error message), and leaves everything else as it is.

:func:`printable` escapes control characters (ANSI escape sequences in a
column name read from a file, say) before text reaches a terminal.

The bottom layer of the package, beside :mod:`streammix.exceptions`: it
imports nothing of streammix.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["redact", "redact_url", "is_secret_name", "printable", "MASK",
           "literal_secret_keys", "RedactingFilter", "redact_logs_of", "FILESYSTEM_LOGGERS"]

#: Loggers of the file-system libraries that log the URLs they open (at DEBUG).
FILESYSTEM_LOGGERS = ("fsspec", "fsspec.http", "fsspec.cached", "fsspec.caching", "s3fs",
                      "gcsfs", "adlfs", "aiohttp.client")

#: What replaces a credential.
MASK = "***"

# Query parameter names that carry credentials (compared lower-case, '-' as '_').
_SECRET_PARAMS = frozenset({
    "sig", "signature", "code", "key", "auth", "authorization", "pass", "pwd", "jwt",
    "x_amz_signature", "x_amz_credential", "x_amz_security_token",
    "x_goog_signature", "x_goog_credential", "awsaccesskeyid", "googleaccessid",
    "se_token", "sas", "sv_sig", "session", "sessionid", "session_id", "apikey", "api_key",
})
_SECRET_PARTS = re.compile(r"pass(word|wd|phrase)?|token|secret|credential|signature"
                           r"|private_?key|api_?key|access_?key|auth")
# A URL inside free text: scheme://, then up to whitespace, a quote or a bracket, not
# ending in punctuation ("…/a.parquet: column …").
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>()\[\]{},]*"
                          r"[^\s'\"<>()\[\]{},.:;!?]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter or option name is one that carries a credential."""
    key = name.strip().lower().replace("-", "_")
    return key in _SECRET_PARAMS or bool(_SECRET_PARTS.search(key))


def redact_url(url: str) -> str:
    """One URL without credentials: userinfo becomes ``***@``, secret query values ``***``.

    Anything that is not a URL (a local path) is returned unchanged.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 netloc: keep only the scheme
        return url.split("://", 1)[0] + "://" + MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pieces = []
        for piece in query.split("&"):
            name = piece.split("=", 1)[0]
            decoded = parse_qsl(name + "=x", keep_blank_values=True)
            real = decoded[0][0] if decoded else name
            pieces.append(f"{name}={MASK}" if "=" in piece and is_secret_name(real) else piece)
        query = "&".join(pieces)
    fragment = parts.fragment
    if fragment and "=" in fragment:  # OAuth implicit flow: #access_token=...
        fragment = "&".join(
            f"{p.split('=', 1)[0]}={MASK}" if "=" in p and is_secret_name(p.split("=", 1)[0])
            else p for p in fragment.split("&"))
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))


def redact(value):
    """``value`` with every credential inside a URL replaced by ``***``.

    Parameters
    ----------
    value : str, path-like, list, tuple, dict or None
        A path or URL, a list of them, or text holding URLs (an error
        message, a log line).  Lists, tuples and dicts (their values) are
        redacted element by element and keep their type; None and other
        objects are returned unchanged.

    Returns
    -------
    The same kind of value, without credentials.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        return value
    if "://" not in value:
        return value
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), value)


def printable(text: str) -> str:
    """``text`` with control characters (ANSI escapes, carriage returns) shown as ``\\x1b``.

    Newlines and tabs are kept; everything else below ``0x20`` (and DEL, and
    the C1 controls) is written as a Python escape, so a column name read
    from a file cannot move the cursor or recolour a terminal.
    """
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"),
                        str(text))


def literal_secret_keys(options, prefix: str = "") -> list[str]:
    """The keys of a (nested) options mapping that carry literal credentials.

    A key whose name is a credential's (``key``, ``secret``, ``token``,
    ``password``, ``aws_secret_access_key`` …) with a non-empty string
    value, at any depth.  Used to warn about ``--storage-options`` given on
    a command line.
    """
    found: list[str] = []
    if isinstance(options, dict):
        for k, v in options.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, (dict, list)):
                found.extend(literal_secret_keys(v, name))
            elif isinstance(v, str) and v and is_secret_name(str(k)):
                found.append(name)
    elif isinstance(options, list):
        for i, v in enumerate(options):
            found.extend(literal_secret_keys(v, f"{prefix}[{i}]"))
    return found


class RedactingFilter(logging.Filter):
    """A logging filter that takes credentials out of URLs in a record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's business
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def redact_logs_of(names=FILESYSTEM_LOGGERS) -> None:
    """Install :class:`RedactingFilter` on the loggers ``names`` (once each).

    A filter on a logger sees the records made on that logger, so the
    file-system libraries' own loggers are named one by one; ParquetSource
    calls this when it opens a remote file system.
    """
    for name in names:
        log = logging.getLogger(name)
        if _FILTER not in log.filters:
            log.addFilter(_FILTER)
