"""Adversarial checks of the read side's time travel: cases as of an instant, who held them, windows.

The rule every question obeys: its answer equals what a from-scratch replay of the log up to
the instant gives (`tests/projections/up_to.py` replays only what had happened before it).
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import orjson
import pytest

from domain.errors import InvalidTime
from domain.values import BureauLevel, ClosureKind, ReplyOutcome
from projections.accountability import CadreAccountability, cadre_accountability
from projections.queries import CaseFilter, case_as_of, list_cases, responsibility_at
from projections.runner import Runner
from projections.store import ViewStore
from projections.views.cadre_accountability import CadreAccountabilityView
from tests.projections.replay import caught_up
from tests.projections.up_to import UpTo
from tests.support import BEIJING, World

EVER = datetime(2020, 1, 1, tzinfo=UTC)


def replayed(
    world: World, tmp_path: Path, cadre: UUID, start: datetime, end: datetime
) -> CadreAccountability:
    """The cadre's window, answered by views built only from what had happened before `end`."""
    past = UpTo(world.ledger, end)
    replay = Runner(
        past,  # type: ignore[arg-type]
        [CadreAccountabilityView(past)],
        store=ViewStore(f"sqlite:///{tmp_path}/replay-{uuid4().hex[:8]}.sqlite"),
    )
    try:
        replay.catch_up()
        return cadre_accountability(replay.connection, cadre, start, end)
    finally:
        replay.close()


# --- case_as_of and responsibility_at ----------------------------------------------------------


def test_a_case_as_of_an_instant_before_it_was_registered_is_none_on_both_axes(world: World) -> None:
    case_id = world.register()
    before = world.clock.now() - timedelta(microseconds=1)
    assert case_as_of(world.ledger, case_id, before, "recorded") is None
    assert case_as_of(world.ledger, case_id, before, "occurred") is None
    assert responsibility_at(world.ledger, case_id, before) is None


def test_a_case_as_of_the_instant_of_its_acceptance_is_accepted_and_a_microsecond_before_is_not(
    world: World,
) -> None:
    case_id = world.accepted()
    accepted_at = world.clock.now()
    for axis in ("recorded", "occurred"):
        at = case_as_of(world.ledger, case_id, accepted_at, axis)  # type: ignore[arg-type]
        just_before = case_as_of(world.ledger, case_id, accepted_at - timedelta(microseconds=1), axis)  # type: ignore[arg-type]
        assert at is not None
        assert at.status.value == "accepted"
        assert just_before is not None
        assert just_before.status.value == "registered"


def test_a_late_record_is_absent_on_the_recorded_axis_and_present_on_the_occurred_axis(world: World) -> None:
    case_id = world.accepted()
    done_at = world.clock.now() + timedelta(hours=1)
    world.advance(days=5)
    world.do(
        world.township_clerk,
        "record_action",
        ctx_options={"occurred_at": done_at},
        case_id=case_id,
        kind="visit",
    )
    between = done_at + timedelta(days=1)
    recorded = case_as_of(world.ledger, case_id, between, "recorded")
    occurred = case_as_of(world.ledger, case_id, between, "occurred")
    assert recorded is not None
    assert recorded.action_count == 0
    assert occurred is not None
    assert occurred.action_count == 1


@pytest.mark.parametrize(
    ("command", "argument"),
    [
        ("assign_handler", "handler_id"),
        ("assign_responsibility", "cadre_id"),
        ("appoint_owning_leader", "leader_id"),
    ],
)
def test_a_role_said_to_have_been_given_before_the_case_was_registered_is_refused(
    world: World, command: str, argument: str
) -> None:
    case_id = world.register()
    registered_at = world.clock.now()
    world.advance(hours=1)
    world.refuse(
        InvalidTime,
        world.township_head,
        command,
        ctx_options={"occurred_at": registered_at - timedelta(minutes=30)},
        case_id=case_id,
        **{argument: world.township_head},
    )
    assert responsibility_at(world.ledger, case_id, registered_at - timedelta(minutes=10)) is None


def test_responsibility_follows_a_case_forwarded_to_another_unit_and_clears_its_handler(world: World) -> None:
    case_id = world.register(actor=world.county_clerk)
    world.advance(hours=1)
    world.do(world.county_clerk, "assign_handler", case_id=case_id, handler_id=world.county_clerk)
    world.advance(hours=1)
    world.do(world.county_clerk, "forward_case", case_id=case_id, to_unit_id=world.township)
    forwarded_at = world.clock.now()
    before = responsibility_at(world.ledger, case_id, forwarded_at - timedelta(microseconds=1))
    after = responsibility_at(world.ledger, case_id, forwarded_at)
    assert before is not None
    assert after is not None
    assert (before.unit_id, before.handler_id) == (world.county_bureau, world.county_clerk)
    assert (after.unit_id, after.handler_id) == (world.township, None)


def test_responsibility_names_each_owning_leader_only_while_they_owned_the_case(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_clerk, "appoint_owning_leader", case_id=case_id, leader_id=world.township_leader)
    first = world.clock.now()
    world.advance(days=3)
    world.do(world.township_clerk, "appoint_owning_leader", case_id=case_id, leader_id=world.township_head)
    second = world.clock.now()
    leaders = [
        responsibility_at(world.ledger, case_id, moment).owning_leader_id  # type: ignore[union-attr]
        for moment in (first - timedelta(seconds=1), first, second - timedelta(seconds=1), second)
    ]
    assert leaders == [None, world.township_leader, world.township_leader, world.township_head]


def test_an_action_whose_time_was_corrected_earlier_counts_as_of_the_corrected_time(world: World) -> None:
    case_id = world.accepted()
    world.advance(days=5)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")  # version 3
    really_done = world.clock.now() - timedelta(days=4)
    world.advance(hours=1)
    world.correct_record(case_id, 3, narrative="走访日期登记错误，更正", occurred_at=really_done.isoformat())
    as_known_today = case_as_of(world.ledger, case_id, really_done + timedelta(days=1), "occurred")
    assert as_known_today is not None
    assert as_known_today.action_count == 1


def test_a_corrected_category_applies_on_the_occurred_axis_from_registration_on(world: World) -> None:
    case_id = world.register()
    registered_at = world.clock.now()
    world.advance(days=2)
    world.correct_category(case_id)
    as_known_today = case_as_of(world.ledger, case_id, registered_at + timedelta(days=1), "occurred")
    as_recorded_then = case_as_of(world.ledger, case_id, registered_at + timedelta(days=1), "recorded")
    assert as_recorded_then is not None
    assert as_recorded_then.intake.category == "land_compensation"
    assert as_known_today is not None
    assert as_known_today.intake.category == "wage_arrears"


# --- list_cases --------------------------------------------------------------------------------


def test_paging_through_cases_registered_at_the_same_instant_visits_each_once(
    world: World, views: Runner
) -> None:
    same_instant = [world.register() for _ in range(7)]
    world.advance(minutes=1)
    later = world.register()
    connection = caught_up(views)
    for limit in (1, 2, 3, 7, 8):
        seen, cursor = [], None
        while True:
            page = list_cases(connection, CaseFilter(), world.today(), limit=limit, after=cursor)
            assert len(page.items) <= limit
            seen += [row.case_id for row in page.items]
            if page.next is None:
                break
            cursor = page.next
        assert seen[:7] == sorted(same_instant, key=str), limit
        assert seen == [*seen[:7], later], limit


def test_a_page_that_ends_exactly_at_the_last_case_gives_no_cursor(world: World, views: Runner) -> None:
    for _ in range(4):
        world.register()
    connection = caught_up(views)
    first = list_cases(connection, CaseFilter(), world.today(), limit=2)
    assert first.next is not None
    second = list_cases(connection, CaseFilter(), world.today(), limit=2, after=first.next)
    assert len(second.items) == 2
    assert second.next is None


def test_paging_a_filtered_list_keeps_the_filter_on_every_page(world: World, views: Runner) -> None:
    wanted = []
    for number in range(6):
        case_id = world.register()
        if number % 2 == 0:
            world.do(world.township_clerk, "accept_case", case_id=case_id)
            wanted.append(case_id)
    connection = caught_up(views)
    seen, cursor = [], None
    while True:
        page = list_cases(connection, CaseFilter(status="accepted"), world.today(), limit=1, after=cursor)
        seen += [row.case_id for row in page.items]
        if page.next is None:
            break
        cursor = page.next
    assert sorted(seen, key=str) == sorted(wanted, key=str)
    assert len(seen) == len(wanted)


def test_a_case_listed_under_a_unit_moves_with_a_forward(world: World, views: Runner) -> None:
    case_id = world.register(actor=world.county_clerk)
    world.do(world.county_clerk, "forward_case", case_id=case_id, to_unit_id=world.township)
    connection = caught_up(views)

    def ids(unit: UUID) -> list[UUID]:
        return [row.case_id for row in list_cases(connection, CaseFilter(unit_id=unit), world.today()).items]

    assert ids(world.township) == [case_id]
    assert ids(world.county_bureau) == []
    assert ids(world.county) == [case_id]


def forged_cursor(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")


def test_a_cursor_of_the_wrong_shape_is_refused_as_a_value_error(world: World, views: Runner) -> None:
    connection = caught_up(views)
    for payload in ([1, 2, 3], {"a": 1}, "x", 7, ["2026-03-02T01:00:00.000000Z", "not-an-id"]):
        with pytest.raises(ValueError, match="cursor"):
            list_cases(connection, CaseFilter(), world.today(), after=forged_cursor(payload))


def test_a_cursor_whose_case_id_is_a_number_is_refused_as_a_value_error(world: World, views: Runner) -> None:
    with pytest.raises(ValueError, match="cursor"):
        list_cases(caught_up(views), CaseFilter(), world.today(), after=forged_cursor(["2026-03-02", 5]))


# --- cadre_accountability: windows -------------------------------------------------------------


def test_an_empty_window_holds_nothing_and_counts_nothing(world: World, views: Runner) -> None:
    case_id = world.accepted()
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.handler)
    world.advance(days=2)
    instant = world.clock.now()
    account = cadre_accountability(caught_up(views), world.handler, instant, instant)
    assert (account.actions, account.deadlines_met, account.flags) == (0, 0, [])
    assert account.cases_held == {}


def test_a_role_is_held_in_a_window_only_if_it_overlaps_the_half_open_window(
    world: World, views: Runner
) -> None:
    case_id = world.accepted()
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.handler)
    started = world.clock.now()
    world.advance(days=2)
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.township_clerk)
    ended = world.clock.now()
    connection = caught_up(views)

    def held(start: datetime, end: datetime) -> dict[str, int]:
        return cadre_accountability(connection, world.handler, start, end).cases_held

    second = timedelta(seconds=1)
    assert held(started - 2 * second, started) == {}
    assert held(started - second, started + second) == {"handler": 1}
    assert held(ended - second, ended + second) == {"handler": 1}
    assert held(ended, ended + second) == {}


def test_counts_over_two_adjacent_windows_add_up_to_the_count_over_both(world: World, views: Runner) -> None:
    case_id = world.accepted()
    midnight = datetime(2026, 3, 4, tzinfo=UTC)
    moments = [
        midnight - timedelta(hours=30),
        midnight - timedelta(microseconds=1),
        midnight,
        midnight + timedelta(hours=5),
        midnight + timedelta(days=1),
        midnight + timedelta(days=2, hours=3),
    ]
    world.advance_to(date(2026, 3, 8))
    for moment in moments:
        world.do(
            world.township_clerk,
            "record_action",
            ctx_options={"occurred_at": moment},
            case_id=case_id,
            kind="visit",
        )
    connection = caught_up(views)

    def actions(start: datetime, end: datetime) -> int:
        return cadre_accountability(connection, world.township_clerk, start, end).actions

    first, last = moments[0] - timedelta(days=1), moments[-1] + timedelta(days=1)
    assert actions(first, last) == len(moments)
    for split in [*moments, midnight + timedelta(hours=12), midnight + timedelta(days=2)]:
        assert actions(first, split) + actions(split, last) == len(moments), split
        assert actions(split, split + timedelta(microseconds=1)) == (1 if split in moments else 0), split


def test_a_leapfrog_that_happened_before_the_reply_does_not_fail_that_reply(
    world: World, views: Runner, tmp_path: Path
) -> None:
    case_id = world.accepted()
    leapfrog_at = world.clock.now() + timedelta(hours=1)
    world.advance(days=3)
    world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
    replied_at = world.clock.now()
    world.advance(days=5)
    world.do(
        world.county_clerk,
        "record_leapfrog",
        narrative="补录：答复前信访人已到市信访局",
        ctx_options={"occurred_at": leapfrog_at},
        case_id=case_id,
        level=BureauLevel.CITY,
    )
    start, end = leapfrog_at - timedelta(days=1), replied_at  # the reply had not been issued by `end`
    live = cadre_accountability(caught_up(views), world.township_clerk, start, end)
    assert live == replayed(world, tmp_path, world.township_clerk, start, end)
    everything = cadre_accountability(views.connection, world.township_clerk, start, world.clock.now())
    assert everything.replies_failed == 0


def test_a_petition_forwarded_a_second_after_that_midnight_was_forwarded_late(
    world: World, views: Runner
) -> None:
    case_id = world.register(actor=world.township_head)
    due = world.case(case_id).acceptance_notice_due
    assert due is not None
    world.advance_to(due + timedelta(days=2))
    world.do(
        world.township_head,
        "forward_case",
        ctx_options={"occurred_at": datetime.combine(due + timedelta(days=1), time(0, 0, 1), BEIJING)},
        case_id=case_id,
        to_unit_id=world.other_township,
    )
    account = cadre_accountability(caught_up(views), world.township_head, EVER, world.clock.now())
    assert [(flag.pattern, flag.case_id) for flag in account.flags] == [("received_not_handled", case_id)]


def test_a_petition_forwarded_at_the_midnight_after_its_notice_deadline_was_forwarded_late(
    world: World, views: Runner
) -> None:
    case_id = world.register(actor=world.township_head)
    due = world.case(case_id).acceptance_notice_due
    assert due is not None
    midnight_after = datetime.combine(due + timedelta(days=1), time(0), BEIJING)
    world.advance_to(due + timedelta(days=2))
    world.do(
        world.township_head,
        "forward_case",
        ctx_options={"occurred_at": midnight_after},
        case_id=case_id,
        to_unit_id=world.other_township,
    )
    account = cadre_accountability(caught_up(views), world.township_head, EVER, world.clock.now())
    assert [(flag.pattern, flag.case_id) for flag in account.flags] == [("received_not_handled", case_id)]


def test_a_case_forwarded_before_its_unit_acted_is_passed_on_even_when_the_forward_was_recorded_later(
    world: World, views: Runner, tmp_path: Path
) -> None:
    case_id = world.register()
    forwarded_at = world.clock.now() + timedelta(hours=1)
    world.advance(hours=2)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
    world.advance(hours=2)
    world.do(
        world.township_clerk,
        "forward_case",
        narrative="补录：两小时前已转送宜路镇",
        ctx_options={"occurred_at": forwarded_at},
        case_id=case_id,
        to_unit_id=world.other_township,
    )
    end = forwarded_at + timedelta(minutes=30)  # after the forward, before the action
    live = cadre_accountability(caught_up(views), world.township_clerk, EVER, end)
    assert live == replayed(world, tmp_path, world.township_clerk, EVER, end)
    assert live.passed_on == 1


def test_a_receipt_whose_action_was_corrected_to_before_the_window_end_is_not_flagged(
    world: World, views: Runner
) -> None:
    case_id = world.register(actor=world.township_head)
    world.advance(days=25)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")  # version 2
    world.advance(hours=1)
    world.correct_record(
        case_id,
        2,
        narrative="走访实际在登记次日进行，更正日期",
        occurred_at=(world.clock.now() - timedelta(days=24)).isoformat(),
    )
    end = world.clock.now() - timedelta(days=4)  # the notice deadline has passed; the visit was long done
    account = cadre_accountability(caught_up(views), world.township_head, EVER, end)
    assert account.flags == []


def test_a_case_as_of_each_record_instant_equals_a_from_scratch_replay_to_that_version(world: World) -> None:
    case_id = world.replied()
    world.advance(days=1)
    world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    for event in world.events(case_id):
        then = case_as_of(world.ledger, case_id, event.timestamp, "recorded")
        assert then == world.ledger.repository.get(case_id, version=event.originator_version), event
