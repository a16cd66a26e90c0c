"""A large ledger, fast: cases driven through the aggregates' own commands, saved in big batches.

The benchmarks need ledgers of 100,000 to 1,000,000 events. Going through one command
per transaction would take the better part of an hour, so this builds the registry
with ordinary commands, then drives each case through `Case`'s public methods (same
validation, same events) with hand-made stamps, and saves hundreds of cases per
transaction. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import UUID

from domain.case import Appointee, Case, Intake
from domain.clock import ManualClock
from domain.events import Stamp
from domain.ids import derived_id
from domain.ledger import CommandContext, Ledger
from domain.rules.book import RuleBook
from domain.values import (
    Channel,
    ClosureKind,
    ReplyOutcome,
    ReviewLevel,
    ReviewOutcome,
    Satisfaction,
    UnitKind,
    UnitLevel,
)

START = datetime(2023, 1, 2, 1, tzinfo=UTC)
CATEGORIES = ["land_expropriation", "wage_arrears", "housing_demolition", "social_security", "environment"]


class World:
    """A city with `counties` counties of `towns` townships, a clerk and a leader in each township.

    The default is the shape of a prefecture-level city such as Zhoukou: ten counties of
    twenty townships (about 400 cadres carrying the cases).
    """

    def __init__(self, ledger: Ledger, clock: ManualClock, counties: int = 10, towns: int = 20) -> None:
        self.ledger = ledger
        self.admin = derived_id("bench", "admin")
        ctx = CommandContext(actor_id=self.admin, narrative="benchmark set-up")
        self.city = ledger.establish(
            ctx,
            root_unit_name="基准市",
            root_level=UnitLevel.CITY,
            jurisdiction="CN",
            administrator_name="管理员",
            administrator_position="管理员",
        ).aggregate_id
        self.towns: list[tuple[UUID, UUID, UUID, UUID]] = []  # (town, clerk, leader, county leader)
        for c in range(counties):
            county = ledger.register_unit(
                ctx, name=f"县{c}", level=UnitLevel.COUNTY, kind=UnitKind.GOVERNMENT, parent_id=self.city
            ).aggregate_id
            county_leader = ledger.register_cadre(
                ctx, name=f"县长{c}", unit_id=county, position="县长", is_leader=True
            ).aggregate_id
            for t in range(towns):
                town = ledger.register_unit(
                    ctx,
                    name=f"镇{c}-{t}",
                    level=UnitLevel.TOWNSHIP,
                    kind=UnitKind.GOVERNMENT,
                    parent_id=county,
                ).aggregate_id
                clerk = ledger.register_cadre(ctx, name=f"专干{c}-{t}", unit_id=town, position="信访专干")
                leader = ledger.register_cadre(
                    ctx, name=f"镇长{c}-{t}", unit_id=town, position="镇长", is_leader=True
                )
                self.towns.append((town, clerk.aggregate_id, leader.aggregate_id, county_leader))
        book: object = ledger.repository.get(RuleBook.ID)
        assert isinstance(book, RuleBook)
        self.deadlines = book.deadlines_for("CN", START)


def stamp(actor: UUID, unit: UUID, at: datetime, number: int) -> Stamp:
    return Stamp(
        actor_id=actor,
        actor_unit_id=unit,
        occurred_at=at,
        recorded_at=at,
        command_id=f"bench-{number}",
        correlation_id=f"bench-{number}",
        narrative="基准测试记录",
    )


def case_lifecycle(world: World, rng: random.Random, number: int, registered: datetime) -> Case:
    """One case through a typical lifecycle (about 14 events), some with reviews and reopenings."""
    town, clerk, leader, county_leader = world.towns[rng.randrange(len(world.towns))]
    deadlines = world.deadlines
    at = registered
    counter = iter(range(number * 100, number * 100 + 100))

    def by(actor: UUID = clerk, unit: UUID = town, hours: float = 20.0) -> Stamp:
        nonlocal at
        at += timedelta(hours=hours * (0.5 + rng.random()))
        return stamp(actor, unit, at, next(counter))

    intake = Intake(channel=rng.choice(list(Channel)), category=rng.choice(CATEGORIES))
    case = Case.register(
        stamp(clerk, town, at, next(counter)),
        derived_id("bench", "case", number),
        deadlines,
        intake,
        derived_id("bench", "petitioner", number % 50_000),
    )
    case.accept(by(), deadlines, earlier_case_final=False)
    case.assign_handler(by(), Appointee(clerk, town, frozenset({town})))
    case.appoint_owning_leader(by(), Appointee(leader, town, frozenset({town}), is_leader=True))
    for _ in range(rng.randint(2, 5)):
        case.record_action(by(hours=60), rng.choice(["visit", "talk", "coordination", "mediation"]))
    case.issue_reply(by(hours=100), rng.choice(list(ReplyOutcome)), deadlines)
    satisfied = rng.random() < 0.8
    case.rate_satisfaction(by(), Satisfaction.SATISFIED if satisfied else Satisfaction.UNSATISFIED)
    if not satisfied and rng.random() < 0.5:
        case.request_review(by(), ReviewLevel.FIRST, deadlines)
        case.decide_review(by(county_leader, town), ReviewLevel.FIRST, ReviewOutcome.UPHELD, town, deadlines)
    case.close(by(), ClosureKind.SUBSTANTIVE if satisfied else ClosureKind.PROCEDURAL)
    if satisfied:
        case.end_petition(by())
    return case


def build(database_url: str, events: int, seed: int = 1, batch: int = 300) -> Ledger:
    """A ledger of at least `events` events; returns it open."""
    clock = ManualClock(START)
    ledger = Ledger(database_url, clock=clock)
    world = World(ledger, clock)
    rng = random.Random(seed)
    number = 0
    registered = START + timedelta(days=1)
    while (ledger.recorder.max_notification_id() or 0) < events:
        cases = []
        for _ in range(batch):
            registered += timedelta(minutes=rng.randrange(1, 20))
            cases.append(case_lifecycle(world, rng, number, registered))
            number += 1
        ledger.save(*cases)
    ledger.clock = ManualClock(max(datetime.now(UTC), registered + timedelta(days=400)))
    return ledger
