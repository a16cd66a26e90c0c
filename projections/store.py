"""Connections to the database holding the views: the ledger's own by default.

Views are plain SQL tables written through this thin layer, so one view definition
serves SQLite and PostgreSQL: statements use `?` placeholders, portable column types
(TEXT, BIGINT, INTEGER), times as ISO-8601 UTC text and dates as `YYYY-MM-DD` text
(both sort correctly as text), booleans as 0/1.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg
import psycopg.sql

from domain.storage.ddl import lock_schema
from domain.storage.url import store_env
from domain.storage.writers import WriteLock, queued, write_lock

Dialect = Literal["sqlite", "postgres"]
_PLACEHOLDER = re.compile(r"\?")


BUSY_TIMEOUT = 30.0
"""Seconds a views' writer waits for another writer of the same SQLite file before giving up."""


class ViewConnection:
    """One connection, used by one thread at a time; statements use `?` placeholders."""

    def __init__(
        self, dialect: Dialect, raw: Any, schema: str = "", writers: WriteLock | None = None
    ) -> None:
        self.dialect = dialect
        self.raw = raw
        self.schema = schema
        self.writers = writers
        """SQLite: this process's write lock of the file (`domain.storage.writers`), held by each write."""

    def _sql(self, statement: str) -> str:
        return _PLACEHOLDER.sub("%s", statement) if self.dialect == "postgres" else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.raw.execute(self._sql(statement), params)
        if cursor.description is None:
            return []
        rows: list[tuple[Any, ...]] = cursor.fetchall()  # tuples: neither driver has a row factory here
        return rows

    def count(self, statement: str, params: Sequence[Any] = ()) -> int:
        """Run a statement and return how many rows it changed."""
        cursor = self.raw.execute(self._sql(statement), params)
        return int(cursor.rowcount)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.dialect == "postgres":
            with self.raw.cursor() as cursor:
                cursor.executemany(self._sql(statement), rows)
        else:
            self.raw.executemany(statement, rows)

    @contextmanager
    def transaction(self) -> Iterator[ViewConnection]:
        """A write transaction: on SQLite it takes the write lock at once (BEGIN IMMEDIATE).

        Inside another transaction it is a savepoint: it undoes only its own changes on failure,
        and its changes commit with the outer transaction.
        """
        if self.dialect == "postgres":
            with self.raw.transaction():
                yield self
            return
        if self.raw.in_transaction:
            begin, undo, end, queue = (
                "SAVEPOINT inner",
                "ROLLBACK TO inner; RELEASE inner",
                "RELEASE inner",
                None,
            )
        else:
            begin, undo, end, queue = "BEGIN IMMEDIATE", "ROLLBACK", "COMMIT", self.writers
        with nullcontext() if queue is None else queued(queue, BUSY_TIMEOUT):
            self.raw.execute(begin)
            try:
                yield self
            except BaseException:
                for statement in undo.split("; "):
                    self.raw.execute(statement)
                raise
            self.raw.execute(end)

    @contextmanager
    def snapshot(self) -> Iterator[ViewConnection]:
        """A read-only transaction: every statement in it sees the same committed state."""
        # One statement each way: a read route takes a snapshot per request, and on PostgreSQL
        # each statement is a round trip (psycopg's `transaction()` would add a SET TRANSACTION).
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if self.dialect == "postgres" else "BEGIN"
        self.raw.execute(begin)
        try:
            yield self
        finally:
            self.raw.execute("COMMIT")

    @contextmanager
    def schema_change(self) -> Iterator[ViewConnection]:
        """A write transaction that creates or drops tables: on PostgreSQL, one process at a time."""
        with self.transaction():
            if self.dialect == "postgres":
                lock_schema(self.raw.cursor(), self.schema)
            yield self

    def close(self) -> None:
        self.raw.close()


class Held(Protocol):
    """A lock held until closed."""

    def close(self) -> None: ...


class _AdvisoryLock:
    """A PostgreSQL session advisory lock, held by a connection of its own."""

    def __init__(self, connection: ViewConnection, key: str) -> None:
        self._connection = connection
        self._key = key

    def close(self) -> None:
        """Let go at once (a closed session lets go of its locks a moment later), then disconnect."""
        try:
            with suppress(psycopg.Error):  # a broken session has let go already
                self._connection.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", (self._key,))
        finally:
            self._connection.close()


class RebuildRunning(Exception):
    """Another rebuild of this view is under way (in this process or another): one at a time."""


class ViewStore:
    """Opens connections to the views' database, named by a database URL like the ledger's."""

    def __init__(self, database_url: str, *, scratch: bool = False) -> None:
        """`scratch`: a throwaway SQLite file (a rebuild's share), written without journal or syncs."""
        self.database_url = database_url
        self.scratch = scratch
        env = store_env(database_url)
        self.dialect: Dialect = "sqlite" if "SQLITE_DBNAME" in env else "postgres"
        self._env = env

    def connect(self) -> ViewConnection:
        if self.dialect == "sqlite":
            raw = sqlite3.connect(
                self._env["SQLITE_DBNAME"],
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT,
            )
            if self.scratch:
                raw.execute("PRAGMA journal_mode=OFF")
                raw.execute("PRAGMA synchronous=OFF")
            else:
                raw.execute("PRAGMA journal_mode=WAL")
                # Views can always be rebuilt from the log, and a view's rows and its position
                # commit together, so a lost last commit only makes the view replay it.
                raw.execute("PRAGMA synchronous=NORMAL")
            raw.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: index maintenance
            return ViewConnection(
                "sqlite", raw, writers=None if self.scratch else write_lock(self._env["SQLITE_DBNAME"])
            )
        env = self._env
        connection = psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"],
            autocommit=True,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
            # Connections are kept (the readers' pool, a runner's, the checkpointer's): one cut
            # silently (an idle drop, a failover) is noticed in about a minute, not the kernel's 15.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        schema = env.get("POSTGRES_SCHEMA") or "public"
        connection.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
        return ViewConnection("postgres", connection, schema)

    def lock_file(self, name: str) -> str:
        """SQLite: the file beside the database that processes `flock` for the lock `name`."""
        database = self._env["SQLITE_DBNAME"]
        if database.startswith("file:"):  # an in-memory database: no file to put the lock beside
            digest = hashlib.sha256(database.encode()).hexdigest()[:16]
            database = str(Path(tempfile.gettempdir()) / f"dutyledger-{digest}")
        return f"{database}-{name}.lock"

    def try_applying(self) -> Held | None:
        """The right to apply the log to these views (see `projections.embedded`), held until the
        returned handle is closed or its process dies; None while another process holds it."""
        return self.try_lock("applier", "dutyledger-applier")

    def try_lock(self, name: str, key: str) -> Held | None:
        """A lock among every process of these views, or None at once if another holds it.

        SQLite: an exclusive `flock` of a file beside the database (`ledger.sqlite-NAME.lock`);
        PostgreSQL: the session advisory lock `<schema>.KEY`, on a connection of its own. Both
        are released when the handle is closed or the process dies.
        """
        if self.dialect == "postgres":
            connection = self.connect()
            try:
                held = f"{connection.schema}.{key}"
                [(taken,)] = connection.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(?, 0))", (held,)
                )
            except BaseException:
                connection.close()
                raise
            if not taken:
                connection.close()
                return None
            return _AdvisoryLock(connection, held)
        file = open(self.lock_file(name), "a")  # noqa: SIM115 - held open until the lock is let go
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return None
        return file

    @contextmanager
    def rebuild_lock(self, views: Sequence[str]) -> Iterator[None]:
        """Hold the right to rebuild these views until the block ends, or raise RebuildRunning at once.

        A rebuild's swap drops every other generation of its views, so two rebuilds of one view
        must not overlap. On PostgreSQL each view's lock is the advisory lock
        `<schema>.dutyledger-rebuild.VIEW`; on SQLite the `flock` of `ledger.sqlite-rebuild-VIEW.lock`.
        """
        with ExitStack() as held:
            for view in sorted(set(views)):
                held.enter_context(self._lock_one(view))
            yield

    @contextmanager
    def _lock_one(self, view: str) -> Iterator[None]:
        held = self.try_lock(f"rebuild-{view}", f"dutyledger-rebuild.{view}")
        if held is None:
            raise RebuildRunning(f"a rebuild of {view} is already running")
        try:
            yield
        finally:
            held.close()
