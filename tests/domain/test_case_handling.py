"""Handling a case: responsibility, recusal, actions, hearings, extensions, jurisdiction, oversight."""

from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.case import Case
from domain.errors import (
    ConflictOfInterest,
    ExtensionRefused,
    InvalidArgument,
    InvalidTime,
    InvalidTransition,
    LedgerError,
    NotAllowed,
    OutsideJurisdiction,
    OutsideWindow,
    RoleRequired,
)
from domain.values import BureauLevel, ClosureKind, DeclineReason, ReviewLevel
from tests.support import World


def refused(world: World, error: type[LedgerError], command: str, case_id: UUID, **arguments: Any) -> Any:
    """Run `command` on the case as `by` (default: the township head); it must fail with exactly `error`."""
    by = arguments.pop("by", world.township_head)
    return world.refuse(error, by, command, case_id=case_id, **arguments)


def henan_accepted(world: World) -> UUID:
    """A case held by the Henan district itself, whose head may extend it."""
    case_id = world.register(world.henan_head)
    world.do(world.henan_head, "accept_case", case_id=case_id)
    return case_id


# --- owning leader, responsibility, handler ----------------------------------------------


def test_a_leader_can_be_appointed_to_own_the_case(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "appoint_owning_leader", case_id=case_id, leader_id=world.township_leader)
    assert world.case(case_id).owning_leader_id == world.township_leader
    event = world.events(case_id)[-1]
    assert type(event) is Case.OwningLeaderAppointed
    assert event.leader_id == world.township_leader


def test_an_owning_leader_must_hold_a_leadership_position(world: World) -> None:
    case_id = world.accepted()
    refused(world, InvalidArgument, "appoint_owning_leader", case_id, leader_id=world.handler)


def test_the_same_leader_cannot_be_appointed_twice(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "appoint_owning_leader", case_id=case_id, leader_id=world.township_leader)
    refused(world, InvalidArgument, "appoint_owning_leader", case_id, leader_id=world.township_leader)


def test_an_accused_cadre_cannot_own_the_case(world: World) -> None:
    case_id = world.accepted(accused_cadre_ids=frozenset({world.township_leader}))
    refused(world, ConflictOfInterest, "appoint_owning_leader", case_id, leader_id=world.township_leader)


def test_a_leader_of_an_accused_unit_cannot_own_the_case(world: World) -> None:
    case_id, by = world.accepted(accused_unit_ids=frozenset({world.county})), world.county_clerk
    refused(world, ConflictOfInterest, "appoint_owning_leader", case_id, leader_id=world.county_leader, by=by)


def test_naming_a_responsible_person_makes_their_unit_the_responsible_unit(world: World) -> None:
    case_id = world.accepted()
    world.do(world.county_head, "assign_responsibility", case_id=case_id, cadre_id=world.dept_clerk)
    case = world.case(case_id)
    assert (case.unit_id, case.responsible_cadre_id) == (world.county_dept, world.dept_clerk)


def test_the_responsible_unit_must_lie_within_the_actors_jurisdiction(world: World) -> None:
    case_id = world.accepted()
    refused(world, NotAllowed, "assign_responsibility", case_id, cadre_id=world.outsider)


def test_an_accused_unit_cannot_be_the_responsible_unit(world: World) -> None:
    case_id, by = world.accepted(accused_unit_ids=frozenset({world.county_dept})), world.county_head
    refused(world, ConflictOfInterest, "assign_responsibility", case_id, cadre_id=world.dept_clerk, by=by)


def test_a_handler_is_assigned_to_handle_the_case(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "assign_handler", case_id=case_id, handler_id=world.handler)
    assert world.case(case_id).handler_id == world.handler
    refused(world, InvalidArgument, "assign_handler", case_id, handler_id=world.handler)


@pytest.mark.parametrize("accused", ["cadre", "unit"])
def test_an_accused_handler_must_recuse(world: World, accused: str) -> None:
    if accused == "cadre":
        case_id, handler = world.accepted(accused_cadre_ids=frozenset({world.handler})), world.handler
    else:
        case_id, handler = world.accepted(accused_unit_ids=frozenset({world.county_dept})), world.dept_clerk
    refused(world, ConflictOfInterest, "assign_handler", case_id, handler_id=handler, by=world.county_head)


def test_a_handler_transferred_out_of_the_accused_unit_must_still_recuse(world: World) -> None:
    """Art. 28: a petition against a unit accuses who served in it, wherever they serve now."""
    moved = {"cadre_id": world.dept_clerk, "unit_id": world.township, "position": "干事"}
    world.do(world.admin, "transfer_cadre", **moved)
    world.advance(hours=1)
    case_id = world.accepted(accused_unit_ids=frozenset({world.county_dept}))
    refused(world, ConflictOfInterest, "assign_handler", case_id, handler_id=world.dept_clerk)
    refused(world, ConflictOfInterest, "record_action", case_id, kind="visit", by=world.dept_clerk)
    world.do(world.township_head, "assign_handler", case_id=case_id, handler_id=world.handler)


def test_a_command_backdated_to_before_a_cadre_joined_the_accused_unit_does_not_escape_recusal(
    world: World,
) -> None:
    case_id = world.accepted(accused_unit_ids=frozenset({world.county_dept}))
    before = world.clock.now()
    world.advance(hours=1)
    moved = {"cadre_id": world.handler, "unit_id": world.county_dept, "position": "科员"}
    world.do(world.admin, "transfer_cadre", **moved)
    world.advance(hours=1)
    back = {"occurred_at": before}  # when the handler still served in the township
    handler = world.handler
    refused(world, ConflictOfInterest, "record_action", case_id, kind="visit", by=handler, ctx_options=back)
    refused(world, ConflictOfInterest, "assign_handler", case_id, handler_id=handler, ctx_options=back)


# --- actions and hearings -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("visit", "visit"), ("legal_aid_referral", "legal_aid_referral"), ("  Home_Visit ", "home_visit")],
)
def test_an_action_kind_is_a_known_kind_or_a_lower_case_slug(world: World, given: str, stored: str) -> None:
    case_id = world.accepted()
    world.do(world.handler, "record_action", case_id=case_id, kind=given)
    event = world.events(case_id)[-1]
    assert type(event) is Case.ActionRecorded
    assert event.kind == stored
    assert world.case(case_id).action_count == 1


@pytest.mark.parametrize("kind", ["tea with family", "走访", "1st_visit", "visit!", ""])
def test_a_malformed_action_kind_is_refused(world: World, kind: str) -> None:
    case_id = world.accepted()
    refused(world, InvalidArgument, "record_action", case_id, kind=kind, by=world.handler)


def test_no_action_can_be_recorded_on_a_declined_case(world: World) -> None:
    case_id = world.register()
    world.do(world.township_clerk, "decline_case", case_id=case_id, reason=DeclineReason.OTHER)
    refused(world, InvalidTransition, "record_action", case_id, kind="visit", by=world.handler)


def test_a_hearing_is_recorded_with_its_length(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "hold_hearing", case_id=case_id, days=3)
    event = world.events(case_id)[-1]
    assert type(event) is Case.HearingHeld
    assert (event.days, event.review_answer_due) == (3, None)
    assert world.case(case_id).hearing_count == 1


@pytest.mark.parametrize("days", [0, 91])
def test_a_hearing_lasts_between_one_and_ninety_days(world: World, days: int) -> None:
    refused(world, InvalidArgument, "hold_hearing", world.accepted(), days=days)


def test_no_hearing_is_held_before_acceptance(world: World) -> None:
    refused(world, InvalidTransition, "hold_hearing", world.register(), days=2)


def test_hearing_days_during_a_review_are_not_counted_against_its_answer(world: World) -> None:
    case_id = world.replied()
    world.do(world.township_clerk, "request_review", case_id=case_id, level=ReviewLevel.FIRST)
    due = world.case(case_id).review_answer_due
    assert due is not None
    world.do(world.county_head, "hold_hearing", case_id=case_id, days=5)
    assert world.case(case_id).review_answer_due == due + timedelta(days=5)


# --- extensions -----------------------------------------------------------------------------


def test_the_unit_head_extends_the_reply_deadline(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "extend_deadline", case_id=case_id, days=30)
    case = world.case(case_id)
    assert case.extended
    assert case.reply_due == date(2026, 6, 5)  # 6 May + 30 days
    event = world.events(case_id)[-1]
    assert type(event) is Case.DeadlineExtended
    assert (event.days, event.reply_due) == (30, date(2026, 6, 5))


@pytest.mark.parametrize("actor", ["township_clerk", "township_leader", "county_head"])
def test_only_the_head_of_the_unit_holding_the_case_may_extend(world: World, actor: str) -> None:
    case_id = world.accepted()
    refused(world, RoleRequired, "extend_deadline", case_id, days=10, by=getattr(world, actor))


def test_a_deadline_is_extended_at_most_once(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "extend_deadline", case_id=case_id, days=10)
    refused(world, ExtensionRefused, "extend_deadline", case_id, days=10)


def test_a_national_extension_is_at_most_thirty_days(world: World) -> None:
    case_id = world.accepted()
    refusal = refused(world, ExtensionRefused, "extend_deadline", case_id, days=31)
    assert refusal.context["max_days"] == 30


def test_a_henan_extension_may_reach_sixty_days(world: World) -> None:
    case_id = henan_accepted(world)
    refused(world, ExtensionRefused, "extend_deadline", case_id, days=61, by=world.henan_head)
    world.do(world.henan_head, "extend_deadline", case_id=case_id, days=60)
    assert world.case(case_id).reply_due == date(2026, 6, 1)  # 1 April + 60 = Sunday 31 May, rolled


def test_a_deadline_can_be_extended_on_its_last_day_but_not_after(world: World) -> None:
    on_time, too_late = world.accepted(), world.accepted()
    world.advance_to(date(2026, 5, 6), hour=17)
    world.do(world.township_head, "extend_deadline", case_id=on_time, days=5)
    world.advance_to(date(2026, 5, 7), hour=9)
    refused(world, OutsideWindow, "extend_deadline", too_late, days=5)


def test_a_case_not_yet_accepted_cannot_be_extended(world: World) -> None:
    refused(world, InvalidTransition, "extend_deadline", world.register(), days=5)


# --- jurisdiction ---------------------------------------------------------------------------


@pytest.mark.parametrize("actor", ["outsider", "village_head", "henan_head"])
def test_a_cadre_outside_the_territory_cannot_act_on_the_case(world: World, actor: str) -> None:
    case_id = world.accepted()
    refused(world, OutsideJurisdiction, "record_action", case_id, kind="visit", by=getattr(world, actor))


def test_a_higher_level_cadre_may_act_on_a_case_in_their_territory(world: World) -> None:
    case_id = world.accepted()
    world.do(world.county_clerk, "record_action", case_id=case_id, kind="coordination")
    assert world.events(case_id)[-1].actor_unit_id == world.county_bureau


def test_a_handler_from_outside_the_territory_may_act_on_their_case(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "assign_handler", case_id=case_id, handler_id=world.outsider)
    world.do(world.outsider, "record_action", case_id=case_id, kind="visit")
    assert world.events(case_id)[-1].actor_id == world.outsider


def test_an_owning_leader_from_outside_the_territory_may_act_on_their_case(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "appoint_owning_leader", case_id=case_id, leader_id=world.henan_head)
    world.do(world.henan_head, "record_action", case_id=case_id, kind="talk")
    assert world.case(case_id).action_count == 1


def test_a_replaced_outside_handler_loses_access(world: World) -> None:
    case_id = world.accepted()
    world.do(world.township_head, "assign_handler", case_id=case_id, handler_id=world.outsider)
    world.do(world.township_head, "assign_handler", case_id=case_id, handler_id=world.handler)
    refused(world, OutsideJurisdiction, "record_action", case_id, kind="visit", by=world.outsider)


# --- supervision and leapfrog petitions -------------------------------------------------------


def test_supervision_orders_are_numbered_and_answered_once(world: World) -> None:
    case_id = world.accepted()
    world.do(world.county_clerk, "issue_supervision", case_id=case_id, due=date(2026, 3, 10))
    world.do(world.county_head, "issue_supervision", case_id=case_id)
    world.advance(days=1)
    world.do(
        world.township_clerk,
        "answer_supervision",
        narrative="report on progress",
        case_id=case_id,
        order_no=1,
    )
    orders = world.case(case_id).supervision
    assert sorted(orders) == [1, 2]
    assert (orders[1].issued_by, orders[1].due) == (world.county_clerk, date(2026, 3, 10))
    assert orders[1].answered_at == world.clock.now()
    assert (orders[2].due, orders[2].answered_at) == (None, None)  # national rules set no answer period
    refused(world, InvalidTransition, "answer_supervision", case_id, order_no=1, by=world.township_clerk)
    refused(world, InvalidArgument, "answer_supervision", case_id, order_no=3, by=world.township_clerk)


def test_henan_rules_give_a_supervision_order_fifteen_days(world: World) -> None:
    case_id = world.register(world.henan_clerk)
    world.do(world.henan_head, "issue_supervision", case_id=case_id)
    assert world.case(case_id).supervision[1].due == date(2026, 3, 17)


def test_a_unit_cannot_supervise_its_own_handling(world: World) -> None:
    refused(world, InvalidArgument, "issue_supervision", world.accepted())


def test_the_issuing_unit_cannot_answer_its_own_supervision_order(world: World) -> None:
    case_id = world.accepted()
    world.do(world.county_clerk, "issue_supervision", case_id=case_id)
    refused(world, InvalidArgument, "answer_supervision", case_id, order_no=1, by=world.county_clerk)


def test_a_supervision_order_cannot_be_due_before_it_is_issued(world: World) -> None:
    case_id = world.accepted()
    yesterday = world.today() - timedelta(days=1)
    refused(world, InvalidTime, "issue_supervision", case_id, due=yesterday, by=world.county_clerk)


def test_a_closed_case_cannot_be_supervised(world: World) -> None:
    case_id = world.replied()
    world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    refused(world, InvalidTransition, "issue_supervision", case_id, by=world.county_clerk)


def test_a_leapfrog_petition_counts_against_the_unit_holding_the_case_at_that_time(world: World) -> None:
    case_id = world.register(world.county_clerk)
    world.do(world.county_clerk, "record_leapfrog", case_id=case_id, level=BureauLevel.CITY)
    world.advance(hours=1)
    world.do(world.county_clerk, "forward_case", case_id=case_id, to_unit_id=world.township)
    world.advance(hours=1)
    world.do(world.county_clerk, "record_leapfrog", case_id=case_id, level=BureauLevel.PROVINCIAL)
    leapfrogs = [e for e in world.events(case_id) if type(e) is Case.LeapfrogRecorded]
    assert [(e.level, e.attributed_unit_id) for e in leapfrogs] == [
        (BureauLevel.CITY, world.county_bureau),
        (BureauLevel.PROVINCIAL, world.township),
    ]
    assert world.case(case_id).leapfrog_count == 2


def test_a_due_date_more_than_ten_years_away_is_refused(world: World) -> None:
    case_id = world.accepted()
    world.refuse(
        InvalidArgument, world.county_clerk, "issue_supervision", case_id=case_id, due=date(9999, 12, 31)
    )
    world.refuse(InvalidArgument, world.county_clerk, "issue_supervision", case_id=case_id, due=date(1, 1, 1))
