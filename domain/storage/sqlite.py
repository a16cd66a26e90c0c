"""The embedded store: one SQLite file whose event and command tables refuse change."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from threading import Lock
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import ApplicationRecorder, InterfaceError, OperationalError
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)
from eventsourcing.utils import Environment, EnvType

from domain.storage.commands import COLUMNS, REFUSAL, CommandRecord, EventKey, LogRow
from domain.storage.freshness import WINDOW, Freshness
from domain.storage.writers import queued, write_lock

COMMANDS_TABLE = "command_log"

STATEMENT_CACHE = 128
"""Prepared statements kept per connection (the library asks sqlite3 for a cache of one)."""


def _refusing_triggers(table: str) -> list[str]:
    """UPDATE and DELETE abort; INSERT OR REPLACE over an existing row aborts too.

    SQLite's REPLACE deletes the old row without firing DELETE triggers (unless
    recursive triggers are on), so a BEFORE INSERT guard refuses the overwrite.
    """
    key_match = {
        "stored_events": "originator_id = NEW.originator_id AND originator_version = NEW.originator_version",
        COMMANDS_TABLE: "command_id = NEW.command_id",
    }
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_refuse_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSAL.format(op='UPDATE', table=table)}'); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_refuse_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSAL.format(op='DELETE', table=table)}'); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_refuse_replace BEFORE INSERT ON {table} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {key_match[table]}) "
        f"BEGIN SELECT RAISE(ABORT, '{REFUSAL.format(op='REPLACE', table=table)}'); END",
    ]


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    """The library's SQLite recorder, plus append-only triggers and the command log."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events") -> None:
        super().__init__(datastore, events_table_name)
        self._probe: sqlite3.Connection | None = None
        self._probe_lock = Lock()
        self._writer: SQLiteConnection | None = None
        self._writer_guard = Lock()
        """Guards opening and closing `_writer` (never the file's write lock: `close` may run anywhere)."""
        self._file_lock = write_lock(datastore.pool.db_name)

    def insert_events(self, stored_events: Sequence[Any], **kwargs: Any) -> Sequence[int] | None:
        """Insert in one transaction on a connection kept for this recorder's writes.

        SQLite takes one writer at a time anyway; the file's write lock in this process
        (`domain.storage.writers`, shared with the views) and a connection of our own cost
        less than the pool's reader-writer interlock, and never sleep in SQLite's busy
        handler behind another writer of this process. An in-memory store goes through the
        pool, whose interlock it needs.
        """
        if self.datastore.pool.is_sqlite_memory_mode:
            return super().insert_events(stored_events, **kwargs)
        with self._queued():
            with self._writer_guard:
                if self._writer is None:
                    self._writer = self.datastore.pool._create_connection()
                writer = self._writer
            with writer.transaction(commit=True) as c:
                return self._insert_events(c, stored_events, **kwargs)

    def create_table(self) -> None:
        """Create the tables (if absent) queued with the file's other writers, as a save is.

        The library begins a deferred transaction; when another writer commits after its first
        read, SQLite refuses its first write at once ("database is locked", no busy handler), so
        a command line started beside a busy server could fail at start-up.
        """
        if self.datastore.pool.is_sqlite_memory_mode:
            super().create_table()
            return
        with self._queued():
            super().create_table()

    def _queued(self) -> AbstractContextManager[None]:
        """This file's write lock (`domain.storage.writers`), waited for as long as SQLite would."""
        timeout = self.datastore.pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT
        return queued(self._file_lock, timeout, refuse=OperationalError)

    def max_notification_id(self) -> int:
        """The latest log position, asked on a connection of its own: no pool, no explicit transaction.

        The ledger asks this whenever it refreshes its cache, so it must cost microseconds.
        """
        with self._probe_lock:
            if self._probe is None:
                self._probe = sqlite3.connect(
                    self.datastore.pool.db_name, uri=True, check_same_thread=False, isolation_level=None
                )
            row = self._probe.execute(self.select_max_notification_id_statement).fetchone()
        return int(row[0] or 0)

    def close_probe(self) -> None:
        """Close the connections this recorder keeps outside the pool."""
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None
        with self._writer_guard:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def construct_create_table_statements(self) -> list[str]:
        if self.events_table_name != "stored_events":
            raise ValueError("the ledger keeps its events in 'stored_events'")
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {COMMANDS_TABLE} ("
            "command_id TEXT PRIMARY KEY, name TEXT NOT NULL, digest TEXT NOT NULL, "
            "actor_id TEXT NOT NULL, aggregate_id TEXT NOT NULL, events TEXT NOT NULL, "
            "recorded_at TEXT NOT NULL) WITHOUT ROWID",
            *_refusing_triggers(self.events_table_name),
            *_refusing_triggers(COMMANDS_TABLE),
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[Any], **kwargs: Any
    ) -> Sequence[int] | None:
        command: CommandRecord | None = kwargs.get("command")
        if command is not None:
            c.execute(
                f"INSERT INTO {COMMANDS_TABLE} ({', '.join(COLUMNS)}) VALUES (?,?,?,?,?,?,?)",
                command.row(),
            )
        positions = super()._insert_events(c, stored_events, **kwargs)
        freshness: Freshness | None = kwargs.get("freshness")
        if freshness is not None and positions and positions[0] != freshness.after + 1:
            # Rowids are max + 1 (nothing is ever deleted), so a gap means others wrote in between.
            c.execute(
                f"SELECT originator_id, originator_version FROM {self.events_table_name} "
                "WHERE rowid > ? AND rowid < ? LIMIT ?",
                (freshness.after, positions[0], WINDOW + 1),
            )
            freshness.judge((UUID(row[0]), int(row[1])) for row in c.fetchall())
        return positions

    def select_command(self, command_id: str) -> CommandRecord | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT {', '.join(COLUMNS)} FROM {COMMANDS_TABLE} WHERE command_id = ?",
                (command_id,),
            )
            row = c.fetchone()
        return CommandRecord.from_row(tuple(row)) if row else None

    def read_log(self, after: int, limit: int) -> list[LogRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, limit),
            )
            return [(r[0], dashed(r[1]), r[2], r[3], r[4]) for r in c.fetchall()]

    def read_positions(self, positions: Sequence[int]) -> list[LogRow]:
        if not positions:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_id, originator_version, topic, state "
                f"FROM {self.events_table_name} "
                "WHERE rowid IN (SELECT value FROM json_each(?)) ORDER BY rowid",
                (orjson.dumps(list(positions)).decode(),),
            )
            return [(r[0], dashed(r[1]), r[2], r[3], r[4]) for r in c.fetchall()]

    def positions_of(self, keys: Sequence[EventKey]) -> list[int]:
        positions = []
        with self.datastore.transaction(commit=False) as c:
            for originator_id, version in keys:
                c.execute(
                    f"SELECT rowid FROM {self.events_table_name} "
                    "WHERE originator_id = ? AND originator_version = ?",
                    (originator_id.hex, version),
                )
                positions.append(int(c.fetchone()[0]))
        return positions


def dashed(hex_id: str) -> str:
    """A UUID stored as 32 hex digits, in its canonical dashed form (without parsing it)."""
    if len(hex_id) != 32:
        return str(UUID(hex_id))
    return f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"


class LedgerSQLiteConnectionPool(SQLiteConnectionPool):
    """The library's pool, with connections that keep their prepared statements.

    The library opens connections with `cached_statements=True`, which sqlite3 reads as a
    cache of one statement: a command alternates BEGIN and two INSERTs, so every statement
    was compiled again each time, triggers included. Keeping them saves a fifth of a command.
    """

    def _create_connection(self) -> SQLiteConnection:
        try:
            connection = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # autocommit: the library issues BEGIN itself
                cached_statements=STATEMENT_CACHE,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as error:
            raise InterfaceError(error) from error
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        connection.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=connection, max_age=self.max_age)


class LedgerSQLiteFactory(SQLiteFactory):
    """Builds the ledger's SQLite recorder on pooled connections that keep their prepared statements,
    and closes its probe connection with the store."""

    application_recorder_class = LedgerSQLiteRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        library = self.datastore.pool  # not yet connected: the pool opens connections on demand
        self.datastore.pool = LedgerSQLiteConnectionPool(
            db_name=library.db_name, lock_timeout=library.lock_timeout
        )
        self._recorders: list[LedgerSQLiteRecorder] = []

    def application_recorder(self) -> ApplicationRecorder:
        recorder = super().application_recorder()
        if isinstance(recorder, LedgerSQLiteRecorder):
            self._recorders.append(recorder)
        return recorder

    def close(self) -> None:
        for recorder in self._recorders:
            recorder.close_probe()
        super().close()
