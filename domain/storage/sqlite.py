"""The embedded store: one SQLite file whose event and command tables refuse change."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from threading import Lock
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore, SQLiteFactory
from eventsourcing.utils import Environment, EnvType

from domain.storage.commands import COLUMNS, REFUSAL, CommandRecord, EventKey, LogRow
from domain.storage.freshness import WINDOW, Freshness

COMMANDS_TABLE = "command_log"


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

    def max_notification_id(self) -> int:
        """The latest log position, asked on a connection of its own: no pool, no explicit transaction.

        The ledger asks this before every command, so it must cost microseconds.
        """
        with self._probe_lock:
            if self._probe is None:
                self._probe = sqlite3.connect(
                    self.datastore.pool.db_name, uri=True, check_same_thread=False, isolation_level=None
                )
            row = self._probe.execute(self.select_max_notification_id_statement).fetchone()
        return int(row[0] or 0)

    def close_probe(self) -> None:
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None

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
                f"SELECT originator_id FROM {self.events_table_name} WHERE rowid > ? AND rowid < ? LIMIT ?",
                (freshness.after, positions[0], WINDOW + 1),
            )
            freshness.judge(UUID(row[0]) for row in c.fetchall())
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


class LedgerSQLiteFactory(SQLiteFactory):
    """Builds the ledger's SQLite recorder, and closes its probe connection with the store."""

    application_recorder_class = LedgerSQLiteRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
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
