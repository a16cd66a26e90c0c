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
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict

from projections.columns import moment_text
from projections.store import ViewConnection

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
    connection: ViewConnection, cadre_id: UUID, start: datetime, end: datetime
) -> CadreAccountability:
    """Everything the views know of the cadre in `[start, end)`, flags judged as of `end`."""
    cadre, since, until = str(cadre_id), moment_text(start), moment_text(end)
    window = (cadre, since, until)
    counted = connection.execute(
        "SELECT kind, tag, COUNT(*) FROM cadre_facts "
        "WHERE cadre_id = ? AND at >= ? AND at < ? GROUP BY kind, tag",
        window,
    )
    kinds: Counter[str] = Counter()
    tags: Counter[tuple[str, str]] = Counter()
    for kind, tag, count in counted:
        kinds[kind] += int(count)
        if tag is not None:
            tags[(kind, tag)] += int(count)
    facts = connection.execute(
        "SELECT kind, aggregate_id, version, case_id, detail FROM cadre_facts "
        "WHERE cadre_id = ? AND at >= ? AND at < ? AND kind IN ('received', 'assigned', 'reply_failed') "
        "ORDER BY at, aggregate_id, version",
        window,
    )
    held = connection.execute(
        "SELECT role, COUNT(DISTINCT case_id) FROM cadre_roles "
        "WHERE cadre_id = ? AND ended_at > ? AND started_at < ? GROUP BY role",
        window,
    )
    met, missed, owned_flags = _deadlines(connection, cadre, since, until)
    flags = [
        *_received_not_handled(connection, facts, until),
        *(_failed_reply(row) for row in facts if row[0] == "reply_failed"),
        *owned_flags,
        *_assigned_not_supervised(connection, cadre, facts, until),
    ]
    return CadreAccountability(
        cadre_id=cadre_id,
        start=start,
        end=end,
        cases_received=kinds["received"],
        cases_held={role: int(count) for role, count in held},
        actions=kinds["action"],
        late_records=kinds["late_record"],
        passed_on=kinds["passed_on"],
        deadlines_met=met,
        deadlines_missed=missed,
        replies_issued=kinds["reply_issued"],
        replies_overturned=kinds["reply_overturned"],
        replies_failed=kinds["reply_failed"],
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


def _received_not_handled(connection: ViewConnection, facts: list[tuple[Any, ...]], until: str) -> list[Flag]:
    received = {row[3]: row for row in facts if row[0] == "received"}
    if not received:
        return []
    marks = ", ".join("?" * len(received))
    acted = {
        row[0]
        for row in connection.execute(
            "SELECT DISTINCT case_id FROM cadre_facts "
            f"WHERE kind = 'action' AND at < ? AND case_id IN ({marks})",
            (until, *received),
        )
    }
    overdue = connection.execute(
        "SELECT case_id, set_version FROM case_deadlines "
        f"WHERE kind = 'acceptance_notice' AND seq = 1 AND case_id IN ({marks}) AND due_end < ? "
        "AND (resolved_at IS NULL OR resolved_at >= ? OR on_time = 0) ORDER BY case_id",
        (*received, until, until),
    )
    flags = []
    for case_id, set_version in overdue:
        if case_id in acted:
            continue
        row = received[case_id]
        proof = [Proof(aggregate_id=row[1], version=row[2]), Proof(aggregate_id=case_id, version=set_version)]
        flags.append(Flag(pattern="received_not_handled", case_id=case_id, proof=proof))
    return _unique(flags)


def _failed_reply(row: tuple[Any, ...]) -> Flag:
    reply_version = orjson.loads(row[4])["reply_version"]
    proof = [Proof(aggregate_id=row[3], version=reply_version), Proof(aggregate_id=row[1], version=row[2])]
    return Flag(pattern="prescribed_not_cured", case_id=row[3], proof=proof)


def _assigned_not_supervised(
    connection: ViewConnection, cadre: str, facts: list[tuple[Any, ...]], until: str
) -> list[Flag]:
    assigned = {row[3]: row for row in facts if row[0] == "assigned"}
    if not assigned:
        return []
    marks = ", ".join("?" * len(assigned))
    supervised = {
        row[0]
        for row in connection.execute(
            "SELECT DISTINCT case_id FROM cadre_facts WHERE kind = 'supervision_issued' AND cadre_id = ? "
            f"AND at < ? AND case_id IN ({marks})",
            (cadre, until, *assigned),
        )
    }
    missed = connection.execute(
        "SELECT case_id, set_version FROM case_deadlines "
        f"WHERE kind = 'reply' AND case_id IN ({marks}) AND due_end < ? "
        "AND (resolved_at IS NULL OR resolved_at >= ? OR on_time = 0) ORDER BY case_id, set_version",
        (*assigned, until, until),
    )
    flags = []
    for case_id, set_version in missed:
        if case_id in supervised:
            continue
        row = assigned[case_id]
        proof = [Proof(aggregate_id=row[1], version=row[2]), Proof(aggregate_id=case_id, version=set_version)]
        flags.append(Flag(pattern="assigned_not_supervised", case_id=case_id, proof=proof))
    return _unique(flags)


def _unique(flags: list[Flag]) -> list[Flag]:
    """One flag per pattern and case: the first, with its proof."""
    seen: dict[tuple[str, UUID], Flag] = {}
    for flag in flags:
        seen.setdefault((flag.pattern, flag.case_id), flag)
    return list(seen.values())
