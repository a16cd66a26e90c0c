"""Read-set validation (`domain.storage.freshness`) where it is easiest to get wrong.

Refusals judged against what the command read, not the cache's later position; the
store's retries of a lost connection; the check's snapshot under another isolation level.
Ledger A is the world's ledger and ledger B (`other`) a second instance on the same
database, as in `test_cache.py`.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from domain.clock import ManualClock
from domain.events import Stamp
from domain.ledger import Ledger
from domain.values import Role
from tests.conftest import POSTGRES_URL
from tests.storage.spies import another_request_refreshes_once_read, saves_of
from tests.support import World

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
"""For what only PostgreSQL has: pooled server connections, isolation levels."""


def test_a_role_granted_through_the_other_ledger_is_honoured_though_a_request_refreshed_meanwhile(
    world: World, other: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    inquiry = world.do(world.inspector, "open_inquiry", cadre_ids=frozenset({world.handler}))
    clerk = world.ledger.repository.get(world.township_clerk)
    world.do(world.township_clerk, "record_action", case_id=world.accepted(), kind="visit")  # A caches her
    other.change_roles(
        world.ctx(world.admin), cadre_id=world.township_clerk, roles=frozenset({*clerk.roles, Role.INSPECTOR})
    )
    another_request_refreshes_once_read(world.ledger, world.township_clerk, world.admin, monkeypatch)
    world.do(world.township_clerk, "close_inquiry", inquiry_id=inquiry.aggregate_id)


@ON_POSTGRES
def test_a_command_whose_pooled_connection_was_cut_is_saved_on_another_as_the_library_retries(
    world: World, database_url: str
) -> None:
    case_id = world.accepted()
    world.do(world.handler, "record_action", case_id=case_id, kind="visit")  # A caches what the next reads
    before = world.case(case_id).action_count
    pool = world.ledger.recorder.datastore.pool  # type: ignore[attr-defined]
    pids = [conn.info.backend_pid for conn in list(pool._pool)]
    assert pids
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        for pid in pids:  # only this ledger's own idle connections
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    world.do(world.handler, "record_action", case_id=case_id, kind="talk")
    assert world.case(case_id).action_count == before + 1


@ON_POSTGRES
def test_a_save_sees_what_was_recorded_while_it_waited_for_the_lock_where_sessions_default_to_repeatable_read(
    world: World, database_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check's snapshot must be taken after the events table's lock, whatever the default isolation.

    Here the ledger's sessions default to REPEATABLE READ (as `ALTER DATABASE ... SET
    default_transaction_isolation` or a pooler can make them). A save inserts its command row
    first, which fixes the snapshot, then waits for the lock while another writer changes
    the acting cadre and commits: the check must still see that change.
    """
    schema = database_url.split("schema=")[1]
    case_id = world.accepted()
    monkeypatch.setenv("PGOPTIONS", "-c default_transaction_isolation=repeatable\\ read")
    ledger = Ledger(database_url, clock=clock)
    try:
        ledger.record_action(world.ctx(world.handler), case_id=case_id, kind="visit")  # caches the handler
        cadre = world.ledger.repository.get(world.handler)
        now = clock.now()
        stamp = Stamp(world.admin, world.township, now, now, "direct", "direct", "a direct write")
        cadre.change_roles(stamp, cadre.roles ^ {Role.REEXAMINER})
        raw = world.ledger.mapper.to_stored_event(cadre.collect_events()[0])
        outcomes = saves_of(ledger, monkeypatch)
        with psycopg.connect(POSTGRES_URL) as writer:
            writer.execute(f'LOCK TABLE "{schema}".stored_events IN EXCLUSIVE MODE')
            command = threading.Thread(
                target=ledger.record_action,
                args=(world.ctx(world.handler),),
                kwargs={"case_id": case_id, "kind": "talk"},
            )
            command.start()
            for _ in range(500):  # until the command's save waits for the lock
                waiting = writer.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                    (f'"{schema}".stored_events',),
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.01)
            writer.execute(
                f'INSERT INTO "{schema}".stored_events (originator_id, originator_version, topic, state) '
                "VALUES (%s, %s, %s, %s)",
                (raw.originator_id, raw.originator_version, raw.topic, raw.state),
            )
            writer.commit()
        command.join(10)
        assert outcomes[:1] == ["stale"]
    finally:
        ledger.close()
