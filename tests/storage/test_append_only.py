"""The store refuses to change or remove what was recorded, even to SQL run behind the ledger's back.

Statements are written with `{events}` for the stored events table (`stored_events`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.storage.raw_db import RawConnection, RawError, raw_connection
from tests.support import World

EVENTS, COMMANDS = "{events}", "command_log"
ORDER = {EVENTS: "originator_id, originator_version", COMMANDS: "command_id"}

ONE_EVENT = (
    "SELECT originator_id, originator_version, 'tampered', state FROM {events} WHERE originator_version = 1"
)
ONE_COMMAND = (
    "SELECT command_id, name, 'forged', actor_id, aggregate_id, events, recorded_at FROM command_log "
    "WHERE command_id = (SELECT min(command_id) FROM command_log)"
)

ON_BOTH_BACKENDS = [
    pytest.param(EVENTS, "UPDATE {events} SET topic = 'tampered'", id="update-all-events"),
    pytest.param(
        EVENTS,
        "UPDATE {events} SET state = state WHERE originator_version = 1",
        id="update-events-to-same-value",
    ),
    pytest.param(EVENTS, "DELETE FROM {events}", id="delete-all-events"),
    pytest.param(
        EVENTS,
        "DELETE FROM {events} WHERE originator_version = (SELECT max(originator_version) FROM {events})",
        id="delete-latest-event",
    ),
    pytest.param(
        EVENTS,
        "INSERT INTO {events} (originator_id, originator_version, topic, state) " + ONE_EVENT + " "
        "ON CONFLICT (originator_id, originator_version) DO UPDATE SET topic = excluded.topic",
        id="upsert-event",
    ),
    pytest.param(COMMANDS, "UPDATE command_log SET digest = 'forged'", id="update-all-commands"),
    pytest.param(
        COMMANDS,
        "UPDATE command_log SET name = 'register_case' WHERE name = 'accept_case'",
        id="update-one-command",
    ),
    pytest.param(COMMANDS, "DELETE FROM command_log", id="delete-all-commands"),
    pytest.param(
        COMMANDS,
        "DELETE FROM command_log WHERE command_id = (SELECT min(command_id) FROM command_log)",
        id="delete-one-command",
    ),
    pytest.param(
        COMMANDS,
        "INSERT INTO command_log "
        + ONE_COMMAND
        + " ON CONFLICT (command_id) DO UPDATE SET digest = excluded.digest",
        id="upsert-command",
    ),
]

ON_SQLITE = [
    pytest.param(
        EVENTS,
        "INSERT OR REPLACE INTO {events} (originator_id, originator_version, topic, state) " + ONE_EVENT,
        id="insert-or-replace-event",
    ),
    pytest.param(
        EVENTS,
        "REPLACE INTO {events} (originator_id, originator_version, topic, state) " + ONE_EVENT,
        id="replace-into-event",
    ),
    pytest.param(EVENTS, "UPDATE OR REPLACE {events} SET topic = 'tampered'", id="update-or-replace-event"),
    pytest.param(
        COMMANDS, "INSERT OR REPLACE INTO command_log " + ONE_COMMAND, id="insert-or-replace-command"
    ),
    pytest.param(COMMANDS, "REPLACE INTO command_log " + ONE_COMMAND, id="replace-into-command"),
]

ON_POSTGRES = [
    pytest.param(EVENTS, "TRUNCATE {events}", id="truncate-events"),
    pytest.param(COMMANDS, "TRUNCATE command_log", id="truncate-commands"),
    pytest.param(COMMANDS, "TRUNCATE command_log, {events}", id="truncate-both"),
    pytest.param(EVENTS, "DELETE FROM ONLY {events}", id="delete-only-events"),
]

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def recorded(world: World) -> World:
    """A ledger with a case that went through a few commands, so both tables have rows."""
    world.replied()
    return world


@pytest.fixture
def raw(recorded: World, database_url: str) -> Iterator[RawConnection]:
    with raw_connection(database_url) as conn:
        yield conn


def snapshot(raw: RawConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {table: raw.rows(table, order_by) for table, order_by in ORDER.items()}


def assert_refused(raw: RawConnection, table: str, statement: str) -> None:
    before = snapshot(raw)
    assert before[table], f"the test needs rows in {table}"
    with pytest.raises(RawError) as refused:
        raw.execute(statement)
    assert "append-only" in str(refused.value)
    assert snapshot(raw) == before


@pytest.mark.parametrize(("table", "statement"), ON_BOTH_BACKENDS)
def test_updating_or_deleting_recorded_rows_is_refused_by_the_database(
    raw: RawConnection, table: str, statement: str
) -> None:
    assert_refused(raw, table, statement)


@SQLITE_ONLY
@pytest.mark.parametrize(("table", "statement"), ON_SQLITE)
def test_overwriting_recorded_rows_by_replace_is_refused_on_sqlite(
    raw: RawConnection, table: str, statement: str
) -> None:
    assert_refused(raw, table, statement)


@POSTGRES_ONLY
@pytest.mark.parametrize(("table", "statement"), ON_POSTGRES)
def test_truncating_recorded_tables_is_refused_on_postgres(
    raw: RawConnection, table: str, statement: str
) -> None:
    assert_refused(raw, table, statement)


@SQLITE_ONLY
def test_refused_changes_inside_an_explicit_transaction_leave_the_rows_unchanged(raw: RawConnection) -> None:
    before = snapshot(raw)
    raw.execute("BEGIN")
    with pytest.raises(RawError):
        raw.execute("DELETE FROM command_log")
    with pytest.raises(RawError):
        raw.execute("UPDATE {events} SET topic = 'tampered'")
    raw.execute("COMMIT")
    assert snapshot(raw) == before


def test_the_ledger_keeps_appending_after_refused_tampering(recorded: World, raw: RawConnection) -> None:
    before = snapshot(raw)
    for statement in ("DELETE FROM {events}", "UPDATE command_log SET digest = 'forged'"):
        with pytest.raises(RawError):
            raw.execute(statement)
    case_id = recorded.register()
    after = snapshot(raw)
    assert set(before[EVENTS]) < set(after[EVENTS])
    assert set(before[COMMANDS]) < set(after[COMMANDS])
    assert len(after[COMMANDS]) == len(before[COMMANDS]) + 1
    assert recorded.case(case_id).version == 1


def test_new_rows_may_still_be_appended_by_sql(raw: RawConnection) -> None:
    """Append-only refuses change, not insertion: the guard must not block the ledger's own inserts."""
    before = raw.count("command_log")
    p = raw.placeholder
    raw.execute(
        f"INSERT INTO command_log VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
        (
            "raw-appended",
            "record_action",
            "0" * 64,
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000002",
            "[]",
            "2026-03-02T01:00:00+00:00",
        ),
    )
    assert raw.count("command_log") == before + 1
