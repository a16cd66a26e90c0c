"""Setting up a store: any number of processes may open it at once, and a missing schema is created."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from uuid import uuid4

import psycopg
import pytest

from domain.ledger import Ledger
from projections.store import ViewStore
from projections.tracking import ensure_schema, tracks
from tests.conftest import POSTGRES_URL, require_postgres

OPEN_BOTH = """
import sys
from domain.ledger import Ledger
from projections.store import ViewStore
from projections.tracking import ensure_schema
ledger = Ledger(sys.argv[1])
connection = ViewStore(sys.argv[1]).connect()
ensure_schema(connection)
connection.close()
ledger.close()
"""


def test_processes_opening_a_fresh_store_together_all_succeed(database_url: str) -> None:
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_BOTH, database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    failures = [p.communicate(timeout=120)[1] for p in starters if p.wait(timeout=120) != 0]
    assert failures == []
    ledger = Ledger(database_url)
    try:
        assert ledger.recorder.max_notification_id() in (0, None)
    finally:
        ledger.close()


@pytest.mark.postgres
def test_a_missing_postgres_schema_is_created_for_the_ledger_and_its_views() -> None:
    require_postgres()
    schema = f"test_absent_{uuid4().hex[:8]}"
    url = f"{POSTGRES_URL}?schema={schema}"
    try:
        Ledger(url).close()
        connection = ViewStore(url).connect()
        ensure_schema(connection)
        assert tracks(connection, "case_state") == []
        connection.close()
        with psycopg.connect(POSTGRES_URL) as conn:
            found = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
                (schema,),
            ).fetchall()
        assert [row[0] for row in found] == ["command_log", "projection_tracking", "stored_events"]
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_process_starting_on_a_ledger_already_set_up_waits_for_no_writer(postgres_schema_url: str) -> None:
    Ledger(postgres_schema_url).close()
    schema = postgres_schema_url.rsplit("schema=", 1)[1]
    with psycopg.connect(POSTGRES_URL) as writer:  # a writer mid-insert holds this lock to its commit
        writer.execute(f'LOCK TABLE "{schema}".stored_events IN EXCLUSIVE MODE')
        opening = threading.Thread(target=lambda: Ledger(postgres_schema_url).close())
        opening.start()
        opening.join(timeout=15)
        started_beside_the_writer = not opening.is_alive()
        writer.rollback()
        opening.join()
    assert started_beside_the_writer, "the start waited for the writer's lock (it ran the schema's DDL)"


def test_a_refusing_trigger_dropped_behind_the_ledgers_back_is_back_at_the_next_start(
    postgres_schema_url: str,
) -> None:
    Ledger(postgres_schema_url).close()
    schema = postgres_schema_url.rsplit("schema=", 1)[1]
    count = (
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND NOT t.tgisinternal"
    )
    with psycopg.connect(POSTGRES_URL, autocommit=True) as attacker:
        attacker.execute(f'DROP TRIGGER stored_events_refuse_change ON "{schema}".stored_events')
        assert attacker.execute(count, (schema,)).fetchone() == (3,)
        Ledger(postgres_schema_url).close()
        assert attacker.execute(count, (schema,)).fetchone() == (4,)


@pytest.mark.postgres
def test_a_postgres_database_that_does_not_exist_is_reported_as_such_at_once() -> None:
    """The pool waited its timeout out, then said only that it got no connection."""
    require_postgres()
    missing = POSTGRES_URL.rsplit("/", 1)[0] + f"/no_such_db_{uuid4().hex[:8]}"
    began = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        Ledger(missing)
    assert time.monotonic() - began < 3
