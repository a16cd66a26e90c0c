"""A cadre's accountability over a window `[start, end)` of business time, with the failure patterns.

The four failure patterns the joint meetings exist to end (domain.md) are judged as of
the end of the window, each flag carrying the events that prove it:

- received_not_handled (只接访不处访): they received the petition (首接), it was neither
  accepted, declined nor passed to the competent unit by its acceptance notice deadline,
  and nobody recorded any handling action;
- prescribed_not_cured (只开方不治病): a reply they issued later failed: unsatisfied,
  overturned or modified on review, reopened, or followed by a leapfrog petition;
- owned_not_resolved (只包案不解决): while they owned the case as leader, its reply or
  meeting deadline passed unmet;
- assigned_not_supervised (只交办不督办): they assigned the case, its reply deadline passed
  unmet, and they issued no supervision order on it.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict

from projections.columns import moment_text
from projections.store import ViewConnection
from projections.views.cadre_accountability import LATE_RECORD_FLOOR

LATE_AFTER = timedelta(hours=72)
"""The default threshold of a record filed late (setting `DUTYLEDGER_LATE_RECORD_HOURS`)."""
HOLDER_KINDS = ("reply", "review_answer", "meeting")
"""Deadlines that count against whoever held the case as handler, responsible person or owning leader."""


class Proof(BaseModel):
    """An event that proves a flag: the aggregate and the version the event gave it."""

    model_config = ConfigDict(frozen=True)
    aggregate_id: UUID
    version: int


class Flag(BaseModel):
    """One instance of a failure pattern, with its evidence."""

    model_config = ConfigDict(frozen=True)
    pattern: str
    case_id: UUID
    proof: list[Proof]


class CadreAccountability(BaseModel):
    """What a cadre held, did, missed and was found to have failed, in a window of business time."""

    model_config = ConfigDict(frozen=True)
    cadre_id: UUID
    start: datetime
    end: datetime
    cases_received: int
    cases_held: dict[str, int]
    actions: int
    late_records: int
    passed_on: int
    deadlines_met: int
    deadlines_missed: int
    replies_issued: int
    replies_overturned: int
    replies_failed: int
    ratings: dict[str, int]
    meetings_chaired: int
    meetings_chaired_as_principal: int
    supervision_issued: int
    supervision_followed: int
    findings: int
    sanctions: int
    flags: list[Flag]


def cadre_accountability(
    connection: ViewConnection,
    cadre_id: UUID,
    start: datetime,
    end: datetime,
    late_after: timedelta = LATE_AFTER,
) -> CadreAccountability:
    """Everything the views know of the cadre in `[start, end)`, flags judged as of `end`.

    A record counts as filed late when made more than `late_after` (whole hours, at least
    `LATE_RECORD_FLOOR`) after the fact it records.
    """
    if end < start:
        raise ValueError(f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    if late_after < LATE_RECORD_FLOOR or late_after % timedelta(hours=1):
        raise ValueError(f"late_after must be whole hours, at least {LATE_RECORD_FLOOR}; got {late_after}")
    late_hours = late_after // timedelta(hours=1)
    cadre, since, until = str(cadre_id), moment_text(start), moment_text(end)
    window = (cadre, since, until)
    kinds: Counter[str] = Counter()
    tags: Counter[tuple[str, str]] = Counter()
    for kind, tag, count in _counts(connection, cadre, since, until):
        kinds[kind] += int(count)
        if tag:
            tags[(kind, tag)] += int(count)
    facts = connection.execute(
        "SELECT kind, aggregate_id, version, case_id, detail FROM cadre_facts "
        "WHERE cadre_id = ? AND kind = 'reply_failed' AND at >= ? AND at < ? "
        "ORDER BY at, aggregate_id, version",
        window,
    )
    held = (
        connection.execute(
            "SELECT role, COUNT(DISTINCT case_id) FROM cadre_roles "
            "WHERE cadre_id = ? AND ended_at > ? AND started_at < ? GROUP BY role",
            window,
        )
        if since < until
        else []  # an empty window holds nothing, not what spans its instant
    )
    met, missed, owned_flags = _deadlines(connection, cadre, since, until)
    failed = _failed_replies(facts)
    flags = [
        *_received_not_handled(connection, window),
        *failed,
        *owned_flags,
        *_assigned_not_supervised(connection, window),
    ]
    return CadreAccountability(
        cadre_id=cadre_id,
        start=start,
        end=end,
        cases_received=kinds["received"],
        cases_held={role: int(count) for role, count in held},
        actions=kinds["action"],
        late_records=sum(
            n for (kind, tag), n in tags.items() if kind == "late_record" and int(tag) > late_hours
        ),
        passed_on=kinds["passed_on"],
        deadlines_met=met,
        deadlines_missed=missed,
        replies_issued=kinds["reply_issued"],
        replies_overturned=kinds["reply_overturned"],
        replies_failed=len(failed),
        ratings={tag: count for (kind, tag), count in sorted(tags.items()) if kind == "reply_rated"},
        meetings_chaired=kinds["meeting_chaired"],
        meetings_chaired_as_principal=tags[("meeting_chaired", "True")],
        supervision_issued=kinds["supervision_issued"],
        supervision_followed=kinds["supervision_followed"],
        findings=kinds["finding"],
        sanctions=kinds["sanction"],
        flags=sorted(flags, key=lambda f: (f.pattern, str(f.case_id), [p.version for p in f.proof])),
    )


def _deadlines(connection: ViewConnection, cadre: str, since: str, until: str) -> tuple[int, int, list[Flag]]:
    """Deadlines judged in the window while the cadre held the case; misses as owning leader flagged."""
    rows = connection.execute(
        "SELECT d.case_id, d.kind, d.due_end, d.resolved_at, d.on_time, d.set_version, "
        "r.role, r.started_at, r.ended_at, r.started_version "
        "FROM cadre_roles r JOIN case_deadlines d ON d.case_id = r.case_id "
        f"WHERE r.cadre_id = ? AND r.ended_at >= ? AND r.started_at < ? "
        f"AND d.kind IN ({', '.join('?' * len(HOLDER_KINDS))}) AND d.due_end >= ? AND d.set_at < ?",
        (cadre, since, until, *HOLDER_KINDS, since, until),
    )
    judged: dict[tuple[str, str, str], bool] = {}
    flags = []
    for (
        case_id,
        kind,
        due_end,
        resolved_at,
        on_time,
        set_version,
        role,
        started,
        ended,
        started_version,
    ) in rows:
        resolved = resolved_at is not None and resolved_at < until
        if resolved and on_time is None:
            continue  # superseded by an extension before the end of the window: judged as its successor
        moment = resolved_at if resolved else due_end
        if not since <= moment < until or (not resolved and due_end >= until):
            continue
        if started > moment or ended < moment:
            continue  # they did not hold the case when the deadline was judged
        kept = bool(on_time) if resolved else False
        judged[(case_id, kind, due_end)] = judged.get((case_id, kind, due_end), True) and kept
        if not kept and role == "owning_leader":
            proof = [
                Proof(aggregate_id=case_id, version=started_version),
                Proof(aggregate_id=case_id, version=set_version),
            ]
            flags.append(Flag(pattern="owned_not_resolved", case_id=case_id, proof=proof))
    kept_count = sum(judged.values())
    return kept_count, len(judged) - kept_count, _unique(flags)


COUNTED = (
    "SELECT kind, tag, COUNT(*) FROM cadre_facts WHERE cadre_id = ? AND at >= ? AND at < ? GROUP BY kind, tag"
)
"""The cadre's facts in `[?, ?)` counted by kind and tag (for part days: whole days are summed)."""


def _counts(connection: ViewConnection, cadre: str, since: str, until: str) -> list[tuple[Any, ...]]:
    """(kind, tag, count) of the cadre's facts in the window: whole UTC days summed, part days counted."""
    first_day = since[:10] if since.endswith("T00:00:00.000000Z") else _next_day(since[:10])
    last_day = until[:10]  # the day `until` falls in is a part day (or excluded, at midnight)
    if first_day >= last_day:
        return connection.execute(COUNTED, (cadre, since, until))
    whole_from, whole_until = f"{first_day}T00:00:00.000000Z", f"{last_day}T00:00:00.000000Z"
    return connection.execute(  # one statement: one round trip on PostgreSQL
        "SELECT kind, tag, SUM(count) FROM cadre_days WHERE cadre_id = ? AND day >= ? AND day < ? "
        f"GROUP BY kind, tag UNION ALL {COUNTED} UNION ALL {COUNTED}",
        (cadre, first_day, last_day, cadre, since, whole_from, cadre, whole_until, until),
    )


def _next_day(day: str) -> str:
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


OVERDUE = "d.due_end < ? AND (d.resolved_at IS NULL OR d.resolved_at >= ? OR d.on_time = 0)"
"""The deadline `d` had passed unmet as of the end of the window (both `?` are that end)."""


def _received_not_handled(connection: ViewConnection, window: tuple[str, str, str]) -> list[Flag]:
    until = window[2]
    rows = connection.execute(
        "SELECT f.case_id, f.aggregate_id, f.version, d.set_version FROM cadre_facts f "
        "JOIN case_deadlines d ON d.case_id = f.case_id AND d.kind = 'acceptance_notice' AND d.seq = 1 "
        f"WHERE f.cadre_id = ? AND f.kind = 'received' AND f.at >= ? AND f.at < ? AND {OVERDUE} "
        "AND NOT EXISTS (SELECT 1 FROM cadre_facts a WHERE a.case_id = d.case_id AND a.kind = 'action' "
        "AND a.at < ?) ORDER BY f.case_id",
        (*window, until, until, until),
    )
    return [_flag("received_not_handled", *row) for row in rows]


def _failed_replies(rows: list[tuple[Any, ...]]) -> list[Flag]:
    """One flag per reply that failed (只开方不治病), proven by the reply and every event that failed it:
    a reply rated unsatisfied and then overturned on review is one failed reply, not two."""
    failures: dict[tuple[str, int], list[Proof]] = {}
    for _kind, aggregate_id, version, case_id, detail in rows:
        reply = (case_id, orjson.loads(detail)["reply_version"])
        proof = failures.setdefault(reply, [Proof(aggregate_id=case_id, version=reply[1])])
        proof.append(Proof(aggregate_id=aggregate_id, version=version))
    return [
        Flag(pattern="prescribed_not_cured", case_id=case_id, proof=proof)
        for (case_id, _), proof in failures.items()
    ]


def _assigned_not_supervised(connection: ViewConnection, window: tuple[str, str, str]) -> list[Flag]:
    until = window[2]
    rows = connection.execute(
        "SELECT f.case_id, f.aggregate_id, f.version, d.set_version FROM cadre_facts f "
        "JOIN case_deadlines d ON d.case_id = f.case_id AND d.kind = 'reply' "
        f"WHERE f.cadre_id = ? AND f.kind = 'assigned' AND f.at >= ? AND f.at < ? AND {OVERDUE} "
        "AND NOT EXISTS (SELECT 1 FROM cadre_facts s WHERE s.case_id = f.case_id "
        "AND s.kind = 'supervision_issued' AND s.cadre_id = f.cadre_id AND s.at < ?) "
        "ORDER BY f.case_id, d.set_version",
        (*window, until, until, until),
    )
    return _unique([_flag("assigned_not_supervised", *row) for row in rows])


def _flag(pattern: str, case_id: str, aggregate_id: str, version: int, set_version: int) -> Flag:
    """A flag proven by the fact's event and the event that set the missed deadline."""
    proof = [
        Proof(aggregate_id=aggregate_id, version=version),
        Proof(aggregate_id=case_id, version=set_version),
    ]
    return Flag(pattern=pattern, case_id=case_id, proof=proof)


def _unique(flags: list[Flag]) -> list[Flag]:
    """One flag per pattern and case: the first, with its proof."""
    seen: dict[tuple[str, UUID], Flag] = {}
    for flag in flags:
        seen.setdefault((flag.pattern, flag.case_id), flag)
    return list(seen.values())
