"""A cadre's accountability: counts, deadlines met and missed while holding a case, the four patterns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from domain.ledger import Ledger
from domain.values import ReplyOutcome, Satisfaction
from projections import build_views
from projections.accountability import CadreAccountability, cadre_accountability
from projections.runner import Runner
from projections.store import ViewStore
from projections.views.cadre_accountability import CadreAccountabilityView
from tests.projections.up_to import UpTo
from tests.support import World

EVER = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def views(world: World) -> Iterator[Runner]:
    runner = Runner(world.ledger, build_views(world.ledger, ["cadre_accountability"]))
    yield runner
    runner.close()


def of(world: World, views: Runner, cadre: UUID) -> CadreAccountability:
    views.catch_up()
    return cadre_accountability(views.connection, cadre, EVER, world.clock.now() + timedelta(seconds=1))


def patterns(account: CadreAccountability) -> list[tuple[str, UUID]]:
    return [(flag.pattern, flag.case_id) for flag in account.flags]


def test_a_leader_who_received_a_petition_nobody_handled_is_flagged_with_the_proof(
    world: World, views: Runner
) -> None:
    case_id = world.register(actor=world.township_head)
    world.advance(days=20)  # the acceptance notice (15 days) lapses; nobody did anything
    account = of(world, views, world.township_head)
    assert account.cases_received == 1
    assert patterns(account) == [("received_not_handled", case_id)]
    assert [p.version for p in account.flags[0].proof] == [1, 1]


def test_a_received_petition_that_someone_handled_is_not_flagged(world: World, views: Runner) -> None:
    case_id = world.register(actor=world.township_head)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
    world.advance(days=20)
    assert patterns(of(world, views, world.township_head)) == []


def test_a_reply_that_left_the_petitioner_unsatisfied_is_prescribing_without_curing(
    world: World, views: Runner
) -> None:
    case_id = world.replied(outcome=ReplyOutcome.NOT_SUPPORT)
    world.do(world.county_clerk, "rate_satisfaction", case_id=case_id, rating=Satisfaction.UNSATISFIED)
    account = of(world, views, world.township_clerk)
    assert account.replies_issued == 1
    assert account.replies_failed == 1
    assert account.ratings == {"unsatisfied": 1}
    assert patterns(account) == [("prescribed_not_cured", case_id)]
    assert [p.version for p in account.flags[0].proof] == [3, 4]  # the reply, then the rating


def test_a_reply_that_failed_twice_is_one_failed_reply_flagged_once_with_every_proof(
    world: World, views: Runner
) -> None:
    case_id = world.replied(outcome=ReplyOutcome.NOT_SUPPORT)
    world.do(world.county_clerk, "rate_satisfaction", case_id=case_id, rating=Satisfaction.UNSATISFIED)
    world.do(world.city_clerk, "record_leapfrog", case_id=case_id, level="national")
    account = of(world, views, world.township_clerk)
    assert account.replies_failed == 1
    assert patterns(account) == [("prescribed_not_cured", case_id)]
    assert [p.version for p in account.flags[0].proof] == [3, 4, 5]  # the reply, the rating, the leapfrog


def test_ratings_on_days_wholly_inside_a_long_window_are_counted_by_rating(
    world: World, views: Runner
) -> None:
    for rating in (Satisfaction.SATISFIED, Satisfaction.SATISFIED, Satisfaction.UNSATISFIED):
        case_id = world.replied()
        world.do(world.county_clerk, "rate_satisfaction", case_id=case_id, rating=rating)
        world.advance(days=1)
    world.advance(days=3)  # every rating now lies on a whole UTC day of the window, summed per day
    account = of(world, views, world.township_clerk)
    assert account.ratings == {"satisfied": 2, "unsatisfied": 1}


def test_an_owning_leader_whose_case_misses_its_deadline_is_flagged(world: World, views: Runner) -> None:
    case_id = world.accepted()
    world.do(world.township_clerk, "appoint_owning_leader", case_id=case_id, leader_id=world.township_leader)
    world.advance(days=70)  # the 60-day reply period passes unmet
    account = of(world, views, world.township_leader)
    assert account.cases_held == {"owning_leader": 1}
    assert account.deadlines_missed == 1
    assert ("owned_not_resolved", case_id) in patterns(account)


def test_deadlines_met_while_holding_the_case_count_for_the_holder(world: World, views: Runner) -> None:
    case_id = world.accepted()
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.handler)
    world.advance(days=5)
    world.do(world.handler, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
    account = of(world, views, world.handler)
    assert (account.deadlines_met, account.deadlines_missed) == (1, 0)
    assert account.cases_held == {"handler": 1}


def test_an_assigner_who_never_supervised_a_late_case_is_flagged_and_one_who_did_is_not(
    world: World, views: Runner
) -> None:
    neglected = world.register(actor=world.county_clerk)
    followed = world.register(actor=world.county_clerk)
    for case_id in (neglected, followed):
        world.do(world.county_clerk, "assign_case", case_id=case_id, to_unit_id=world.township)
        world.do(world.township_clerk, "accept_case", case_id=case_id)
    world.do(world.county_clerk, "issue_supervision", case_id=followed)
    world.advance(days=70)
    account = of(world, views, world.county_clerk)
    assert patterns(account) == [("assigned_not_supervised", neglected)]
    assert account.supervision_issued == 1


def test_a_late_record_and_a_case_passed_on_without_action_are_counted(world: World, views: Runner) -> None:
    case_id = world.register()
    world.advance(days=5)
    world.do(world.township_clerk, "forward_case", case_id=case_id, to_unit_id=world.other_township)
    other = world.accepted()
    world.advance(days=6)
    world.do(
        world.township_clerk,
        "record_action",
        ctx_options={"occurred_at": world.clock.now() - timedelta(days=5)},
        case_id=other,
        kind="visit",
    )
    account = of(world, views, world.township_clerk)
    assert account.passed_on == 1
    assert account.late_records == 1


def test_a_deadline_extended_after_a_window_is_judged_by_the_due_date_in_force_then(
    world: World, views: Runner
) -> None:
    case_id = world.accepted()
    world.do(world.township_clerk, "appoint_owning_leader", case_id=case_id, leader_id=world.township_leader)
    world.advance(days=50)
    world.do(world.township_head, "extend_deadline", case_id=case_id, days=30)
    views.catch_up()
    window_end = world.clock.now() + timedelta(days=11)  # past the first due date, before the extended one
    before_extension = cadre_accountability(views.connection, world.township_leader, EVER, window_end)
    assert before_extension.deadlines_missed == 0  # extended in time: the new due date governs
    assert patterns(before_extension) == []


# --- time travel on the demo -------------------------------------------------------------------


def test_a_window_of_the_live_view_equals_a_replay_of_only_what_happened_before_its_end(
    demo: Ledger, tmp_path: Path
) -> None:
    live = Runner(demo, build_views(demo, ["cadre_accountability"]))
    live.catch_up()
    cadres = [
        UUID(row[0])
        for row in live.connection.execute(
            "SELECT cadre_id FROM cadre_facts GROUP BY cadre_id ORDER BY COUNT(*) DESC, cadre_id LIMIT 8"
        )
    ]
    for number, end in enumerate((datetime(2025, 7, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))):
        start = end - timedelta(days=150)
        past = UpTo(demo, end)
        replay = Runner(
            past,  # type: ignore[arg-type]
            [CadreAccountabilityView(past)],
            store=ViewStore(f"sqlite:///{tmp_path}/replay-{number}.sqlite"),
        )
        replay.catch_up()
        for cadre in cadres:
            expected = cadre_accountability(replay.connection, cadre, start, end)
            assert cadre_accountability(live.connection, cadre, start, end) == expected, cadre
        replay.close()
    live.close()


def test_a_case_derived_again_after_a_correction_leaves_day_counts_equal_to_its_facts(
    world: World, views: Runner
) -> None:
    case_id = world.accepted()
    world.advance(days=2)
    action = world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
    views.catch_up()  # the action is written and counted on its day before the correction moves it
    world.advance(hours=1)
    world.correct_record(
        case_id,
        action.version,
        narrative="走访日期登记错误，更正",
        occurred_at=(world.clock.now() - timedelta(days=2)).isoformat(),
    )
    views.catch_up()
    connection = views.connection
    days = connection.execute("SELECT cadre_id, day, kind, tag, count FROM cadre_days ORDER BY 1, 2, 3, 4")
    recount = connection.execute(
        "SELECT cadre_id, substr(at, 1, 10), kind, COALESCE(tag, ''), COUNT(*) FROM cadre_facts "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
    assert days == recount
    actions = connection.execute("SELECT at FROM cadre_facts WHERE kind = 'action'")
    assert [at[:10] for (at,) in actions] == [(world.clock.now() - timedelta(days=2)).date().isoformat()]


@pytest.mark.parametrize(
    ("late_by", "threshold_hours", "counted"),
    [
        (timedelta(hours=30), 24, 1),
        (timedelta(hours=30), 72, 0),
        (timedelta(hours=72), 72, 0),  # late by more than the threshold, not by exactly it
        (timedelta(hours=72, seconds=1), 72, 1),
        (timedelta(hours=23), 24, 0),
    ],
)
def test_a_record_counts_as_filed_late_by_the_readers_threshold(
    world: World, views: Runner, late_by: timedelta, threshold_hours: int, counted: int
) -> None:
    case_id = world.accepted()
    world.advance(days=4)
    world.do(
        world.township_clerk,
        "record_action",
        ctx_options={"occurred_at": world.clock.now() - late_by},
        case_id=case_id,
        kind="visit",
    )
    views.catch_up()
    account = cadre_accountability(
        views.connection,
        world.township_clerk,
        EVER,
        world.clock.now() + timedelta(seconds=1),
        late_after=timedelta(hours=threshold_hours),
    )
    assert account.late_records == counted


@pytest.mark.parametrize("late_after", [timedelta(hours=23), timedelta(hours=72, minutes=30)])
def test_a_threshold_below_a_day_or_in_part_hours_is_refused(
    world: World, views: Runner, late_after: timedelta
) -> None:
    views.catch_up()
    with pytest.raises(ValueError, match="whole hours"):
        cadre_accountability(views.connection, world.township_clerk, EVER, world.clock.now(), late_after)
