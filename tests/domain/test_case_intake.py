"""Intake of a petition case: register, forward, assign, object, accept, decline."""

from datetime import date, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.case import Case, CaseStatus, Intake
from domain.errors import (
    ConflictOfInterest,
    InvalidArgument,
    InvalidTime,
    InvalidTransition,
    LedgerError,
    MatterFinal,
    NotAllowed,
    OutsideWindow,
    PersonalDataInText,
)
from domain.rules import RuleRef
from domain.values import BureauLevel, Channel, DeclineReason, Source
from tests.support import INTAKE, World


def refused(world: World, error: type[LedgerError], command: str, case_id: UUID, **arguments: Any) -> Any:
    """Run `command` on the case as `by` (default: the township clerk); it must fail with exactly `error`."""
    by = arguments.pop("by", world.township_clerk)
    return world.refuse(error, by, command, case_id=case_id, **arguments)


def refused_registration(world: World, error: type[LedgerError], **options: Any) -> None:
    """Register a petition as the township clerk, expecting exactly `error` and nothing written."""
    options = {"intake": INTAKE, "petitioner_id": uuid4(), **options}
    world.refuse(error, world.township_clerk, "register_case", **options)


def assigned(world: World, **kwargs: Any) -> UUID:
    """A case registered by the county bureau and assigned (交办) by it to the township."""
    case_id = world.register(world.county_clerk)
    world.do(world.county_clerk, "assign_case", case_id=case_id, to_unit_id=world.township, **kwargs)
    return case_id


# --- register ---------------------------------------------------------------------


def test_the_registering_cadre_is_first_receiver_and_their_unit_holds_the_case(world: World) -> None:
    case_id = world.register(world.county_clerk)
    case = world.case(case_id)
    assert case.first_receiver_id == world.county_clerk
    assert case.unit_id == world.county_bureau
    assert case.status is CaseStatus.REGISTERED
    registered = world.events(case_id)[0]
    assert type(registered) is Case.Registered
    assert (registered.actor_id, registered.actor_unit_id) == (world.county_clerk, world.county_bureau)


def test_registration_stores_due_dates_computed_from_the_national_rules(world: World) -> None:
    registered = world.events(world.register())[0]
    assert isinstance(registered, Case.Registered)
    assert registered.rules == RuleRef(jurisdiction="CN", version=1)
    # Monday 2 March + 15 calendar days = Tuesday 17 March
    assert registered.forward_due == date(2026, 3, 17)
    assert registered.acceptance_notice_due == date(2026, 3, 17)


def test_registration_in_henan_uses_henan_rules_and_rolls_a_weekend_due_date(world: World) -> None:
    registered = world.events(world.register(world.henan_clerk))[0]
    assert isinstance(registered, Case.Registered)
    assert registered.rules == RuleRef(jurisdiction="CN-HA", version=1)
    # 5 days to forward ends on Saturday 7 March, which rolls to Monday 9 March
    assert registered.forward_due == date(2026, 3, 9)
    assert registered.acceptance_notice_due == date(2026, 3, 17)


@pytest.mark.parametrize(
    "narrative",
    [
        "请回电 13812345678",
        "联系 +86 138-1234-5678",
        "邮件 zhang.san@example.com",
        "身份证 41162219800101123X",
    ],
    ids=["phone", "phone-with-prefix", "e-mail", "id-card"],
)
def test_personal_data_in_the_narrative_is_refused(world: World, narrative: str) -> None:
    refused_registration(world, PersonalDataInText, narrative=narrative)


def test_a_registration_dated_in_the_future_is_refused(world: World) -> None:
    later = world.clock.now() + timedelta(hours=1)
    refused_registration(world, InvalidTime, ctx_options={"occurred_at": later})


def test_a_registration_a_few_seconds_ahead_is_recorded_as_now_absorbing_clock_drift(world: World) -> None:
    now = world.clock.now()
    case_id = world.register(ctx_options={"occurred_at": now + timedelta(seconds=3)})
    assert world.case(case_id).registered_at == now


def test_an_accused_cadre_cannot_register_a_complaint_against_themselves(world: World) -> None:
    refused_registration(world, ConflictOfInterest, accused_cadre_ids=frozenset({world.township_clerk}))


def test_a_petition_needs_at_least_one_petitioner(world: World) -> None:
    intake = Intake(channel=Channel.LETTER, category="wages", headcount=0)
    refused_registration(world, InvalidArgument, intake=intake)


# --- forward ----------------------------------------------------------------------


def test_forwarding_moves_the_case_and_restarts_the_acceptance_notice_period(world: World) -> None:
    case_id = world.register(world.county_clerk)
    world.advance(days=2)
    world.do(world.county_clerk, "forward_case", case_id=case_id, to_unit_id=world.township)
    case = world.case(case_id)
    assert case.unit_id == world.township
    assert case.first_receiver_id == world.county_clerk
    assert case.assignment is None
    assert case.acceptance_notice_due == date(2026, 3, 19)  # Wednesday 4 March + 15 days
    forwarded = world.events(case_id)[-1]
    assert type(forwarded) is Case.Forwarded
    assert forwarded.to_unit_id == world.township


def test_a_case_cannot_be_forwarded_to_the_unit_already_holding_it(world: World) -> None:
    case_id, by = world.register(world.county_clerk), world.county_clerk
    refused(world, InvalidArgument, "forward_case", case_id, to_unit_id=world.county_bureau, by=by)


def test_a_case_cannot_be_forwarded_to_the_unit_it_accuses(world: World) -> None:
    case_id = world.register(world.county_clerk, accused_unit_ids=frozenset({world.township}))
    refused(
        world, ConflictOfInterest, "forward_case", case_id, to_unit_id=world.township, by=world.county_clerk
    )


def test_an_accepted_case_cannot_be_forwarded(world: World) -> None:
    case_id, by = world.accepted(), world.county_clerk
    refused(world, InvalidTransition, "forward_case", case_id, to_unit_id=world.county_dept, by=by)


# --- assign -----------------------------------------------------------------------


def test_an_assignment_records_the_assigner_objection_window_and_fixed_due_date(world: World) -> None:
    case_id = assigned(world, due=date(2026, 4, 15))
    case = world.case(case_id)
    assert case.unit_id == world.township
    assert case.assignment is not None
    assert case.assignment.assigned_by == world.county_clerk
    assert case.assignment.due == date(2026, 4, 15)
    assert case.assignment.objection_due == date(2026, 3, 9)  # 5 working days from Monday 2 March
    event = world.events(case_id)[-1]
    assert type(event) is Case.Assigned
    assert (event.to_unit_id, event.due) == (world.township, date(2026, 4, 15))


def test_a_fixed_assignment_due_date_caps_the_reply_deadline(world: World) -> None:
    case_id = assigned(world, due=date(2026, 4, 15))
    world.advance(hours=1)
    world.do(world.township_clerk, "accept_case", case_id=case_id)
    assert world.case(case_id).reply_due == date(2026, 4, 15)


def test_the_assigner_must_cover_the_unit_assigned_to(world: World) -> None:
    case_id = world.register(world.county_clerk)
    refused(world, NotAllowed, "assign_case", case_id, to_unit_id=world.henan_township, by=world.county_clerk)


def test_an_assignment_cannot_be_due_before_it_is_made(world: World) -> None:
    case_id = world.register(world.county_clerk)
    yesterday, by = world.today() - timedelta(days=1), world.county_clerk
    refused(world, InvalidTime, "assign_case", case_id, to_unit_id=world.township, due=yesterday, by=by)


# --- object to an assignment --------------------------------------------------------


@pytest.mark.parametrize(
    ("assigned_on", "last_day"),
    [
        (date(2026, 3, 5), date(2026, 3, 12)),  # Thursday; the weekend does not count
        (date(2026, 4, 2), date(2026, 4, 10)),  # Thursday; Qingming holiday 4-6 April does not count
        (date(2026, 4, 29), date(2026, 5, 9)),  # Wednesday; May Day 1-5 May, Saturday 9 May is worked
    ],
    ids=["weekend", "qingming", "may-day"],
)
def test_an_objection_is_due_within_five_working_days(
    world: World, assigned_on: date, last_day: date
) -> None:
    world.advance_to(assigned_on)
    on_time, too_late = assigned(world), assigned(world)
    assignment = world.case(on_time).assignment
    assert assignment is not None
    assert assignment.objection_due == last_day
    world.advance_to(last_day, hour=17)
    world.do(world.township_clerk, "object_to_assignment", case_id=on_time, narrative="not within our remit")
    objected = world.events(on_time)[-1]
    assert (type(objected), objected.narrative) == (Case.AssignmentObjected, "not within our remit")
    world.advance_to(last_day + timedelta(days=1), hour=9)
    refused(world, OutsideWindow, "object_to_assignment", too_late)


def test_only_an_assignment_can_be_objected_to(world: World) -> None:
    case_id = world.register(world.county_clerk)
    world.do(world.county_clerk, "forward_case", case_id=case_id, to_unit_id=world.township)
    refused(world, InvalidTransition, "object_to_assignment", case_id)


def test_only_the_assigned_unit_can_object(world: World) -> None:
    case_id = assigned(world)
    refused(world, InvalidArgument, "object_to_assignment", case_id, by=world.county_clerk)


def test_an_assignment_can_be_objected_to_only_once(world: World) -> None:
    case_id = assigned(world)
    world.do(world.township_clerk, "object_to_assignment", case_id=case_id)
    refused(world, InvalidTransition, "object_to_assignment", case_id)


# --- accept -----------------------------------------------------------------------


def test_acceptance_stores_the_reply_due_date_from_the_rules(world: World) -> None:
    case_id = world.accepted()
    case = world.case(case_id)
    assert case.status is CaseStatus.ACCEPTED
    accepted = world.events(case_id)[-1]
    assert type(accepted) is Case.Accepted
    assert accepted.rules == RuleRef(jurisdiction="CN", version=1)
    # 2 March + 60 days is Friday 1 May, a holiday: the period ends on Wednesday 6 May
    assert accepted.reply_due == case.reply_due == date(2026, 5, 6)


def test_a_henan_case_has_thirty_days_and_an_assigned_one_ninety(world: World) -> None:
    own = world.register(world.henan_clerk)
    from_province = Intake(
        channel=Channel.LETTER, category="wages", source=Source(assigned_by=BureauLevel.PROVINCIAL)
    )
    assigned_case = world.register(world.henan_clerk, intake=from_province)
    for case_id in (own, assigned_case):
        world.do(world.henan_clerk, "accept_case", case_id=case_id)
    assert world.case(own).reply_due == date(2026, 4, 1)
    assert world.case(assigned_case).reply_due == date(2026, 6, 1)  # Sunday 31 May rolls to Monday


def test_a_repeat_of_a_finally_decided_matter_is_refused_as_final(world: World) -> None:
    final = world.finally_decided()
    repeat = world.register(repeat_of=final)
    refused(world, MatterFinal, "accept_case", repeat)
    world.do(world.township_clerk, "decline_case", case_id=repeat, reason=DeclineReason.FINAL_MATTER)
    assert world.case(repeat).status is CaseStatus.DECLINED


def test_a_repeat_of_a_matter_still_open_to_review_can_be_accepted(world: World) -> None:
    earlier = world.replied()
    repeat = world.register(repeat_of=earlier)
    world.do(world.township_clerk, "accept_case", case_id=repeat)
    assert world.case(repeat).status is CaseStatus.ACCEPTED


def test_an_accused_unit_cannot_accept_the_case_against_it(world: World) -> None:
    case_id = world.register(accused_unit_ids=frozenset({world.township}))
    refused(world, ConflictOfInterest, "accept_case", case_id, by=world.township_head)


def test_an_accused_cadre_cannot_accept_the_case_against_them(world: World) -> None:
    case_id = world.register(accused_cadre_ids=frozenset({world.township_leader}))
    refused(world, ConflictOfInterest, "accept_case", case_id, by=world.township_leader)


def test_a_case_is_accepted_only_once(world: World) -> None:
    case_id = world.accepted()
    refused(world, InvalidTransition, "accept_case", case_id)


def test_acceptance_cannot_predate_the_case_reaching_its_unit(world: World) -> None:
    case_id = world.register(world.county_clerk)
    before = world.clock.now()
    world.advance(hours=2)
    world.do(world.county_clerk, "forward_case", case_id=case_id, to_unit_id=world.township)
    refused(world, InvalidTime, "accept_case", case_id, ctx_options={"occurred_at": before})


# --- decline ----------------------------------------------------------------------


def test_declining_records_the_reason(world: World) -> None:
    case_id = world.register()
    world.do(
        world.township_clerk,
        "decline_case",
        narrative="a labour arbitration matter",
        case_id=case_id,
        reason=DeclineReason.OUTSIDE_SCOPE,
    )
    assert world.case(case_id).status is CaseStatus.DECLINED
    declined = world.events(case_id)[-1]
    assert type(declined) is Case.Declined
    assert (declined.reason, declined.narrative) == (
        DeclineReason.OUTSIDE_SCOPE,
        "a labour arbitration matter",
    )


def test_an_accepted_case_cannot_be_declined(world: World) -> None:
    case_id = world.accepted()
    refused(world, InvalidTransition, "decline_case", case_id, reason=DeclineReason.OTHER)


def test_a_declined_case_cannot_be_accepted(world: World) -> None:
    case_id = world.register()
    world.do(world.township_clerk, "decline_case", case_id=case_id, reason=DeclineReason.NOT_COMPETENT)
    refused(world, InvalidTransition, "accept_case", case_id)


def test_an_accused_unit_cannot_decline_the_case_against_it(world: World) -> None:
    case_id = world.register(accused_unit_ids=frozenset({world.township}))
    refused(
        world, ConflictOfInterest, "decline_case", case_id, reason=DeclineReason.OTHER, by=world.township_head
    )
