"""Raw connections to a ledger's store, behind the application's back.

Tests use them to try what an intruder (or a careless operator) with SQL access
could do, and to count rows without trusting the code under test.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import orjson
import psycopg
from psycopg import sql

RawError = (sqlite3.DatabaseError, psycopg.Error)
"""What either driver raises when the database refuses a statement."""


@dataclass
class RawConnection:
    """A driver connection in autocommit mode, with the ledger's tables on its search path."""

    backend: str
    connection: Any

    @property
    def events_table(self) -> str:
        """`stored_events`, on both backends."""
        return "stored_events"

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (`?` placeholders on SQLite, `%s` on PostgreSQL); return any rows.

        `{events}` in the statement names the stored events table of this backend.
        """
        statement = statement.replace("{events}", self.events_table)
        if self.backend == "sqlite":
            cursor = self.connection.execute(statement, tuple(params))
            return [tuple(row) for row in cursor.fetchall()]
        with self.connection.cursor() as cursor:
            cursor.execute(statement, tuple(params) if params else None)
            return [tuple(row) for row in cursor.fetchall()] if cursor.description else []

    @property
    def placeholder(self) -> str:
        return "?" if self.backend == "sqlite" else "%s"

    def rows(self, table: str, order_by: str) -> list[tuple[Any, ...]]:
        """Every row of `table`, as hashable, comparable values (bytes for blobs, JSON text for jsonb)."""
        return [tuple(map(_plain, row)) for row in self.execute(f"SELECT * FROM {table} ORDER BY {order_by}")]

    def count(self, table: str) -> int:
        return int(self.execute(f"SELECT count(*) FROM {table}")[0][0])


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list | dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return value


def sqlite_path(database_url: str) -> str:
    """The file a `sqlite:///path` URL names."""
    prefix = "sqlite:///"
    assert database_url.startswith(prefix), database_url
    return database_url[len(prefix) :]


def postgres_schema(database_url: str) -> str:
    return parse_qs(urlsplit(database_url).query)["schema"][0]


@contextmanager
def raw_connection(database_url: str) -> Iterator[RawConnection]:
    """Open the store named by `database_url` directly: sqlite3 for SQLite, psycopg for PostgreSQL."""
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        conn = sqlite3.connect(sqlite_path(database_url), isolation_level=None, timeout=30)
        try:
            yield RawConnection("sqlite", conn)
        finally:
            conn.close()
        return
    schema = postgres_schema(database_url)
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {0}").format(sql.Identifier(schema)))
        yield RawConnection("postgres", conn)
