"""Responsibility tracing (责任倒查): inspectors' inquiries, findings that cite the record, sanctions."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.errors import InvalidArgument, InvalidTransition, NotAllowed, NotFound, RoleRequired
from domain.inquiry import Inquiry
from domain.values import EventRef, Obligation, Role, SanctionKind, UnitKind, UnitLevel
from tests.support import World


def inquiry(world: World, inquiry_id: UUID) -> Inquiry:
    found: Inquiry = world.ledger.repository.get(inquiry_id)
    return found


def open_on(world: World, case_id: UUID, *cadres: UUID) -> UUID:
    return world.do(
        world.inspector, "open_inquiry", case_ids=frozenset({case_id}), cadre_ids=frozenset(cadres)
    ).aggregate_id


def find(world: World, inquiry_id: UUID, cadre_id: UUID, case_id: UUID | None, *proof: EventRef) -> None:
    world.do(
        world.inspector,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=cadre_id,
        obligation=Obligation.DELAY,
        proof=proof,
        case_id=case_id,
    )


@pytest.fixture
def case_id(world: World) -> UUID:
    """A case accepted by the township clerk (version 2 is the acceptance)."""
    return world.accepted()


# --- opening ------------------------------------------------------------------------------


def test_an_inspector_opens_an_inquiry_into_cases_and_cadres(world: World, case_id: UUID) -> None:
    world.advance(days=1)
    inquiry_id = open_on(world, case_id, world.township_clerk)
    (opened,) = world.events(inquiry_id)
    assert isinstance(opened, Inquiry.Opened)
    assert (opened.case_ids, opened.cadre_ids) == ((case_id,), (world.township_clerk,))
    assert (opened.actor_id, opened.actor_unit_id) == (world.inspector, world.discipline)


@pytest.mark.parametrize("actor", ["county_head", "city_head", "township_clerk", "reexaminer"])
def test_only_inspectors_open_inquiries(world: World, case_id: UUID, actor: str) -> None:
    world.refuse(RoleRequired, world.cadres[actor], "open_inquiry", case_ids=frozenset({case_id}))


def test_an_inquiry_looks_into_at_least_one_case_or_cadre(world: World) -> None:
    world.refuse(InvalidArgument, world.inspector, "open_inquiry")


def test_an_inquiry_into_an_unknown_case_is_refused(world: World) -> None:
    world.refuse(NotFound, world.inspector, "open_inquiry", case_ids=frozenset({uuid4()}))


def county_inspector(world: World) -> UUID:
    """An inspector of a county discipline unit: their jurisdiction is the county, not the city."""
    county_discipline = world.do(
        world.admin,
        "register_unit",
        name="郸城县纪委监委",
        level=UnitLevel.COUNTY,
        kind=UnitKind.DISCIPLINE,
        parent_id=world.county,
    ).aggregate_id
    return world.do(
        world.admin,
        "register_cadre",
        name="县纪检员",
        unit_id=county_discipline,
        position="监察员",
        roles=frozenset({Role.INSPECTOR}),
    ).aggregate_id


def test_an_inspector_looks_only_within_their_jurisdiction(world: World) -> None:
    county = county_inspector(world)
    henan_case = world.register(world.henan_clerk)
    world.advance(hours=1)
    world.refuse(NotAllowed, county, "open_inquiry", case_ids=frozenset({henan_case}))
    world.refuse(NotAllowed, county, "open_inquiry", cadre_ids=frozenset({world.henan_clerk}))
    inquiry_id = world.do(county, "open_inquiry", cadre_ids=frozenset({world.handler})).aggregate_id
    world.advance(hours=1)
    proof = (EventRef(aggregate_id=henan_case, version=1),)
    for outside in ({"cadre_id": world.henan_clerk}, {"cadre_id": world.handler, "case_id": henan_case}):
        world.refuse(NotAllowed, county, "record_finding", inquiry_id=inquiry_id,
                     obligation=Obligation.DELAY, proof=proof, **outside)  # fmt: skip


def test_an_inquiry_may_look_into_a_cadre_who_has_since_retired(world: World, case_id: UUID) -> None:
    """Accountability outlives the posting: responsibility tracing often comes after a cadre has left."""
    world.advance(days=1)
    world.do(world.admin, "retire_cadre", cadre_id=world.township_clerk)
    world.advance(days=1)
    inquiry_id = open_on(world, case_id, world.township_clerk)
    assert inquiry(world, inquiry_id).cadre_ids == {world.township_clerk}


# --- findings -----------------------------------------------------------------------------


def test_a_finding_cites_the_events_that_prove_it(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id)
    world.advance(hours=1)
    proof = (EventRef(aggregate_id=case_id, version=1), EventRef(aggregate_id=case_id, version=2))
    find(world, inquiry_id, world.township_clerk, case_id, *proof)
    finding = world.events(inquiry_id)[-1]
    assert isinstance(finding, Inquiry.FindingRecorded)
    assert (finding.finding_no, finding.cadre_id, finding.case_id) == (1, world.township_clerk, case_id)
    assert finding.obligation is Obligation.DELAY
    assert finding.proof == proof
    cited = world.events(case_id)[1]
    assert cited.actor_id == finding.cadre_id, "the cited acceptance was recorded by the cadre found at fault"


@pytest.mark.parametrize(
    "proof",
    [
        pytest.param(
            lambda case_id: (EventRef(aggregate_id=case_id, version=99),), id="a-version-not-reached"
        ),
        pytest.param(lambda case_id: (EventRef(aggregate_id=uuid4(), version=1),), id="an-unknown-record"),
        pytest.param(
            lambda case_id: (
                EventRef(aggregate_id=case_id, version=1),
                EventRef(aggregate_id=case_id, version=3),
            ),
            id="one-of-several-missing",
        ),
        pytest.param(lambda case_id: (), id="no-proof"),
    ],
)
def test_a_finding_must_cite_events_that_exist(world: World, case_id: UUID, proof: object) -> None:
    inquiry_id = open_on(world, case_id)
    world.advance(hours=1)
    world.refuse(
        InvalidArgument,
        world.inspector,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=world.township_clerk,
        obligation=Obligation.PERFUNCTORY,
        proof=proof(case_id),  # type: ignore[operator]
        case_id=case_id,
    )


def test_a_finding_concerns_a_cadre_or_case_under_the_inquiry(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id)
    other_case = world.accepted()
    world.advance(hours=1)
    ref = EventRef(aggregate_id=case_id, version=2)
    world.refuse(
        InvalidArgument,
        world.inspector,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=world.township_clerk,
        obligation=Obligation.DELAY,
        proof=(ref,),
    )
    world.refuse(
        InvalidArgument,
        world.inspector,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=world.township_clerk,
        obligation=Obligation.DELAY,
        proof=(ref,),
        case_id=other_case,
    )


def test_a_finding_names_a_registered_cadre(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id)
    world.advance(hours=1)
    world.refuse(
        NotFound,
        world.inspector,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=uuid4(),
        obligation=Obligation.DELAY,
        proof=(EventRef(aggregate_id=case_id, version=2),),
        case_id=case_id,
    )


def test_only_inspectors_record_findings(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id)
    world.advance(hours=1)
    world.refuse(
        RoleRequired,
        world.county_head,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=world.township_clerk,
        obligation=Obligation.DELAY,
        proof=(EventRef(aggregate_id=case_id, version=2),),
        case_id=case_id,
    )


# --- sanctions ----------------------------------------------------------------------------


def test_a_sanction_references_a_finding_and_its_cadre(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id, world.handler)
    world.advance(hours=1)
    find(world, inquiry_id, world.township_clerk, case_id, EventRef(aggregate_id=case_id, version=2))
    find(world, inquiry_id, world.handler, None, EventRef(aggregate_id=case_id, version=1))
    world.advance(hours=1)
    world.do(
        world.inspector,
        "record_sanction",
        inquiry_id=inquiry_id,
        finding_no=2,
        kind=SanctionKind.ADMONISHMENT,
    )
    world.do(
        world.inspector, "record_sanction", inquiry_id=inquiry_id, finding_no=1, kind=SanctionKind.NOTICE
    )
    sanctions = [e for e in world.events(inquiry_id) if isinstance(e, Inquiry.SanctionRecorded)]
    assert [(s.sanction_no, s.finding_no, s.cadre_id, s.kind) for s in sanctions] == [
        (1, 2, world.handler, SanctionKind.ADMONISHMENT),
        (2, 1, world.township_clerk, SanctionKind.NOTICE),
    ]


@pytest.mark.parametrize("finding_no", [0, 2, -1])
def test_a_sanction_for_a_finding_that_does_not_exist_is_refused(
    world: World, case_id: UUID, finding_no: int
) -> None:
    inquiry_id = open_on(world, case_id)
    world.advance(hours=1)
    find(world, inquiry_id, world.township_clerk, case_id, EventRef(aggregate_id=case_id, version=2))
    world.refuse(
        InvalidArgument,
        world.inspector,
        "record_sanction",
        inquiry_id=inquiry_id,
        finding_no=finding_no,
        kind=SanctionKind.WARNING,
    )


def test_only_inspectors_record_sanctions(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id)
    world.advance(hours=1)
    find(world, inquiry_id, world.township_clerk, case_id, EventRef(aggregate_id=case_id, version=2))
    world.refuse(
        RoleRequired,
        world.county_head,
        "record_sanction",
        inquiry_id=inquiry_id,
        finding_no=1,
        kind=SanctionKind.WARNING,
    )


# --- closing ------------------------------------------------------------------------------


def test_a_closed_inquiry_refuses_findings_sanctions_and_closing_again(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id)
    world.advance(hours=1)
    find(world, inquiry_id, world.township_clerk, case_id, EventRef(aggregate_id=case_id, version=2))
    world.do(world.inspector, "close_inquiry", inquiry_id=inquiry_id, narrative="结论：受理迟延，予以通报")
    assert inquiry(world, inquiry_id).closed
    world.refuse(
        InvalidTransition,
        world.inspector,
        "record_finding",
        inquiry_id=inquiry_id,
        cadre_id=world.township_clerk,
        obligation=Obligation.DELAY,
        proof=(EventRef(aggregate_id=case_id, version=1),),
        case_id=case_id,
    )
    world.refuse(
        InvalidTransition,
        world.inspector,
        "record_sanction",
        inquiry_id=inquiry_id,
        finding_no=1,
        kind=SanctionKind.NOTICE,
    )
    world.refuse(InvalidTransition, world.inspector, "close_inquiry", inquiry_id=inquiry_id)


def test_only_inspectors_close_inquiries(world: World, case_id: UUID) -> None:
    inquiry_id = open_on(world, case_id)
    world.refuse(RoleRequired, world.county_head, "close_inquiry", inquiry_id=inquiry_id)


def test_a_credential_limited_to_units_narrows_where_an_inspector_reaches(
    world: World, case_id: UUID
) -> None:
    elsewhere = world.register(world.cadres["henan_clerk"])
    county = frozenset({world.county})
    world.refuse(
        NotAllowed,
        world.inspector,
        "open_inquiry",
        case_ids=frozenset({elsewhere}),
        ctx_options={"within": county},
    )
    world.do(world.inspector, "open_inquiry", case_ids=frozenset({case_id}), ctx_options={"within": county})
    world.do(world.inspector, "open_inquiry", case_ids=frozenset({elsewhere}))  # unlimited: the whole city


def test_an_inspector_sanctions_and_closes_only_within_their_jurisdiction(
    world: World, case_id: UUID
) -> None:
    county = county_inspector(world)
    inquiry_id = open_on(world, case_id, world.handler, world.henan_clerk)
    world.advance(hours=1)
    find(world, inquiry_id, world.henan_clerk, None, EventRef(aggregate_id=case_id, version=2))
    world.advance(hours=1)
    world.refuse(
        NotAllowed, county, "record_sanction", inquiry_id=inquiry_id, finding_no=1, kind=SanctionKind.NOTICE
    )
    world.refuse(NotAllowed, county, "close_inquiry", inquiry_id=inquiry_id)
    world.do(
        world.inspector, "record_sanction", inquiry_id=inquiry_id, finding_no=1, kind=SanctionKind.NOTICE
    )
    world.do(world.inspector, "close_inquiry", inquiry_id=inquiry_id)
