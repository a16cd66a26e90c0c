"""`DUTYLEDGER_DATABASE_URL` → the eventsourcing library's environment."""

from __future__ import annotations

import getpass
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import uuid4

SQLITE_FACTORY = "domain.storage.sqlite:LedgerSQLiteFactory"
POSTGRES_FACTORY = "domain.storage.postgres:LedgerPostgresFactory"


class BadDatabaseUrl(ValueError):
    """The database URL names no store we know how to open."""


SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
POSTGRES_NUMBERS = {"pool_size": "5", "max_overflow": "10", "connect_timeout": "5", "lock_timeout": "10"}
"""The PostgreSQL URL's numeric parameters, with their defaults."""
POSTGRES_NUMBERS_MEAN = {
    "pool_size": "connections",
    "max_overflow": "connections",
    "connect_timeout": "seconds",
    "lock_timeout": "seconds",
}


def store_env(url: str) -> dict[str, str]:
    """Library settings for `sqlite:///path` or `postgresql://user:pass@host:port/db?schema=s`."""
    try:
        return _store_env(url)
    except ValueError as error:
        if isinstance(error, BadDatabaseUrl):
            raise
        raise BadDatabaseUrl(f"malformed database URL {redacted(url)!r}: {error}") from None


def _store_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return _sqlite_env(url)
    if parts.scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise BadDatabaseUrl(f"{redacted(url)} names no database")
        schema = query.get("schema", [""])[0]
        if schema and not SCHEMA_NAME.fullmatch(schema):
            raise BadDatabaseUrl(
                f"schema {schema!r} is not a plain name (letters, digits, _; not first a digit)"
            )
        numbers = {name: query.get(name, [default])[0] for name, default in POSTGRES_NUMBERS.items()}
        for name, value in numbers.items():
            if not value.isdigit():
                raise BadDatabaseUrl(
                    f"{name}={value!r} is not a whole number of {POSTGRES_NUMBERS_MEAN[name]}"
                )
        return {
            "PERSISTENCE_MODULE": POSTGRES_FACTORY,
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "") or getpass.getuser(),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_SCHEMA": schema,
            **{f"POSTGRES_{name.upper()}": value for name, value in numbers.items()},
        }
    raise BadDatabaseUrl(
        f"unsupported database URL {redacted(url)!r}: use sqlite:///path/to/ledger.sqlite "
        "or postgresql://user:password@host:port/database"
    )


def sqlite_file(url: str) -> Path | None:
    """The file a `sqlite:///` URL names (None for another store, or an in-memory one)."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


def _sqlite_env(url: str) -> dict[str, str]:
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    if not path:
        raise BadDatabaseUrl(f"{url!r} names no file: use sqlite:///path/to/ledger.sqlite")
    if path == ":memory:":
        dbname = f"file:dutyledger-{uuid4().hex}?mode=memory&cache=shared"
    else:
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        dbname = str(file)
    return {
        "PERSISTENCE_MODULE": SQLITE_FACTORY,
        "SQLITE_DBNAME": dbname,
        "SQLITE_LOCK_TIMEOUT": "30",
    }


def redacted(url: str) -> str:
    """The URL without its password, fit for messages and logs."""
    scheme, separator, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{location}"
