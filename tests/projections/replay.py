"""What each view should hold, computed by replaying every case from scratch out of the event store."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from domain.aggregate import CorrectedEvent
from domain.case import Case
from domain.events import LedgerEvent
from domain.ledger import Ledger
from projections.columns import as_json
from projections.runner import Runner
from projections.store import ViewConnection
from projections.view import Envelope
from projections.views.case_state import COLUMNS, CaseStateView
from projections.views.case_timeline import COLUMNS as TIMELINE_COLUMNS
from projections.views.case_timeline import timeline_row

STATE_QUERY = f"SELECT {', '.join(COLUMNS)} FROM case_state"
TIMELINE_QUERY = f"SELECT {', '.join(TIMELINE_COLUMNS)} FROM case_timeline"


def case_ids(ledger: Ledger) -> list[UUID]:
    notifications = ledger.recorder.select_notifications(start=1, limit=10**7, topics=[Case.Registered.TOPIC])
    return [UUID(str(n.originator_id)) for n in notifications]


def replayed_case_row(ledger: Ledger, case_id: UUID) -> tuple[Any, ...]:
    """The case_state row of one case, from its events replayed by the repository."""
    case: Case = ledger.repository.get(case_id)
    last = next(iter(ledger.events.get(case_id, desc=True, limit=1)))
    assert isinstance(last, LedgerEvent)
    position = ledger.command_log.positions_of([(case_id, case.version)])[0]
    return CaseStateView(ledger).row(case, Envelope(position, last.TOPIC, last))


def replayed_timeline_rows(ledger: Ledger, case_id: UUID) -> dict[tuple[str, int], list[Any]]:
    """The case_timeline rows of one case, with correction links, from its stored events."""
    rows: dict[tuple[str, int], list[Any]] = {}
    events = [e for e in ledger.events.get(case_id) if isinstance(e, LedgerEvent)]
    positions = ledger.command_log.positions_of([(case_id, e.originator_version) for e in events])
    for event, position in zip(events, positions, strict=True):
        rows[(str(case_id), event.originator_version)] = timeline_row(Envelope(position, event.TOPIC, event))
    for event in events:
        if isinstance(event, CorrectedEvent):
            target = rows[(str(case_id), event.corrects)]
            target[-1] = as_json(sorted({*orjson.loads(target[-1]), event.originator_version}))
    return rows


def assert_views_equal_replay(ledger: Ledger, connection: ViewConnection) -> None:
    """Every case_state row and every case_timeline row equals the from-scratch replay."""
    stored = {row[0]: row for row in connection.execute(STATE_QUERY)}
    timeline = {(row[0], int(row[1])): list(row) for row in connection.execute(TIMELINE_QUERY)}
    ids = case_ids(ledger)
    assert set(stored) == {str(case_id) for case_id in ids}
    expected_timeline: dict[tuple[str, int], list[Any]] = {}
    for case_id in ids:
        assert stored[str(case_id)] == replayed_case_row(ledger, case_id), f"case_state differs for {case_id}"
        expected_timeline |= replayed_timeline_rows(ledger, case_id)
    assert timeline == expected_timeline


def assert_case_views_equal_replay(ledger: Ledger, connection: ViewConnection, case_id: UUID) -> None:
    """One case's case_state row and case_timeline rows equal its from-scratch replay."""
    stored = connection.execute(f"{STATE_QUERY} WHERE case_id = ?", (str(case_id),))
    assert stored == [replayed_case_row(ledger, case_id)], f"case_state differs for {case_id}"
    timeline = connection.execute(f"{TIMELINE_QUERY} WHERE case_id = ? ORDER BY version", (str(case_id),))
    assert [list(row) for row in timeline] == list(replayed_timeline_rows(ledger, case_id).values())


def caught_up(views: Runner) -> ViewConnection:
    """The views' connection once they have applied the whole log."""
    views.catch_up()
    return views.connection
