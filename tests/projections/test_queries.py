"""The questions the API asks: a case, filtered and paged lists, breaches judged today, timelines."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.values import Campaign, Channel, ClosureKind, KeyArea, ReplyOutcome
from projections.queries import (
    CaseFilter,
    case_as_of,
    case_timeline,
    get_case,
    list_cases,
    responsibility_at,
)
from projections.runner import Runner
from tests.projections.replay import caught_up
from tests.support import INTAKE, World


def test_a_case_reads_back_as_the_ledger_recorded_it(world: World, views: Runner) -> None:
    case_id = world.accepted()
    row = get_case(caught_up(views), case_id, world.today())
    assert row is not None
    assert row.status == "accepted"
    assert row.unit_id == world.township
    assert row.first_receiver_id == world.township_clerk
    assert row.notice_on_time is True
    assert row.breached is False


def test_an_unknown_case_reads_back_as_none(world: World, views: Runner) -> None:
    assert get_case(caught_up(views), world.township, world.today()) is None


def test_a_reply_deadline_passing_makes_the_case_breached_without_any_new_event(
    world: World, views: Runner
) -> None:
    case_id = world.accepted()
    connection = caught_up(views)
    row = get_case(connection, case_id, world.today())
    assert row is not None
    assert row.reply_due is not None
    assert get_case(connection, case_id, row.reply_due).breached is False  # type: ignore[union-attr]
    assert get_case(connection, case_id, row.reply_due + timedelta(days=1)).breached is True  # type: ignore[union-attr]


def test_a_late_reply_stays_a_breach_after_the_case_is_replied(world: World, views: Runner) -> None:
    case_id = world.accepted()
    world.advance(days=70)
    world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
    row = get_case(caught_up(views), case_id, world.today())
    assert row is not None
    assert row.reply_on_time is False
    assert row.breached is True


def test_cases_are_listed_by_filters_and_unit_subtree(world: World, views: Runner) -> None:
    land = INTAKE.model_copy(
        update={"campaign": Campaign(key_area=KeyArea.LAND_EXPROPRIATION, key_group=True)}
    )
    at_township = world.register(intake=land)
    elsewhere = world.register(
        actor=world.outsider, intake=INTAKE.model_copy(update={"channel": Channel.PHONE})
    )
    connection = caught_up(views)
    today = world.today()

    def ids(**filters: object) -> set[object]:
        return {row.case_id for row in list_cases(connection, CaseFilter(**filters), today).items}

    assert ids(key_area="land_expropriation") == {at_township}
    assert ids(key_group=True) == {at_township}
    assert ids(unit_id=world.township) == {at_township}
    assert ids(unit_id=world.county) == {at_township, elsewhere}
    assert ids(unit_id=world.henan_county) == set()
    assert ids(status="registered") == {at_township, elsewhere}
    assert ids(breached=True) == set()


def test_listing_pages_with_a_cursor_visits_every_case_once_in_registration_order(
    world: World, views: Runner
) -> None:
    registered = []
    for _ in range(7):
        registered.append(world.register())
        world.advance(minutes=10)
    connection = caught_up(views)
    seen, cursor = [], None
    while True:
        page = list_cases(connection, CaseFilter(), world.today(), limit=3, after=cursor)
        seen += [row.case_id for row in page.items]
        if page.next is None:
            break
        cursor = page.next
    assert seen == registered


def test_a_cursor_that_was_not_given_out_is_refused(world: World, views: Runner) -> None:
    with pytest.raises(ValueError, match="cursor"):
        list_cases(caught_up(views), CaseFilter(), world.today(), after="not-a-cursor")


def test_registration_date_ranges_are_half_open(world: World, views: Runner) -> None:
    first = world.register()
    world.advance(minutes=30)
    boundary = world.clock.now()
    world.advance(minutes=30)
    second = world.register()
    connection = caught_up(views)
    before = list_cases(connection, CaseFilter(registered_to=boundary), world.today()).items
    after = list_cases(connection, CaseFilter(registered_from=boundary), world.today()).items
    assert [row.case_id for row in before] == [first]
    assert [row.case_id for row in after] == [second]


def test_cases_are_listed_by_category_owning_leader_and_breach(world: World, views: Runner) -> None:
    wages = world.accepted(intake=INTAKE.model_copy(update={"category": "wage_arrears"}))
    owned = world.accepted()
    world.do(world.township_head, "appoint_owning_leader", case_id=owned, leader_id=world.township_leader)
    connection = caught_up(views)
    today = world.today()

    def ids(on: date = today, **filters: object) -> set[object]:
        return {row.case_id for row in list_cases(connection, CaseFilter(**filters), on).items}

    assert ids(category="wage_arrears") == {wages}
    assert ids(category="land_compensation") == {owned}
    assert ids(owning_leader_id=world.township_leader) == {owned}
    assert ids(owning_leader_id=world.township_head) == set()
    row = get_case(connection, owned, today)
    assert row is not None
    assert row.reply_due is not None
    assert ids(on=row.reply_due, breached=True) == set()
    assert ids(on=row.reply_due + timedelta(days=1), breached=True) == {wages, owned}
    assert ids(on=row.reply_due + timedelta(days=1), breached=False) == set()


def test_closure_and_reply_deadline_ranges_are_half_open(world: World, views: Runner) -> None:
    early = world.replied()
    world.advance(days=1)
    boundary = world.clock.now()
    world.do(world.township_clerk, "close_case", case_id=early, closure=ClosureKind.SUBSTANTIVE)
    world.advance(days=10)
    late = world.accepted()
    connection = caught_up(views)
    today = world.today()

    def ids(**filters: object) -> list[object]:
        return [row.case_id for row in list_cases(connection, CaseFilter(**filters), today).items]

    assert ids(closed_from=boundary) == [early]
    assert ids(closed_to=boundary) == []
    early_due, late_due = (get_case(connection, case, today).reply_due for case in (early, late))  # type: ignore[union-attr]
    assert early_due is not None
    assert late_due is not None
    assert early_due < late_due
    assert ids(reply_due_from=late_due) == [late]
    assert ids(reply_due_to=late_due) == [early]
    assert ids(reply_due_from=early_due, reply_due_to=late_due + timedelta(days=1)) == [early, late]


def test_the_timeline_shows_each_event_with_its_actor_unit_times_and_correction_links(
    world: World, views: Runner
) -> None:
    case_id = world.register()
    world.advance(hours=2)
    world.correct_category(case_id)
    timeline = case_timeline(caught_up(views), case_id)
    assert [row.type for row in timeline] == ["Registered", "Corrected"]
    registered, corrected = timeline
    assert registered.actor_id == world.township_clerk
    assert registered.actor_unit_id == world.township
    assert registered.corrected_by == [2]
    assert corrected.corrects == 1
    assert corrected.narrative == "类别登记错误，更正"
    assert corrected.recorded_at > registered.recorded_at


def test_a_case_as_of_an_instant_is_what_the_ledger_had_recorded_by_then(world: World) -> None:
    case_id = world.register()
    registered_by = world.clock.now()
    world.advance(days=1)
    world.do(world.township_clerk, "accept_case", case_id=case_id)
    then = case_as_of(world.ledger, case_id, registered_by)
    assert then is not None
    assert then.status.value == "registered"
    assert case_as_of(world.ledger, case_id, world.clock.now()).status.value == "accepted"  # type: ignore[union-attr]
    assert case_as_of(world.ledger, case_id, registered_by - timedelta(seconds=1)) is None


def test_responsibility_at_an_instant_follows_business_time_even_when_recorded_late(world: World) -> None:
    case_id = world.accepted()
    handed_over = world.clock.now()
    world.advance(days=10)
    world.do(
        world.township_clerk,
        "assign_handler",
        narrative="补录：十天前已指定承办人",
        ctx_options={"occurred_at": handed_over + timedelta(hours=1)},
        case_id=case_id,
        handler_id=world.handler,
    )
    before = responsibility_at(world.ledger, case_id, handed_over)
    after = responsibility_at(world.ledger, case_id, handed_over + timedelta(hours=2))
    assert before is not None
    assert after is not None
    assert before.handler_id is None
    assert after.handler_id == world.handler
    assert after.unit_id == world.township
