"""The demo's registry set-up, grassroots disputes and discipline inquiries."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from domain.case import Case
from domain.demo.cases import CaseScript, handle_to_end, intake_for
from domain.demo.meetings import MeetingPlan
from domain.demo.schedule import LOCAL, Step, Timeline
from domain.demo.world import Org
from domain.ids import derived_id
from domain.ledger import Ledger
from domain.values import DisputeSource, EventRef, MediationResult, Obligation, SanctionKind, UnitLevel

ADMIN = "admin"


def plan_registry(timeline: Timeline, org: Org, first_day: date) -> None:
    """Register every unit and cadre on the first day, and the postings that change later."""
    moment = datetime.combine(first_day, time(9, 30), LOCAL)
    for unit in org.units[1:]:
        timeline.add(
            Step(
                moment,
                ADMIN,
                "register_unit",
                f"登记单位：{unit.name}",
                {
                    "unit_id": org.unit_id(unit.key),
                    "name": unit.name,
                    "level": unit.level,
                    "kind": unit.kind,
                    "parent_id": org.unit_id(unit.parent or ""),
                    "jurisdiction": unit.jurisdiction,
                },
            )
        )
    hired_later = {move.cadre: move for move in org.moves if move.new}
    for cadre in org.cadres:
        if cadre.key == ADMIN:
            continue
        hire = hired_later.get(cadre.key)
        when = datetime.combine(hire.on, time(8, 30), LOCAL) if hire else moment + timedelta(minutes=30)
        timeline.add(
            Step(
                when,
                ADMIN,
                "register_cadre",
                f"登记干部：{org.name_of(cadre.key)}，{cadre.position}",
                {
                    "cadre_id": org.cadre_id(cadre.key),
                    "name": org.name_of(cadre.key),
                    "unit_id": org.unit_id(cadre.unit),
                    "position": cadre.position,
                    "is_leader": cadre.is_leader,
                    "is_principal": cadre.is_principal,
                    "roles": cadre.roles,
                },
            )
        )
    for move in org.moves:
        if move.new:
            continue
        timeline.add(
            Step(
                datetime.combine(move.on, time(8, 0), LOCAL),
                ADMIN,
                "transfer_cadre",
                f"干部任职调整：{org.name_of(move.cadre)}任{move.position}",
                {
                    "cadre_id": org.cadre_id(move.cadre),
                    "unit_id": org.unit_id(move.unit),
                    "position": move.position,
                    "is_leader": move.duty in ("head", "leader", "deputy", "deputy2"),
                    "is_principal": move.duty == "head",
                },
            )
        )


def plan_disputes(
    timeline: Timeline, org: Org, meetings: MeetingPlan, count: int, first: date, last: date
) -> int:
    """Disputes screened at villages and townships; most resolved locally, a few escalated."""
    rng = random.Random(f"{timeline.seed}/disputes")
    towns = [u.key for u in org.units if u.level is UnitLevel.TOWNSHIP]
    span = (last - first).days
    escalated = 0
    for number in range(count):
        town = rng.choice(towns)
        unit = rng.choice([town, *org.villages(town)])
        moment = timeline.moment(first + timedelta(days=rng.randrange(span)), rng)
        recorder = org.who(unit, "clerk" if unit == town else "head", moment.date())
        dispute_id = derived_id("demo", timeline.seed, "dispute", number)
        source = rng.choice(list(DisputeSource))
        category = rng.choice(["neighbourhood", "rural_land_contract", "wage_arrears", "village_affairs"])
        timeline.add(
            Step(
                moment,
                recorder,
                "record_dispute",
                "排查发现矛盾纠纷，登记入《责任信访工作手册》",
                {
                    "dispute_id": dispute_id,
                    "source": source,
                    "category": category,
                    "parties": rng.randint(2, 4),
                },
            )
        )
        for _ in range(rng.randint(1, 2)):
            moment = timeline.later(moment, rng.uniform(2, 9), rng)
            result = rng.choice([MediationResult.AGREED, MediationResult.PARTIAL])
            timeline.add(
                Step(
                    moment,
                    recorder,
                    "mediate_dispute",
                    "组织双方当面调解",
                    {"dispute_id": dispute_id, "result": result},
                )
            )
        draw = rng.random()
        moment = timeline.later(moment, rng.uniform(1, 6), rng)
        if draw < 0.955:
            timeline.add(
                Step(
                    moment,
                    recorder,
                    "resolve_dispute",
                    "双方达成协议，矛盾就地化解",
                    {"dispute_id": dispute_id},
                )
            )
        elif draw < 0.985:
            escalated += 1
            clerk = org.who(town, "clerk", moment.date())
            case_id = derived_id("demo", timeline.seed, "escalated-case", number)
            county = org.county_of(town)
            script = CaseScript(timeline, org, meetings, rng, case_id, county, town, moment, "escalated")
            timeline.add(
                Step(
                    moment,
                    clerk,
                    "escalate_dispute",
                    "调解未果，转为信访事项登记办理",
                    {
                        "dispute_id": dispute_id,
                        "case_id": case_id,
                        "intake": intake_for(script),
                        "petitioner_id": derived_id("demo", timeline.seed, "petitioner", case_id),
                    },
                )
            )
            handle_to_end(script)
    return escalated


def plan_inquiries(timeline: Timeline, org: Org, late: list[UUID], ignored: list[UUID]) -> int:
    """Discipline inspectors trace responsibility for long-delayed and neglected cases (责任倒查)."""
    plans = [
        (
            "city_inspector",
            date(2026, 9, 14),
            late[:3],
            Obligation.MISSED_DEADLINE,
            SanctionKind.ADMONISHMENT,
        ),
        (
            "city_inspector_2",
            date(2026, 9, 21),
            ignored[:2],
            Obligation.RECEIVED_NOT_HANDLED,
            SanctionKind.CRITICISM,
        ),
        ("city_inspector", date(2026, 10, 12), late[3:5], Obligation.DELAY, SanctionKind.NOTICE),
    ]
    opened = 0
    for number, (inspector, day, cases, obligation, sanction) in enumerate(plans):
        if not cases:
            continue
        opened += 1
        inquiry_id = derived_id("demo", timeline.seed, "inquiry", number)
        start = datetime.combine(day, time(9, 0), LOCAL)
        timeline.add(
            Step(
                start,
                inspector,
                "open_inquiry",
                "对久拖不决信访事项开展责任倒查",
                {"inquiry_id": inquiry_id, "case_ids": frozenset(cases)},
            )
        )
        for offset, case_id in enumerate(cases):
            timeline.add(
                Step(
                    start + timedelta(days=2, hours=offset),
                    inspector,
                    "record_finding",
                    "经倒查，责任人未按规定时限履行职责，有记录为证",
                    _finding(inquiry_id, case_id, obligation),
                )
            )
            timeline.add(
                Step(
                    start + timedelta(days=7, hours=offset),
                    inspector,
                    "record_sanction",
                    "依规依纪追责问责",
                    {"inquiry_id": inquiry_id, "finding_no": offset + 1, "kind": sanction},
                )
            )
        timeline.add(
            Step(
                start + timedelta(days=9),
                inspector,
                "close_inquiry",
                "倒查结束，形成督查通报",
                {"inquiry_id": inquiry_id},
            )
        )
    return opened


def _finding(inquiry_id: UUID, case_id: UUID, obligation: Obligation) -> Any:
    """Arguments computed when the step runs: the cadre responsible and the events that prove it."""

    def arguments(ledger: Ledger) -> Mapping[str, Any]:
        case: Case = ledger.repository.get(case_id)
        events = list(ledger.events.get(case_id))
        if obligation is Obligation.RECEIVED_NOT_HANDLED:
            cadre = case.first_receiver_id
            proof = [e for e in events if type(e).__name__ == "Registered"]
        else:
            cadre = case.handler_id or case.first_receiver_id
            proof = [e for e in events if type(e).__name__ in ("Accepted", "ReplyIssued")]
        return {
            "inquiry_id": inquiry_id,
            "cadre_id": cadre,
            "case_id": case_id,
            "obligation": obligation,
            "proof": tuple(EventRef(aggregate_id=case_id, version=e.originator_version) for e in proof),
        }

    return arguments
