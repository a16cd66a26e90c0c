"""A deterministic demo ledger shaped on the source: Zhoukou city, two counties, 2025-2026.

The same seed always gives the same events, record times included: the demo runs on a
simulated clock, so its record times are simulated too (a real ledger records with the
system clock). Cases registered near the end are still in progress when it stops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from uuid import UUID

from domain.clock import ManualClock
from domain.demo.activity import plan_disputes, plan_inquiries, plan_registry
from domain.demo.cases import plan_case, registration_days
from domain.demo.meetings import MeetingPlan
from domain.demo.schedule import LOCAL, START, Step, Timeline
from domain.demo.world import build_org
from domain.ledger import Ledger
from domain.values import UnitLevel

FOUNDED = date(2025, 1, 2)
CLOCK_START = datetime.combine(FOUNDED, time(8, 0), LOCAL).astimezone(UTC)


@dataclass
class DemoReport:
    """What the demo planned and applied."""

    seed: int
    commands: int
    cases: list[UUID] = field(default_factory=list)
    paths: Counter[str] = field(default_factory=Counter)
    meetings: int = 0
    disputes: int = 0
    escalated: int = 0
    inquiries: int = 0
    cadres: int = 0
    units: int = 0


def demo_clock() -> ManualClock:
    """The simulated clock the demo runs on, starting the morning the ledger was founded."""
    return ManualClock(CLOCK_START)


def load_demo(
    ledger: Ledger, clock: ManualClock, seed: int = 7, cases: int = 330, disputes: int = 270
) -> DemoReport:
    """Plan the demo's timeline and apply it, in time order, through the Ledger's commands."""
    org = build_org(seed)
    timeline = Timeline(seed)
    city = org.unit("city")
    timeline.add(
        Step(
            datetime.combine(FOUNDED, time(9, 0), LOCAL),
            "admin",
            "establish",
            "建立周口市信访责任台账",
            {
                "root_unit_id": org.unit_id("city"),
                "root_unit_name": city.name,
                "root_level": UnitLevel.CITY,
                "jurisdiction": city.jurisdiction,
                "administrator_name": org.name_of("admin"),
                "administrator_position": "系统管理员",
            },
        )
    )
    plan_registry(timeline, org, FOUNDED)
    meetings = MeetingPlan(timeline, org)
    report = DemoReport(seed=seed, commands=0, cadres=len(org.cadres), units=len(org.units))
    finals: list[UUID] = []
    by_path: dict[str, list[UUID]] = {}
    last_day = date(2026, 10, 23)
    for number, moment in enumerate(registration_days(timeline, cases, START, last_day)):
        case_id, path = plan_case(timeline, org, meetings, number, moment, finals)
        report.cases.append(case_id)
        report.paths[path] += 1
        by_path.setdefault(path, []).append(case_id)
    report.disputes = disputes
    report.escalated = plan_disputes(timeline, org, meetings, disputes, START, last_day)
    report.meetings = meetings.emit()
    report.inquiries = plan_inquiries(
        timeline, org, by_path.get("late_reply", []), by_path.get("ignored", [])
    )
    report.commands = timeline.run(ledger, clock, org)
    return report
