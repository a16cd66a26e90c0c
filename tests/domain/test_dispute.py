"""Dispute screening (排查矛盾纠纷): grassroots cadres record disputes, mediate, resolve or escalate them."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from domain.case import Case, CaseStatus
from domain.dispute import Dispute, DisputeStatus
from domain.errors import InvalidArgument, InvalidTime, InvalidTransition, OutsideJurisdiction
from domain.values import DisputeSource, MediationResult
from tests.support import INTAKE, World


def dispute(world: World, dispute_id: UUID) -> Dispute:
    found: Dispute = world.ledger.repository.get(dispute_id)
    return found


def record(world: World, actor: str = "township_clerk", **kwargs: object) -> UUID:
    kwargs.setdefault("source", DisputeSource.SCREENING)
    kwargs.setdefault("category", "land_boundary")
    return world.do(world.cadres[actor], "record_dispute", **kwargs).aggregate_id


# --- recording ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "unit"),
    [
        ("township_clerk", "township"),
        ("handler", "township"),
        ("village_head", "village"),
        ("henan_clerk", "henan_township"),
    ],
)
def test_township_and_village_cadres_record_disputes_in_their_own_unit(
    world: World, actor: str, unit: str
) -> None:
    dispute_id = record(world, actor, source=DisputeSource.VISIT, category="neighbour_water", parties=3)
    (recorded,) = world.events(dispute_id)
    assert isinstance(recorded, Dispute.Recorded)
    assert (recorded.unit_id, recorded.actor_id, recorded.actor_unit_id) == (
        world.units[unit],
        world.cadres[actor],
        world.units[unit],
    )
    assert (recorded.source, recorded.category, recorded.parties) == (
        DisputeSource.VISIT,
        "neighbour_water",
        3,
    )
    assert dispute(world, dispute_id).status is DisputeStatus.OPEN


@pytest.mark.parametrize("actor", ["county_clerk", "dept_clerk", "county_head", "city_clerk", "inspector"])
def test_cadres_above_the_grassroots_cannot_record_disputes(world: World, actor: str) -> None:
    world.refuse(
        InvalidArgument, world.cadres[actor], "record_dispute", source=DisputeSource.REPORT, category="wages"
    )


def test_a_dispute_has_at_least_one_party(world: World) -> None:
    world.refuse(
        InvalidArgument,
        world.township_clerk,
        "record_dispute",
        source=DisputeSource.REPORT,
        category="wages",
        parties=0,
    )


# --- mediation and resolution ---------------------------------------------------------


def test_mediation_sessions_are_recorded_until_the_dispute_is_resolved(world: World) -> None:
    dispute_id = record(world)
    for result in (MediationResult.FAILED, MediationResult.PARTIAL, MediationResult.AGREED):
        world.advance(days=1)
        world.do(world.handler, "mediate_dispute", dispute_id=dispute_id, result=result)
    world.advance(hours=1)
    world.do(world.handler, "resolve_dispute", dispute_id=dispute_id, narrative="双方签订调解协议，就地化解")
    resolved = dispute(world, dispute_id)
    assert (resolved.mediations, resolved.status) == (3, DisputeStatus.RESOLVED)
    assert [type(e).__name__ for e in world.events(dispute_id)] == [
        "Recorded",
        "Mediated",
        "Mediated",
        "Mediated",
        "Resolved",
    ]
    assert [e.result for e in world.events(dispute_id)[1:4]] == [  # type: ignore[attr-defined]
        MediationResult.FAILED,
        MediationResult.PARTIAL,
        MediationResult.AGREED,
    ]


def test_a_resolved_dispute_takes_no_more_mediation_resolution_or_escalation(world: World) -> None:
    dispute_id = record(world)
    world.advance(hours=1)
    world.do(world.township_clerk, "resolve_dispute", dispute_id=dispute_id)
    world.refuse(
        InvalidTransition,
        world.township_clerk,
        "mediate_dispute",
        dispute_id=dispute_id,
        result=MediationResult.AGREED,
    )
    world.refuse(InvalidTransition, world.township_clerk, "resolve_dispute", dispute_id=dispute_id)
    world.refuse(
        InvalidTransition,
        world.township_clerk,
        "escalate_dispute",
        dispute_id=dispute_id,
        intake=INTAKE,
        petitioner_id=uuid4(),
    )


def test_the_township_may_act_on_a_dispute_recorded_in_one_of_its_villages(world: World) -> None:
    dispute_id = record(world, "village_head")
    world.advance(hours=1)
    world.do(world.township_clerk, "mediate_dispute", dispute_id=dispute_id, result=MediationResult.AGREED)
    assert dispute(world, dispute_id).mediations == 1


def test_a_dispute_outside_the_actors_territory_is_refused(world: World) -> None:
    dispute_id = record(world)
    world.advance(hours=1)
    world.refuse(
        OutsideJurisdiction,
        world.outsider,
        "mediate_dispute",
        dispute_id=dispute_id,
        result=MediationResult.AGREED,
    )
    world.refuse(OutsideJurisdiction, world.village_head, "resolve_dispute", dispute_id=dispute_id)


def test_nothing_is_recorded_on_a_dispute_before_it_was_recorded(world: World) -> None:
    dispute_id = record(world)
    world.refuse(
        InvalidTime,
        world.township_clerk,
        "mediate_dispute",
        dispute_id=dispute_id,
        result=MediationResult.AGREED,
        ctx_options={"occurred_at": world.clock.now() - timedelta(hours=1)},
    )


# --- escalation ---------------------------------------------------------------------------


def test_an_escalated_dispute_becomes_a_case_whose_registration_names_the_dispute(world: World) -> None:
    dispute_id = record(world, "village_head")
    world.advance(days=2)
    world.do(world.township_clerk, "mediate_dispute", dispute_id=dispute_id, result=MediationResult.FAILED)
    world.advance(days=1)
    petitioner = uuid4()
    result = world.do(
        world.township_clerk,
        "escalate_dispute",
        dispute_id=dispute_id,
        intake=INTAKE,
        petitioner_id=petitioner,
    )
    case_id = result.aggregate_id
    assert len(result.positions) == 2, "the case and the escalation are recorded together"

    registered = world.events(case_id)[0]
    assert isinstance(registered, Case.Registered)
    assert registered.dispute_id == dispute_id
    assert registered.petitioner_id == petitioner
    assert (registered.actor_id, registered.unit_id) == (world.township_clerk, world.township)

    escalated = world.events(dispute_id)[-1]
    assert isinstance(escalated, Dispute.Escalated)
    assert escalated.case_id == case_id
    assert escalated.command_id == registered.command_id

    assert dispute(world, dispute_id).status is DisputeStatus.ESCALATED
    assert dispute(world, dispute_id).case_id == case_id
    case = world.case(case_id)
    assert (case.dispute_id, case.first_receiver_id, case.status) == (
        dispute_id,
        world.township_clerk,
        CaseStatus.REGISTERED,
    )


def test_a_dispute_is_escalated_only_once(world: World) -> None:
    dispute_id = record(world)
    world.advance(hours=1)
    world.do(
        world.township_clerk, "escalate_dispute", dispute_id=dispute_id, intake=INTAKE, petitioner_id=uuid4()
    )
    world.refuse(
        InvalidTransition,
        world.township_clerk,
        "escalate_dispute",
        dispute_id=dispute_id,
        intake=INTAKE,
        petitioner_id=uuid4(),
    )


def test_a_refused_escalation_creates_no_case(world: World) -> None:
    dispute_id = record(world)
    world.advance(hours=1)
    case_id = uuid4()
    world.refuse(
        InvalidArgument,
        world.township_clerk,
        "escalate_dispute",
        dispute_id=dispute_id,
        intake=INTAKE.model_copy(update={"headcount": 0}),
        petitioner_id=uuid4(),
        case_id=case_id,
    )
    assert dispute(world, dispute_id).status is DisputeStatus.OPEN
    assert not world.ledger.recorder.select_events(case_id)
