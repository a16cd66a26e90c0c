"""Typed questions the API asks of the views (and, for one case at an instant, of the log).

Every function takes a `ViewConnection`; none replays the whole log. Whether a case is
in breach is decided here, against `today` (the ledger's clock, local date), never
read from a stored flag that would go stale.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict

from domain.aggregate import as_corrected
from domain.case import Case
from domain.events import LedgerEvent
from domain.ledger import Ledger
from projections.columns import as_text, moment_text
from projections.store import ViewConnection
from projections.views.case_state import CASE_STATE
from projections.views.case_state import COLUMNS as CASE_COLUMNS
from projections.views.case_timeline import COLUMNS as TIMELINE_COLUMNS

Axis = Literal["recorded", "occurred"]

_BREACH_CONDITIONS = """(
    (notice_at IS NULL AND status = 'registered' AND acceptance_notice_due < :today)
    OR notice_on_time = 0
    OR (status = 'accepted' AND reply_due < :today)
    OR reply_on_time = 0
    OR (review_stage IN ('first_requested', 'second_requested') AND review_answer_due < :today)
    OR (supervision_open > 0 AND supervision_next_due < :today)
)"""
BREACHED = f"(CASE WHEN {_BREACH_CONDITIONS} THEN 1 ELSE 0 END)"
"""1 when a deadline of the case was missed, or is overdue on `:today`; else 0 (never NULL)."""


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class CaseRow(Row):
    """A case's current state as the `case_state` view holds it, with its breach judged for a day."""

    case_id: UUID
    version: int
    position: int
    recorded_at: datetime
    status: str
    channel: str
    reception: str | None
    category: str
    key_area: str | None
    key_group: bool
    key_issue: bool
    key_person: bool
    source_level: str | None
    source_reference: str | None
    source_due: date | None
    petitioner_id: UUID
    headcount: int
    repeat_of: UUID | None
    dispute_id: UUID | None
    accused_unit_ids: list[UUID]
    accused_cadre_ids: list[UUID]
    registered_at: datetime
    registering_unit_id: UUID
    first_receiver_id: UUID
    unit_id: UUID
    unit_path: str
    responsible_cadre_id: UUID | None
    handler_id: UUID | None
    owning_leader_id: UUID | None
    assigned_by: UUID | None
    forward_due: date | None
    acceptance_notice_due: date | None
    notice_at: datetime | None
    notice_on_time: bool | None
    rules: str | None
    accepted_at: datetime | None
    reply_due: date | None
    extended: bool
    replied_at: datetime | None
    reply_no: int
    reply_outcome: str | None
    reply_on_time: bool | None
    rating: str | None
    review_stage: str
    review_request_until: date | None
    review_answer_due: date | None
    final: bool
    closed_at: datetime | None
    closure: str | None
    ended_at: datetime | None
    reopen_count: int
    action_count: int
    hearing_count: int
    leapfrog_count: int
    supervision_orders: int
    supervision_open: int
    supervision_next_due: date | None
    meeting_count: int
    meeting_due: date | None
    breached: bool


class TimelineRow(Row):
    """One event of a case, flattened for display."""

    case_id: UUID
    version: int
    position: int
    type: str
    actor_id: UUID
    actor_unit_id: UUID
    occurred_at: datetime
    recorded_at: datetime
    narrative: str
    evidence: list[dict[str, Any]]
    details: dict[str, Any]
    corrects: int | None
    corrected_by: list[int]


class CaseFilter(Row):
    """Which cases to list; every given field narrows the list. Instants carry a zone offset."""

    status: str | None = None
    unit_id: UUID | None = None
    """The unit holding the case, or any unit below it."""
    category: str | None = None
    key_area: str | None = None
    key_group: bool | None = None
    key_issue: bool | None = None
    key_person: bool | None = None
    breached: bool | None = None
    owning_leader_id: UUID | None = None
    registered_from: AwareDatetime | None = None
    registered_to: AwareDatetime | None = None
    """Exclusive, as is every `…_to`: a range is `[from, to)`."""
    closed_from: AwareDatetime | None = None
    closed_to: AwareDatetime | None = None
    reply_due_from: date | None = None
    """The reply deadline as it stands (an approved extension included)."""
    reply_due_to: date | None = None


RANGES = {"registered": "registered_at", "closed": "closed_at", "reply_due": "reply_due"}
"""The ranges a `CaseFilter` takes (`<name>_from`, `<name>_to`), and the column each one bounds."""


class Page(Row):
    """A page of a keyset-paginated list; `next` is the cursor for the following page, if any."""

    items: list[CaseRow]
    next: str | None


def get_case(connection: ViewConnection, case_id: UUID, today: date) -> CaseRow | None:
    rows = _select_cases(connection, "case_id = :case_id", {"case_id": str(case_id)}, today, limit=1)
    return rows[0] if rows else None


def cases_of_petitioner(connection: ViewConnection, petitioner_id: UUID, today: date) -> list[CaseRow]:
    """Every case filed for the petitioner, in registration order (their repeat petitions included)."""
    return _select_cases(
        connection,
        "petitioner_id = :petitioner_id",
        {"petitioner_id": str(petitioner_id)},
        today,
        limit=10_000,
    )


@dataclass(frozen=True)
class Accusing:
    """A case whose petition accuses a reader (or repeats one that does), as `case_state` holds it."""

    case_id: str
    dispute_id: str | None
    petitioner_id: str


def cases_accusing(connection: ViewConnection, cadre_id: UUID, served: Collection[UUID]) -> list[Accusing]:
    """Every case accusing this cadre or a unit they served in (the rule of `domain.case.accuses`),
    and every case that repeats one (its `repeat_of` leads to the accusation)."""
    accuses = " OR ".join(["accused_cadre_ids LIKE ?"] + ["accused_unit_ids LIKE ?"] * len(served))
    marks = [f'%"{cadre_id}"%'] + [f'%"{unit_id}"%' for unit_id in sorted(served)]
    rows = connection.execute(
        f"SELECT case_id, dispute_id, petitioner_id FROM {CASE_STATE.name} WHERE {accuses} "
        f"OR repeat_of IN (SELECT case_id FROM {CASE_STATE.name} WHERE {accuses}) ORDER BY case_id",
        marks * 2,
    )
    return [
        Accusing(str(case), None if dispute is None else str(dispute), str(who))
        for case, dispute, who in rows
    ]


@dataclass(frozen=True)
class Readable:
    """The cases a reader may list: held within these units' subtrees, or involving this cadre."""

    unit_ids: frozenset[UUID]
    cadre_id: UUID | None = None


INVOLVED = ("first_receiver_id", "responsible_cadre_id", "handler_id", "owning_leader_id")


def list_cases(
    connection: ViewConnection,
    filters: CaseFilter,
    today: date,
    limit: int = 50,
    after: str | None = None,
    readable: Readable | None = None,
) -> Page:
    """Cases in registration order (oldest first), `limit` at a time, resuming after a cursor.

    With `readable`, only the cases a reader may see (decided in SQL, so a reader who may see
    few cases never makes the query walk the whole table page by page).
    """
    clauses, params = _filter_clauses(filters)
    if readable is not None:
        either = [f"unit_path LIKE :scope_{n}" for n in range(len(readable.unit_ids))]
        params |= {f"scope_{n}": f"%/{unit}/%" for n, unit in enumerate(sorted(readable.unit_ids, key=str))}
        if readable.cadre_id is not None:
            either += [f"{column} = :reader" for column in INVOLVED]
            params["reader"] = str(readable.cadre_id)
        clauses.append(f"({' OR '.join(either) or '1 = 0'})")
    if after is not None:
        registered_at, case_id = _decode_cursor(after)
        clauses.append("(registered_at > :after_at OR (registered_at = :after_at AND case_id > :after_id))")
        params |= {"after_at": registered_at, "after_id": case_id}
    rows = _select_cases(connection, " AND ".join(clauses) or "1 = 1", params, today, limit=limit + 1)
    more = len(rows) > limit
    items = rows[:limit]
    last = items[-1] if items and more else None
    return Page(items=items, next=cursor_of(last) if last else None)


def case_timeline(connection: ViewConnection, case_id: UUID) -> list[TimelineRow]:
    rows = connection.execute(
        f"SELECT {', '.join(TIMELINE_COLUMNS)} FROM case_timeline WHERE case_id = ? ORDER BY version",
        (str(case_id),),
    )
    return [
        TimelineRow.model_validate(
            dict(zip(TIMELINE_COLUMNS, row, strict=True))
            | {
                "evidence": orjson.loads(row[9]),
                "details": orjson.loads(row[10]),
                "corrected_by": orjson.loads(row[12]),
            }
        )
        for row in rows
    ]


def case_as_of(ledger: Ledger, case_id: UUID, instant: datetime, axis: Axis = "recorded") -> Case | None:
    """The case as a from-scratch replay of its events up to `instant` gives it.

    `recorded`: what the ledger had recorded by then (its events with record time <= instant).
    `occurred`: what had happened by then, as far as the ledger knows today (business time):
    every correction folded into the event it corrects, then the events that occurred by then
    applied in the order they happened (as `cadre_accountability` reads a case's history).
    """
    case: Case | None = None
    history = [event for event in ledger.events.get(case_id) if isinstance(event, LedgerEvent)]
    if axis == "occurred":
        history = sorted(as_corrected(history), key=lambda e: (e.occurred_at, e.originator_version))
    for event in history:
        moment = event.timestamp if axis == "recorded" else event.occurred_at
        if moment > instant:
            break
        if case is None:
            if not isinstance(event, Case.Registered):
                continue  # recorded as having happened before the registration: not a case yet
            case = event.mutate(None)
        else:
            # `apply`, not `mutate`: in business order versions come out of sequence, which mutate refuses
            event.apply(case)  # type: ignore[attr-defined]
            case.version = max(case.version, event.originator_version)
            case.modified_on = max(case.modified_on, event.timestamp)
    return case


class Responsibility(Row):
    """Who held a case at an instant of business time."""

    case_id: UUID
    at: datetime
    unit_id: UUID | None
    responsible_cadre_id: UUID | None
    handler_id: UUID | None
    owning_leader_id: UUID | None


def responsibility_at(ledger: Ledger, case_id: UUID, instant: datetime) -> Responsibility | None:
    """Who was responsible for the case at `instant` (business time): unit, person, handler, leader."""
    case = case_as_of(ledger, case_id, instant, axis="occurred")
    if case is None:
        return None
    return Responsibility(
        case_id=case_id,
        at=instant,
        unit_id=case.unit_id,
        responsible_cadre_id=case.responsible_cadre_id,
        handler_id=case.handler_id,
        owning_leader_id=case.owning_leader_id,
    )


def _select_cases(
    connection: ViewConnection, where: str, params: dict[str, Any], today: date, limit: int
) -> list[CaseRow]:
    statement, values = _named(
        f"SELECT {', '.join(CASE_COLUMNS)}, {BREACHED} AS breached FROM case_state WHERE {where} "
        "ORDER BY registered_at, case_id LIMIT :limit",
        params | {"today": today.isoformat(), "limit": limit},
    )
    names = [*CASE_COLUMNS, "breached"]
    result = []
    for row in connection.execute(statement, values):
        record = dict(zip(names, row, strict=True))
        record["accused_unit_ids"] = orjson.loads(record["accused_unit_ids"])
        record["accused_cadre_ids"] = orjson.loads(record["accused_cadre_ids"])
        result.append(CaseRow.model_validate(record))
    return result


def _filter_clauses(filters: CaseFilter) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name in ("status", "category", "key_area"):
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{name} = :{name}")
            params[name] = value
    for name in ("key_group", "key_issue", "key_person"):
        value = getattr(filters, name)
        if value is not None:
            clauses.append(f"{name} = :{name}")
            params[name] = int(value)
    if filters.owning_leader_id is not None:
        clauses.append("owning_leader_id = :owning_leader_id")
        params["owning_leader_id"] = str(filters.owning_leader_id)
    if filters.unit_id is not None:
        clauses.append("unit_path LIKE :unit_path")
        params["unit_path"] = f"%/{filters.unit_id}/%"
    for name, column in RANGES.items():
        for end, compare in (("from", ">="), ("to", "<")):
            value = getattr(filters, f"{name}_{end}")
            if value is not None:
                clauses.append(f"{column} {compare} :{name}_{end}")
                params[f"{name}_{end}"] = as_text(value)
    if filters.breached is not None:
        clauses.append(f"{BREACHED} = {int(filters.breached)}")
    return clauses, params


def _named(statement: str, params: dict[str, Any]) -> tuple[str, Sequence[Any]]:
    """`:name` parameters → `?` placeholders and a positional list (the store speaks `?`)."""
    positional, names = _placeholders(statement)
    return positional, [params[name] for name in names]


@functools.lru_cache(maxsize=256)
def _placeholders(statement: str) -> tuple[str, tuple[str, ...]]:
    """The statement with `?` for each `:name`, and the names in order (a statement's shape is reused)."""
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "?"

    return re.sub(r":([a-z_][a-z0-9_]*)", replace, statement), tuple(names)


def cursor_of(row: CaseRow) -> str:
    raw = orjson.dumps([moment_text(row.registered_at), str(row.case_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        registered_at, case_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(registered_at), str(UUID(case_id))
    except (ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"not a cursor this list gave out: {cursor!r}") from error
