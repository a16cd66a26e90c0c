"""The scale store: PostgreSQL, with triggers that refuse UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import orjson
import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore, PostgresFactory
from eventsourcing.utils import retry
from psycopg import Cursor, IsolationLevel
from psycopg.errors import DuplicateObject
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier, Literal

from domain.storage.commands import COLUMNS, REFUSAL, CommandRecord, EventKey, LogRow
from domain.storage.ddl import lock_schema
from domain.storage.freshness import WINDOW, Freshness

EVENTS_TABLE = "stored_events"
COMMANDS_TABLE = "command_log"
REFUSE_FUNCTION = "dutyledger_refuse_change"


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder, plus append-only triggers and the command log."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        self.commands = SQL("{0}.{1}").format(schema, Identifier(COMMANDS_TABLE))
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0} ("
                    "command_id text PRIMARY KEY, name text NOT NULL, digest text NOT NULL, "
                    "actor_id uuid NOT NULL, aggregate_id uuid NOT NULL, events jsonb NOT NULL, "
                    "recorded_at timestamptz NOT NULL)"
                ).format(self.commands),
                SQL(
                    "CREATE OR REPLACE FUNCTION {0}.{1}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION {2}, TG_OP, TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME "
                    "USING ERRCODE = 'restrict_violation'; END $$"
                ).format(schema, Identifier(REFUSE_FUNCTION), REFUSAL.format(op="%", table="%")),
                *self._refusing_triggers(self.events_table_name),
                *self._refusing_triggers(COMMANDS_TABLE),
            ]
        )
        self.insert_command = SQL("INSERT INTO {0} ({1}) VALUES (%s,%s,%s,%s,%s,%s,%s)").format(
            self.commands, SQL(", ").join(map(Identifier, COLUMNS))
        )
        self.select_command_statement = SQL("SELECT {1} FROM {0} WHERE command_id = %s").format(
            self.commands, SQL(", ").join(map(Identifier, COLUMNS))
        )
        self.select_log = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(schema, Identifier(self.events_table_name))
        self.select_positions = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1} "
            "WHERE notification_id = ANY(%s) ORDER BY notification_id"
        ).format(schema, Identifier(self.events_table_name))
        window = SQL(
            "SELECT notification_id, NULL AS originator_id, NULL AS originator_version FROM ours UNION ALL "
            "(SELECT notification_id, originator_id, originator_version FROM {0}.{1} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s)"
        ).format(schema, Identifier(self.events_table_name))
        self.insert_checked = SQL("WITH ours AS ({0}) {1}").format(self.insert_events_statement, window)
        """Insert the events and read, in the same snapshot, what others recorded after a position."""
        self.insert_checked_command = SQL("WITH command AS ({0}), ours AS ({1}) {2}").format(
            self.insert_command, self.insert_events_statement, window
        )
        """The same, recording the command's row too: one statement for all a command writes."""
        self.select_position = SQL(
            "SELECT notification_id FROM {0}.{1} WHERE originator_id = %s AND originator_version = %s"
        ).format(schema, Identifier(self.events_table_name))

    def create_table(self) -> None:
        """Create schema, types, tables, functions and triggers in one transaction, one process at a time,
        unless this very schema is there already, its refusing triggers in place.

        The statements lock the events table (`CREATE OR REPLACE TRIGGER`, `CREATE INDEX IF NOT
        EXISTS`), so running them at every process start would make every starting server,
        runner or CLI command queue with the ledger's writers; a digest of the statements, kept
        as the refusing function's comment, says they have all run, and nothing is locked then.
        A refusing trigger dropped or disabled behind the ledger's back is still put back by
        the next process that starts, as before.
        """
        digest = hashlib.sha256("\n".join(s.as_string() for s in self.sql_create_statements).encode())
        done = digest.hexdigest()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "SELECT obj_description(to_regprocedure(%s), 'pg_proc') AS done, "
                "(SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
                "AND t.tgname = ANY(%s) AND t.tgenabled <> 'D') AS guarding",
                (self._refuse, self.datastore.schema, self._guards),
            )
            found = curs.fetchone()
            if found is None or found["done"] != done or found["guarding"] != len(self._guards):
                lock_schema(curs, self.datastore.schema)
                for statement in self.sql_create_statements:
                    if "CREATE TYPE" in statement.as_string():  # no IF NOT EXISTS for types
                        with suppress(DuplicateObject), curs.connection.transaction():
                            curs.execute(statement, prepare=False)
                self._create_table(curs)
                curs.execute(SQL("COMMENT ON FUNCTION {0} IS {1}").format(SQL(self._refuse), Literal(done)))
        self.datastore.register_type_adapters()

    @property
    def _guards(self) -> list[str]:
        """The names of the refusing triggers (`_refusing_triggers`)."""
        tables = (self.events_table_name, COMMANDS_TABLE)
        return [f"{table}_refuse_{what}" for table in tables for what in ("change", "truncate")]

    @property
    def _refuse(self) -> str:
        """The refusing trigger function's signature, schema-qualified."""
        schema = self.datastore.schema.replace('"', '""')
        return f'"{schema}".{REFUSE_FUNCTION}()'

    def _refusing_triggers(self, table: str) -> list[Composed]:
        target = SQL("{0}.{1}").format(Identifier(self.datastore.schema), Identifier(table))
        function = SQL("{0}.{1}()").format(Identifier(self.datastore.schema), Identifier(REFUSE_FUNCTION))
        return [
            SQL(
                "CREATE OR REPLACE TRIGGER {0} BEFORE UPDATE OR DELETE ON {1} "
                "FOR EACH ROW EXECUTE FUNCTION {2}"
            ).format(Identifier(f"{table}_refuse_change"), target, function),
            SQL(
                "CREATE OR REPLACE TRIGGER {0} BEFORE TRUNCATE ON {1} FOR EACH STATEMENT EXECUTE FUNCTION {2}"
            ).format(Identifier(f"{table}_refuse_truncate"), target, function),
        ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's pipelined insert, with the command's read-set check in the same statement.

        Once the events table is locked, one statement inserts the events and reads what others
        recorded after the command's cache position (the insert's own rows are not in that
        snapshot), so the check costs no round trip. A stale read rolls the transaction back.
        """
        freshness: Freshness | None = kwargs.get("freshness")
        if freshness is None or not stored_events:
            unchecked: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
            return unchecked
        rows = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        command: CommandRecord | None = kwargs.get("command")
        if command is None:
            statement, params = self.insert_checked, (rows, freshness.after, WINDOW + 1)
        else:
            statement, params = (
                self.insert_checked_command,
                (*command.row(), rows, freshness.after, WINDOW + 1),
            )
        # Errors propagate through the transaction block, which rolls back (even if the server
        # reported the error before the sync), and `get_connection` maps them to the library's.
        with self.datastore.get_connection() as conn:
            # The check must see what committed while this waited for the lock: under REPEATABLE
            # READ (a server or pooler default) the snapshot would be older than the lock.
            conn.isolation_level = IsolationLevel.READ_COMMITTED
            with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as curs:
                self._lock_table(curs)
                self._notify_channel(curs)
                curs.execute(statement, params, prepare=True)
                pipeline.sync()
                found = curs.fetchall()
                others = [r for r in found if r["originator_id"] is not None]
                freshness.judge((r["originator_id"], r["originator_version"]) for r in others)
        return sorted(r["notification_id"] for r in found if r["originator_id"] is None)

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[Any], **kwargs: Any) -> None:
        command: CommandRecord | None = kwargs.get("command")
        if command is not None:
            curs.execute(self.insert_command, command.row(), prepare=True)

    def select_command(self, command_id: str) -> CommandRecord | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_command_statement, (command_id,))
            row = curs.fetchone()
        if row is None:
            return None
        values = [row[column] for column in COLUMNS]
        values[5] = _jsonb_text(values[5])
        return CommandRecord.from_row(values)

    def read_log(self, after: int, limit: int) -> list[LogRow]:
        return self._read(self.select_log, (after, limit))

    def read_positions(self, positions: Sequence[int]) -> list[LogRow]:
        return self._read(self.select_positions, (list(positions),)) if positions else []

    def _read(self, statement: Composed, params: tuple[Any, ...]) -> list[LogRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                (
                    row["notification_id"],
                    str(row["originator_id"]),
                    row["originator_version"],
                    row["topic"],
                    bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def positions_of(self, keys: Sequence[EventKey]) -> list[int]:
        positions = []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            for originator_id, version in keys:
                curs.execute(self.select_position, (originator_id, version))
                row = curs.fetchone()
                assert row is not None
                positions.append(int(row["notification_id"]))
        return positions


def _jsonb_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class LedgerPostgresFactory(PostgresFactory):
    """Builds the ledger's PostgreSQL recorder."""

    application_recorder_class = LedgerPostgresRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self._probe()

    def _probe(self) -> None:
        """Connect once, directly, so that a server that is down or a database that does not exist
        is reported as the server says it (the pool would wait its timeout out, then say only that
        it got no connection)."""
        get = self.env.get
        psycopg.connect(
            dbname=get(self.POSTGRES_DBNAME),
            host=get(self.POSTGRES_HOST),
            port=get(self.POSTGRES_PORT) or "5432",
            user=get(self.POSTGRES_USER),
            password=get(self.POSTGRES_PASSWORD) or "",
            connect_timeout=int(get(self.POSTGRES_CONNECT_TIMEOUT) or "5"),
        ).close()

    def application_recorder(self) -> LedgerPostgresRecorder:
        """The recorder on `stored_events`, as on SQLite (the library would name it after the app)."""
        recorder = LedgerPostgresRecorder(self.datastore, events_table_name=EVENTS_TABLE)
        if self.env_create_table():
            recorder.create_table()
        return recorder
