"""One meeting, four links (一会四联): a joint meeting studies cases and gives each an owner, a deadline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from domain.case import Case
from domain.errors import InvalidArgument, InvalidTime, InvalidTransition, NotAllowed, NotFound
from domain.meeting import Meeting
from domain.values import UnitLevel
from tests.support import World

DUE = date(2026, 4, 30)


def meeting(world: World, meeting_id: UUID) -> Meeting:
    found: Meeting = world.ledger.repository.get(meeting_id)
    return found


def convene(
    world: World, actor: str = "township_clerk", unit: str = "township", chair: str = "township_head"
) -> UUID:
    return world.do(
        world.cadres[actor], "convene_meeting", unit_id=world.units[unit], chair_id=world.cadres[chair]
    ).aggregate_id


# --- convening ---------------------------------------------------------------------------


def test_a_meeting_chaired_by_the_units_head_is_chaired_by_the_principal_leader(world: World) -> None:
    meeting_id = world.do(
        world.township_clerk,
        "convene_meeting",
        unit_id=world.township,
        chair_id=world.township_head,
        attendee_ids=frozenset({world.township_leader, world.handler}),
    ).aggregate_id
    convened = meeting(world, meeting_id)
    assert convened.chaired_by_principal
    assert (convened.unit_id, convened.level, convened.chair_id) == (
        world.township,
        UnitLevel.TOWNSHIP,
        world.township_head,
    )
    assert convened.attendee_ids == {world.township_head, world.township_leader, world.handler}


def test_a_meeting_chaired_by_another_leader_is_not_chaired_by_the_principal(world: World) -> None:
    assert not meeting(world, convene(world, chair="township_leader")).chaired_by_principal
    assert meeting(
        world, convene(world, actor="county_clerk", unit="county", chair="county_head")
    ).chaired_by_principal
    assert not meeting(
        world, convene(world, actor="county_clerk", unit="county", chair="county_leader")
    ).chaired_by_principal


@pytest.mark.parametrize(
    "chair",
    [
        pytest.param("handler", id="not-a-leader"),
        pytest.param("county_leader", id="a-leader-of-another-territory"),
        pytest.param("village_head", id="the-head-of-a-territory-below"),
    ],
)
def test_the_chair_must_be_a_leader_of_the_territory(world: World, chair: str) -> None:
    world.refuse(
        InvalidArgument,
        world.township_clerk,
        "convene_meeting",
        unit_id=world.township,
        chair_id=world.cadres[chair],
    )


def test_meetings_are_convened_by_territorial_governments_only(world: World) -> None:
    world.refuse(
        InvalidArgument,
        world.county_clerk,
        "convene_meeting",
        unit_id=world.county_bureau,
        chair_id=world.county_head,
    )


def test_villages_hold_no_joint_meetings(world: World) -> None:
    world.refuse(
        InvalidArgument,
        world.township_clerk,
        "convene_meeting",
        unit_id=world.village,
        chair_id=world.village_head,
    )


def test_a_meeting_is_convened_within_the_actors_jurisdiction(world: World) -> None:
    world.refuse(
        NotAllowed, world.outsider, "convene_meeting", unit_id=world.township, chair_id=world.township_head
    )


def test_attendees_must_be_registered_cadres(world: World) -> None:
    world.refuse(
        NotFound,
        world.township_clerk,
        "convene_meeting",
        unit_id=world.township,
        chair_id=world.township_head,
        attendee_ids=frozenset({uuid4()}),
    )


# --- studying cases -----------------------------------------------------------------------


def study(
    world: World, meeting_id: UUID, case_id: UUID, leader: str = "township_leader", person: str = "handler"
) -> None:
    world.do(
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.cadres[leader],
        responsible_cadre_id=world.cadres[person],
        due=DUE,
    )


def test_studying_a_case_appoints_its_owner_and_responsibility_in_the_same_command(world: World) -> None:
    case_id = world.register()
    meeting_id = convene(world)
    world.advance(hours=1)
    result = world.do(
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=DUE,
    )
    assert result.aggregate_id == meeting_id
    assert len(result.positions) == 4

    case_events = world.events(case_id)[1:]
    assert [type(e).__name__ for e in case_events] == [
        "StudiedAtMeeting",
        "OwningLeaderAppointed",
        "ResponsibilityAssigned",
    ]
    assert all(e.meeting_id == meeting_id for e in case_events)  # type: ignore[attr-defined]
    assert {e.command_id for e in case_events} == {result.command_id}

    (studied,) = [e for e in world.events(meeting_id) if isinstance(e, Meeting.CaseStudied)]
    assert (studied.case_id, studied.owning_leader_id, studied.responsible_cadre_id, studied.due) == (
        case_id,
        world.township_leader,
        world.handler,
        DUE,
    )
    assert studied.responsible_unit_id == world.township

    case = world.case(case_id)
    assert (case.owning_leader_id, case.responsible_cadre_id, case.unit_id) == (
        world.township_leader,
        world.handler,
        world.township,
    )
    assert case.meeting_ids == [meeting_id]
    assert case.meeting_due == DUE


def test_a_case_whose_owner_is_already_the_chosen_leader_gets_no_repeated_appointment(world: World) -> None:
    case_id = world.register()
    world.do(world.township_clerk, "appoint_owning_leader", case_id=case_id, leader_id=world.township_leader)
    meeting_id = convene(world)
    world.advance(hours=1)
    study(world, meeting_id, case_id)
    names = [type(e).__name__ for e in world.events(case_id)]
    assert names.count("OwningLeaderAppointed") == 1
    assert names[-2:] == ["StudiedAtMeeting", "ResponsibilityAssigned"]


def test_a_county_meeting_may_study_a_township_case(world: World) -> None:
    case_id = world.register()
    meeting_id = convene(world, actor="county_clerk", unit="county", chair="county_head")
    world.advance(hours=1)
    world.do(
        world.county_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.county_leader,
        responsible_cadre_id=world.handler,
        due=DUE,
    )
    assert world.case(case_id).owning_leader_id == world.county_leader


def test_an_owner_who_is_not_a_leader_is_refused_and_the_meeting_records_nothing(world: World) -> None:
    case_id = world.register()
    meeting_id = convene(world)
    world.advance(hours=1)
    world.refuse(
        InvalidArgument,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.handler,
        responsible_cadre_id=world.handler,
        due=DUE,
    )
    assert meeting(world, meeting_id).case_ids == []


def test_a_meeting_studies_only_cases_held_in_its_territory(world: World) -> None:
    case_id = world.register(world.outsider)
    meeting_id = convene(world)
    world.advance(hours=1)
    world.refuse(
        NotAllowed,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=DUE,
    )


def test_the_responsible_person_must_serve_in_the_meetings_territory(world: World) -> None:
    case_id = world.register()
    meeting_id = convene(world)
    world.advance(hours=1)
    world.refuse(
        NotAllowed,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.outsider,
        due=DUE,
    )


def test_a_meeting_studies_a_case_once(world: World) -> None:
    case_id = world.register()
    meeting_id = convene(world)
    world.advance(hours=1)
    study(world, meeting_id, case_id)
    world.advance(hours=1)
    world.refuse(
        InvalidArgument,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_head,
        responsible_cadre_id=world.township_clerk,
        due=DUE,
    )


def test_a_case_cannot_be_studied_before_the_meeting_was_convened(world: World) -> None:
    case_id = world.register()
    world.advance(hours=2)
    meeting_id = convene(world)
    world.refuse(
        InvalidTime,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=DUE,
        ctx_options={"occurred_at": world.clock.now() - timedelta(hours=1)},
    )


def test_a_meetings_deadline_cannot_be_before_the_meeting(world: World) -> None:
    case_id = world.register()
    meeting_id = convene(world)
    world.advance(hours=1)
    yesterday = (world.clock.now() + timedelta(hours=8)).date() - timedelta(days=1)
    world.refuse(
        InvalidTime,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=yesterday,
    )


def test_a_meetings_deadline_is_judged_by_the_local_date_of_the_meeting(world: World) -> None:
    """At 07:00 in Beijing it is still the previous day in UTC; yesterday (Beijing) is still in the past."""
    world.clock.set(datetime(2026, 3, 9, 23, 0, tzinfo=UTC))  # Tuesday 10 March, 07:00 in Beijing
    case_id = world.register()
    meeting_id = convene(world)
    world.advance(minutes=30)
    world.refuse(
        InvalidTime,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=date(2026, 3, 9),
    )


# --- concluding ---------------------------------------------------------------------------


def test_a_concluded_meeting_studies_no_more_cases(world: World) -> None:
    case_id = world.register()
    meeting_id = convene(world)
    world.advance(hours=2)
    world.do(world.township_clerk, "conclude_meeting", meeting_id=meeting_id, narrative="会议纪要：研判一件")
    assert meeting(world, meeting_id).concluded
    assert isinstance(world.events(meeting_id)[-1], Meeting.Concluded)
    world.refuse(
        InvalidTransition,
        world.township_head,
        "study_case",
        meeting_id=meeting_id,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=DUE,
    )
    world.refuse(InvalidTransition, world.township_clerk, "conclude_meeting", meeting_id=meeting_id)


def test_a_meeting_is_concluded_only_within_the_actors_jurisdiction(world: World) -> None:
    meeting_id = convene(world)
    world.advance(hours=1)
    world.refuse(NotAllowed, world.outsider, "conclude_meeting", meeting_id=meeting_id)


def test_studied_cases_are_listed_on_the_meeting(world: World) -> None:
    first, second = world.register(), world.register()
    meeting_id = convene(world)
    world.advance(hours=1)
    study(world, meeting_id, first)
    study(world, meeting_id, second, leader="township_head", person="township_clerk")
    assert meeting(world, meeting_id).case_ids == [first, second]
    assert isinstance(world.case(second), Case)
    assert world.case(second).owning_leader_id == world.township_head
