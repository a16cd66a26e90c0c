"""Unit statistics: hand-computed expectations, the source's own figures, roll-up, same period last year."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from uuid import UUID, uuid4

import pytest

from domain.ledger import Ledger
from domain.values import ClosureKind, DisputeSource, ReplyOutcome, Satisfaction
from projections import build_views
from projections.runner import Runner
from projections.statistics import Rate, change, rates, unit_stats
from tests.support import World


@pytest.fixture
def views(world: World) -> Iterator[Runner]:
    runner = Runner(world.ledger, build_views(world.ledger, ["unit_stats"]))
    yield runner
    runner.close()


def test_the_source_figures_give_the_rates_the_source_reports() -> None:
    """City joint meetings: 311 cases studied, 310 closed; counties: 3,077 studied, 2,854 closed."""
    city = rates({"studied": 311, "studied_closed": 310, "meetings": 113, "meetings_principal": 113})
    counties = rates({"studied": 3077, "studied_closed": 2854})
    assert city["meeting_closure"].percent == "99.7%"
    assert city["principal_leader_share"].percent == "100.0%"
    assert counties["meeting_closure"].percent == "92.8%"


def test_a_fall_in_leapfrog_petitions_is_shown_as_the_source_shows_it() -> None:
    """全县到市以上越级访下降65.7%: the source gives the change only; 35 against 102 gives it."""
    assert change(35, 102).percent == "-65.7%"
    assert change(204, 102).percent == "100.0%"
    assert change(3, 0).percent is None


def test_a_rate_without_a_denominator_is_unknown_not_zero() -> None:
    assert Rate(numerator=0, denominator=0).value is None
    assert Rate(numerator=0, denominator=0).percent is None


@pytest.mark.parametrize(
    ("numerator", "denominator", "shown"),
    [(1, 16, "6.3%"), (5, 16, "31.3%"), (1, 3, "33.3%"), (2, 3, "66.7%"), (0, 7, "0.0%"), (7, 7, "100.0%")],
)
def test_a_percentage_is_rounded_half_up_as_reports_are(numerator: int, denominator: int, shown: str) -> None:
    assert Rate(numerator=numerator, denominator=denominator).percent == shown


def test_a_months_cases_add_up_to_hand_computed_rates_rolled_up_to_the_city(
    world: World, views: Runner
) -> None:
    month = world.today().strftime("%Y-%m")
    on_time = world.replied()
    world.do(world.county_clerk, "rate_satisfaction", case_id=on_time, rating=Satisfaction.SATISFIED)
    world.do(world.township_clerk, "close_case", case_id=on_time, closure=ClosureKind.SUBSTANTIVE)
    world.do(world.township_clerk, "end_petition", case_id=on_time)
    world.replied(outcome=ReplyOutcome.EXPLAIN)  # replied, never rated
    world.do(world.township_clerk, "decline_case", case_id=world.register(), reason="outside_scope")
    world.register(actor=world.outsider)  # another township of the same county
    views.catch_up()
    for unit, registered in ((world.township, 3), (world.county, 4), (world.city, 4)):
        period = unit_stats(views.connection, unit, month, month, world.clock.now()).period
        assert period.counts["registered"] == registered
    township = unit_stats(views.connection, world.township, month, month, world.clock.now()).period
    assert township.counts["notices"] == 3
    assert township.rates["case_closure"].percent == "50.0%"  # 1 closed of 2 accepted
    assert township.rates["resolution"].numerator == 1
    assert township.rates["rating_participation"].percent == "50.0%"  # 1 rated of 2 replies
    assert township.rates["satisfaction"].value == 1.0
    assert (
        unit_stats(views.connection, world.henan_county, month, month, world.clock.now()).period.counts == {}
    )


def deadline_rates(world: World, views: Runner, first: date, days: int) -> tuple[Rate, Rate]:
    """The township's timely-acceptance and on-time-closure rates over the months from `first`
    to `days` after it (deadlines count in the month they fall due), as of the clock's now."""
    views.catch_up()
    months = (first.strftime("%Y-%m"), (first + timedelta(days=days)).strftime("%Y-%m"))
    period = unit_stats(views.connection, world.township, *months, world.clock.now()).period
    return period.rates["timely_acceptance"], period.rates["on_time_closure"]


def test_the_deadline_rates_divide_by_what_fell_due_not_by_what_was_done(world: World, views: Runner) -> None:
    first = world.today()
    world.replied()  # notice and reply in time
    world.accepted()  # notice in time; never replied
    world.register()  # never a notice
    acceptance, closure = deadline_rates(world, views, first, 200)
    assert (acceptance.numerator, acceptance.denominator) == (2, 2)  # the third is not due yet
    assert (closure.numerator, closure.denominator) == (1, 1)
    world.advance(days=200)  # every deadline has passed
    acceptance, closure = deadline_rates(world, views, first, 200)
    assert (acceptance.numerator, acceptance.denominator) == (2, 3)  # a unit that does nothing scores less
    assert (closure.numerator, closure.denominator) == (1, 2)
    assert acceptance.percent == "66.7%"


def test_a_forwarded_case_owes_its_notice_where_it_went_and_an_extension_is_one_deadline(
    world: World, views: Runner
) -> None:
    first = world.today()
    forwarded = world.register()
    world.do(world.township_clerk, "forward_case", case_id=forwarded, to_unit_id=world.county_bureau)
    extended = world.accepted()
    world.do(world.township_head, "extend_deadline", case_id=extended, days=30)
    world.advance(days=70)
    world.do(world.township_clerk, "issue_reply", case_id=extended, outcome=ReplyOutcome.SUPPORT)
    world.advance(days=200)
    acceptance, closure = deadline_rates(world, views, first, 270)
    assert (acceptance.numerator, acceptance.denominator) == (1, 1)  # the forwarded one is the bureau's
    assert (closure.numerator, closure.denominator) == (1, 1)  # replied within the extended limit


def test_a_reopened_case_closed_again_counts_as_one_closed_case(world: World, views: Runner) -> None:
    month = world.today().strftime("%Y-%m")
    case_id = world.replied()
    world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    world.do(world.cadres["reexaminer"], "reopen_case", case_id=case_id)
    world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
    world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    views.catch_up()
    period = unit_stats(views.connection, world.township, month, month, world.clock.now()).period
    assert (period.counts["replies"], period.counts["closed"]) == (2, 1)
    assert period.rates["case_closure"].percent == "100.0%"  # was 200.0%


def test_a_closure_counts_in_the_month_its_case_was_accepted(world: World, views: Runner) -> None:
    accepted_in = world.today().strftime("%Y-%m")
    case_id = world.replied()
    world.advance(days=62)
    closed_in = world.today().strftime("%Y-%m")
    world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    views.catch_up()
    now = world.clock.now()
    assert (
        unit_stats(views.connection, world.township, accepted_in, accepted_in, now).period.counts["closed"]
        == 1
    )
    assert (
        "closed" not in unit_stats(views.connection, world.township, closed_in, closed_in, now).period.counts
    )


def test_no_rate_of_any_unit_in_any_month_of_the_demo_exceeds_its_whole(demo: Ledger) -> None:
    runner = Runner(demo, build_views(demo, ["unit_stats"]))
    runner.catch_up()
    units = [UUID(unit) for (unit,) in runner.connection.execute("SELECT unit_id FROM unit_paths")]
    months = sorted(month for (month,) in runner.connection.execute("SELECT DISTINCT month FROM unit_counts"))
    now = demo.clock.now()
    checked = 0
    for unit in units:
        stats = unit_stats(runner.connection, unit, months[0], months[-1], now)
        for counts in [*stats.months.values(), stats.period.counts]:
            for name, rate in rates(counts).items():
                assert rate.numerator <= rate.denominator, (unit, name, rate, counts)
                checked += rate.denominator > 0
    runner.close()
    assert checked > 100


def test_leapfrogs_are_compared_with_the_same_months_a_year_before(world: World, views: Runner) -> None:
    case_id = world.accepted()
    world.do(world.city_clerk, "record_leapfrog", case_id=case_id, level="national")
    last_year = world.today().strftime("%Y-%m")
    world.advance(days=366)
    world.do(world.city_clerk, "record_leapfrog", case_id=case_id, level="provincial")
    world.do(world.city_clerk, "record_leapfrog", case_id=case_id, level="national")
    views.catch_up()
    month = world.today().strftime("%Y-%m")
    stats = unit_stats(views.connection, world.county, month, month, world.clock.now())
    assert stats.period.counts["leapfrogs"] == 2
    assert stats.last_year.first_month == last_year
    assert stats.last_year.counts["leapfrogs"] == 1
    assert stats.leapfrog_change == 1.0  # two against one: up 100%
    assert stats.leapfrog_change_percent == "100.0%"


def test_meetings_count_studied_and_closed_cases_and_who_chaired(world: World, views: Runner) -> None:
    month = world.today().strftime("%Y-%m")
    meeting = world.do(
        world.county_clerk, "convene_meeting", unit_id=world.county, chair_id=world.county_head
    ).aggregate_id
    studied = []
    for _ in range(3):
        case_id = world.accepted()
        world.do(
            world.county_clerk,
            "study_case",
            meeting_id=meeting,
            case_id=case_id,
            owning_leader_id=world.county_leader,
            responsible_cadre_id=world.township_clerk,
            due=world.today() + timedelta(days=30),
        )
        studied.append(case_id)
    for case_id in studied[:2]:
        world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
        world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    world.do(world.township_clerk, "end_petition", case_id=studied[0])
    views.catch_up()
    period = unit_stats(views.connection, world.city, month, month, world.clock.now()).period
    assert period.counts["meetings"] == period.counts["meetings_principal"] == 1
    assert period.rates["meeting_closure"].percent == "66.7%"
    assert period.rates["leader_owned_resolution"].percent == "33.3%"  # 1 of 3 owned cases ended


def test_repeat_petitions_and_disputes_resolved_locally_add_up_to_hand_computed_rates(
    world: World, views: Runner
) -> None:
    month = world.today().strftime("%Y-%m")
    petitioner = uuid4()
    first = world.register(petitioner_id=petitioner)
    world.register(petitioner_id=petitioner, repeat_of=first)
    world.register()
    disputes = [
        world.do(world.township_clerk, "record_dispute", source=DisputeSource.SCREENING, category="邻里纠纷")
        for _ in range(4)
    ]
    for dispute in disputes[:3]:
        world.do(world.township_clerk, "resolve_dispute", dispute_id=dispute.aggregate_id)
    views.catch_up()
    period = unit_stats(views.connection, world.county, month, month, world.clock.now()).period
    assert period.rates["repeat_petitions"].percent == "33.3%"  # 1 repeat of 3 registered
    assert period.rates["locally_resolved"].percent == "75.0%"  # 3 of 4 disputes


def test_a_village_case_counts_in_its_village_and_every_unit_above_it(world: World, views: Runner) -> None:
    month = world.today().strftime("%Y-%m")
    world.register(actor=world.village_head)
    world.register()
    views.catch_up()
    for unit, registered in ((world.village, 1), (world.township, 2), (world.county, 2), (world.city, 2)):
        period = unit_stats(views.connection, unit, month, month, world.clock.now()).period
        assert period.counts["registered"] == registered, unit
