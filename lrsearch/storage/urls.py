"""Storage URLs: which one applies, checked and normalised, and how one may be shown.

``--storage``, else ``LRSEARCH_STORAGE``, else the embedded ``sqlite:///lrsearch.db`` in the working
directory. ``postgresql://`` uses the bundled psycopg (3) driver; ``grpc://HOST:PORT`` is ``lrsearch proxy``.

A password is never shown, whatever state its URL is in: every message that shows a URL shows
``masked(url)``, which needs no parse to find the password (it is whatever stands between the user and the
last ``@``, or a ``password=`` parameter) and shows a URL that does not parse by its scheme alone; and
``redact`` takes out of any text the passwords of the URLs given (what a driver's error may quote).
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lrsearch.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["DEFAULT_STORAGE", "GRPC", "grpc_address", "masked", "passwords", "redact", "resolve_url", "sqlite_file"]

DEFAULT_STORAGE = "sqlite:///lrsearch.db"
GRPC = "grpc://"
#: The databases lrsearch is tested on, each with the driver it installs.
_SCHEMES = {"sqlite": None, "postgresql": "psycopg", "postgres": "psycopg"}
#: A password given as a parameter: ``?password=..`` in a URL, ``password=..`` in a libpq string.
_PASSWORD_PARAMETER = re.compile(r"(?i)\b(password|passwd|pwd)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^&\s]*)")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_SHAPE = "sqlite:///FILE, postgresql://USER:PASSWORD@HOST/DB or grpc://HOST:PORT"
_ENCODE = "URL-encode @ : / in a password as %40 %3A %2F"


def masked(url: str) -> str:
    """``url`` as it may be shown: its password replaced by ***; one that does not parse, by its scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # a path, or words: shown unless it has what a password could hide behind
        return repr(url) if not re.search(r"[@:=]", url) else "<a storage URL that does not parse>"
    if not _parses(url):
        return f"{scheme}://..." if _SCHEME.fullmatch(scheme) else "<a storage URL that does not parse>"
    if "@" in rest:
        userinfo, _, location = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}{':***' if colon else ''}@{location}"
    return scheme + "://" + _PASSWORD_PARAMETER.sub(r"\1\2***", rest)


def _parsed(url: str) -> URL | None:
    """``url`` parsed by SQLAlchemy (imported here: showing and redacting URLs, which every command's error
    may do, must not wait for it), or None where it does not parse."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None


def _parses(url: str) -> bool:
    if url.startswith(GRPC):
        host, _, port = url.removeprefix(GRPC).rstrip("/").rpartition("@")[2].rpartition(":")
        return bool(host) and port.isdigit()
    return _parsed(url) is not None


def passwords(url: str) -> list[str]:
    """What in ``url`` may be a password, as written and decoded (for ``redact``); a URL that does not
    parse is taken apart the way ``masked`` takes it."""
    found = [m.group(3).strip("'\"") for m in _PASSWORD_PARAMETER.finditer(url)]
    rest = url.partition("://")[2] or url
    if "@" in rest:
        found.append(rest.rpartition("@")[0].partition(":")[2])
    found = [p for p in found if p]
    return list(dict.fromkeys([*found, *(urllib.parse.unquote(p) for p in found)]))


def redact(text: str, urls: Iterable[str]) -> str:
    """``text`` with the passwords of ``urls`` replaced by *** (those shorter than 4 characters are left:
    replacing them everywhere would garble the text)."""
    for url in urls:
        for secret in sorted(passwords(url), key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
    return text


def resolve_url(flag: str | None) -> str:
    """``--storage``, else ``LRSEARCH_STORAGE``, else the embedded SQLite file; checked and normalised."""
    url = flag or os.environ.get("LRSEARCH_STORAGE") or DEFAULT_STORAGE
    if url.startswith(GRPC):
        grpc_address(url)
        return url
    parsed = _parsed(url)
    if parsed is None:
        raise ConfigError(f"storage {masked(url)} is not a database URL (the shape: {_SHAPE}; {_ENCODE})")
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in _SCHEMES:
        raise ConfigError(f"storage URL scheme {parsed.drivername!r} is not supported; use {_SHAPE}")
    if "@" in (parsed.host or ""):
        # An @ in the password, not encoded: the driver would take the rest of the password for the host.
        raise ConfigError(f"storage {masked(url)} has an @ after its password; {_ENCODE}")
    if not driver and _SCHEMES[backend]:
        parsed = parsed.set(drivername=f"postgresql+{_SCHEMES[backend]}")
    elif backend == "postgres":
        parsed = parsed.set(drivername=f"postgresql+{driver}")
    return parsed.render_as_string(hide_password=False)


def grpc_address(url: str) -> tuple[str, int]:
    """HOST and PORT of a ``grpc://HOST:PORT`` URL."""
    location = url.removeprefix(GRPC).rstrip("/")
    if "@" in location:
        raise ConfigError(
            f"storage {masked(url)}: the storage proxy takes no credentials (it has no "
            "authentication: serve it on a private network); use grpc://HOST:PORT"
        )
    host, _, port = location.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"storage {masked(url)}: a proxy URL is grpc://HOST:PORT")
    return host, int(port)


def sqlite_file(url: str) -> str | None:
    """The database file of a ``sqlite:///FILE`` URL; None for any other storage (or SQLite in memory)."""
    if url.startswith(GRPC):
        return None
    parsed = _parsed(url)
    if parsed is None or parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database
