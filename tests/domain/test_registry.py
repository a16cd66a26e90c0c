"""The registry: one establishment, a hierarchy of units, cadres whose postings change over time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from domain.errors import AlreadyExists, InvalidArgument, InvalidTransition, NotActive, RoleRequired
from domain.registry import Cadre, Unit
from domain.values import Role, UnitKind, UnitLevel
from tests.support import World


def unit(world: World, unit_id: UUID) -> Unit:
    found: Unit = world.ledger.repository.get(unit_id)
    return found


def cadre(world: World, cadre_id: UUID) -> Cadre:
    found: Cadre = world.ledger.repository.get(cadre_id)
    return found


def register_unit(
    world: World, name: str, level: UnitLevel, kind: UnitKind, parent: UUID, **extra: Any
) -> UUID:
    return world.do(
        world.admin, "register_unit", name=name, level=level, kind=kind, parent_id=parent, **extra
    ).aggregate_id


# --- establishment --------------------------------------------------------------------


def test_a_ledger_is_established_only_once(world: World) -> None:
    world.refuse(
        AlreadyExists,
        world.admin,
        "establish",
        root_unit_name="另一个市",
        root_level=UnitLevel.CITY,
        jurisdiction="CN",
        administrator_name="管理员",
        administrator_position="系统管理员",
    )


def test_the_first_administrator_holds_every_role_in_the_root_unit(world: World) -> None:
    admin = cadre(world, world.admin)
    assert admin.roles == frozenset(Role)
    assert admin.posting.unit_id == world.city
    root = unit(world, world.city)
    assert (root.parent_id, root.jurisdiction, root.kind) == (None, "CN", UnitKind.GOVERNMENT)


# --- units --------------------------------------------------------------------------


def test_a_unit_inherits_its_parents_jurisdiction(world: World) -> None:
    assert unit(world, world.henan_county).jurisdiction == "CN-HA"
    assert unit(world, world.henan_township).jurisdiction == "CN-HA"
    assert unit(world, world.township).jurisdiction == "CN"
    village = register_unit(world, "西村", UnitLevel.VILLAGE, UnitKind.GOVERNMENT, world.henan_township)
    assert unit(world, village).jurisdiction == "CN-HA"


def test_a_unit_may_name_its_own_more_specific_jurisdiction(world: World) -> None:
    county = register_unit(
        world, "商水县", UnitLevel.COUNTY, UnitKind.GOVERNMENT, world.city, jurisdiction="CN-HA-ZK"
    )
    assert unit(world, county).jurisdiction == "CN-HA-ZK"


def test_a_malformed_jurisdiction_is_refused(world: World) -> None:
    world.refuse(
        InvalidArgument,
        world.admin,
        "register_unit",
        name="某县",
        level=UnitLevel.COUNTY,
        kind=UnitKind.GOVERNMENT,
        parent_id=world.city,
        jurisdiction="henan",
    )


def test_a_unit_records_its_path_from_the_root(world: World) -> None:
    village = unit(world, world.village)
    assert village.path == (world.city, world.county, world.township, world.village)
    assert village.parent_id == world.township


@pytest.mark.parametrize(
    ("level", "kind", "parent"),
    [
        pytest.param(UnitLevel.TOWNSHIP, UnitKind.GOVERNMENT, "village", id="township-under-village"),
        pytest.param(UnitLevel.COUNTY, UnitKind.GOVERNMENT, "township", id="county-under-township"),
        pytest.param(UnitLevel.COUNTY, UnitKind.GOVERNMENT, "county", id="county-under-county"),
        pytest.param(UnitLevel.TOWNSHIP, UnitKind.GOVERNMENT, "county_bureau", id="government-under-bureau"),
        pytest.param(UnitLevel.COUNTY, UnitKind.PETITION_BUREAU, "city", id="county-bureau-under-city"),
        pytest.param(UnitLevel.CITY, UnitKind.DEPARTMENT, "county", id="city-department-under-county"),
        pytest.param(UnitLevel.COUNTY, UnitKind.DISCIPLINE, "county_bureau", id="body-under-body"),
        pytest.param(UnitLevel.VILLAGE, UnitKind.DEPARTMENT, "village", id="village-department"),
    ],
)
def test_units_must_fit_the_hierarchy(world: World, level: UnitLevel, kind: UnitKind, parent: str) -> None:
    world.refuse(
        InvalidArgument,
        world.admin,
        "register_unit",
        name="不合规单位",
        level=level,
        kind=kind,
        parent_id=world.units[parent],
    )


def test_bureaus_attach_to_the_government_of_their_own_level(world: World) -> None:
    bureau = register_unit(world, "汲冢镇综治中心", UnitLevel.TOWNSHIP, UnitKind.DEPARTMENT, world.township)
    registered = unit(world, bureau)
    assert registered.parent_id == world.township
    assert registered.scope_id == world.township, "an attached body acts on its government's territory"
    assert unit(world, world.township).scope_id == world.township


def test_a_township_may_sit_directly_under_a_city(world: World) -> None:
    """As in cities without counties (Dongguan, Zhongshan), whose towns answer to the city itself."""
    town = register_unit(world, "市直镇", UnitLevel.TOWNSHIP, UnitKind.GOVERNMENT, world.city)
    assert unit(world, town).path == (world.city, town)


def test_a_unit_id_is_taken_only_once(world: World) -> None:
    world.refuse(
        AlreadyExists,
        world.admin,
        "register_unit",
        name="重复的镇",
        level=UnitLevel.TOWNSHIP,
        kind=UnitKind.GOVERNMENT,
        parent_id=world.county,
        unit_id=world.township,
    )


# --- who may change the registry ------------------------------------------------------


@pytest.mark.parametrize("actor", ["township_head", "county_head", "inspector", "city_bureau_head"])
def test_only_administrators_register_units(world: World, actor: str) -> None:
    world.refuse(
        RoleRequired,
        world.cadres[actor],
        "register_unit",
        name="某村",
        level=UnitLevel.VILLAGE,
        kind=UnitKind.GOVERNMENT,
        parent_id=world.township,
    )


def test_only_administrators_register_cadres(world: World) -> None:
    world.refuse(
        RoleRequired,
        world.township_head,
        "register_cadre",
        name="新干事",
        unit_id=world.township,
        position="干事",
    )


def test_only_administrators_transfer_cadres(world: World) -> None:
    world.refuse(
        RoleRequired,
        world.county_head,
        "transfer_cadre",
        cadre_id=world.handler,
        unit_id=world.county_dept,
        position="科员",
    )


def test_only_administrators_retire_cadres_or_change_roles(world: World) -> None:
    world.refuse(RoleRequired, world.county_head, "retire_cadre", cadre_id=world.handler)
    world.refuse(
        RoleRequired,
        world.county_head,
        "change_roles",
        cadre_id=world.handler,
        roles=frozenset({Role.INSPECTOR}),
    )


def test_a_cadre_given_the_administrator_role_may_then_register(world: World) -> None:
    world.do(world.admin, "change_roles", cadre_id=world.county_clerk, roles=frozenset({Role.ADMINISTRATOR}))
    created = world.do(
        world.county_clerk, "register_cadre", name="新干事", unit_id=world.township, position="干事"
    ).aggregate_id
    assert cadre(world, created).posting.unit_id == world.township


# --- postings over time -------------------------------------------------------------------


def test_a_transferred_cadres_events_carry_the_unit_they_served_in_at_the_time(world: World) -> None:
    case_id = world.accepted()
    world.advance(hours=1)
    before_transfer = world.clock.now()
    world.do(world.handler, "record_action", case_id=case_id, kind="visit")
    world.advance(days=1)
    world.do(
        world.admin, "transfer_cadre", cadre_id=world.handler, unit_id=world.county_dept, position="科员"
    )
    transferred_at = world.clock.now()
    world.advance(days=1)
    # Recorded late, but done before the transfer: stamped with the old unit.
    world.do(
        world.handler,
        "record_action",
        case_id=case_id,
        kind="talk",
        ctx_options={"occurred_at": transferred_at - timedelta(hours=2)},
    )
    # Done after the transfer.
    world.do(world.handler, "record_action", case_id=case_id, kind="coordination")
    actions = [e for e in world.events(case_id) if type(e).__name__ == "ActionRecorded"]
    assert [(e.kind, e.actor_unit_id) for e in actions] == [  # type: ignore[attr-defined]
        ("visit", world.township),
        ("talk", world.township),
        ("coordination", world.county_dept),
    ]
    assert actions[0].occurred_at == before_transfer
    posted = cadre(world, world.handler)
    assert posted.posting_at(before_transfer).unit_id == world.township  # type: ignore[union-attr]
    assert posted.posting_at(world.clock.now()).unit_id == world.county_dept  # type: ignore[union-attr]


def test_a_cadre_registered_later_cannot_act_before_their_first_posting(world: World) -> None:
    registered_at = world.clock.now()
    newcomer = world.do(
        world.admin, "register_cadre", name="新干事", unit_id=world.township, position="干事"
    ).aggregate_id
    case_id = world.accepted()
    world.refuse(
        NotActive,
        newcomer,
        "record_action",
        case_id=case_id,
        kind="visit",
        ctx_options={"occurred_at": registered_at - timedelta(minutes=1)},
    )


def test_a_transfer_to_the_same_posting_is_refused(world: World) -> None:
    world.refuse(
        InvalidArgument,
        world.admin,
        "transfer_cadre",
        cadre_id=world.handler,
        unit_id=world.township,
        position="干事",
    )


# --- heads of units ------------------------------------------------------------------------


def test_registering_a_principal_leader_makes_them_the_units_head(world: World) -> None:
    assert unit(world, world.township).head_id == world.township_head
    assert unit(world, world.county).head_id == world.county_head
    assert unit(world, world.county_bureau).head_id is None
    head = world.do(
        world.admin,
        "register_cadre",
        name="县信访局局长",
        unit_id=world.county_bureau,
        position="局长",
        is_principal=True,
    )
    assert unit(world, world.county_bureau).head_id == head.aggregate_id
    assert cadre(world, head.aggregate_id).posting.is_leader, "a principal leader is a leader"
    assert len(head.positions) == 2, "the cadre and the unit's head change in one command"


def test_a_unit_has_one_head_at_a_time(world: World) -> None:
    world.refuse(
        InvalidTransition,
        world.admin,
        "register_cadre",
        name="第二个书记",
        unit_id=world.township,
        position="党委书记",
        is_principal=True,
    )


def test_transferring_the_head_away_vacates_the_head(world: World) -> None:
    world.advance(hours=1)
    world.do(
        world.admin, "transfer_cadre", cadre_id=world.township_head, unit_id=world.county, position="副县长"
    )
    assert unit(world, world.township).head_id is None
    vacated = [e for e in world.events(world.township) if type(e).__name__ == "HeadVacated"]
    assert [e.cadre_id for e in vacated] == [world.township_head]  # type: ignore[attr-defined]
    world.advance(hours=1)
    world.do(
        world.admin,
        "transfer_cadre",
        cadre_id=world.township_leader,
        unit_id=world.township,
        position="党委书记",
        is_principal=True,
    )
    assert unit(world, world.township).head_id == world.township_leader


def test_a_head_transferred_to_another_units_headship_moves_the_head(world: World) -> None:
    world.advance(hours=1)
    world.do(
        world.admin,
        "transfer_cadre",
        cadre_id=world.township_head,
        unit_id=world.county_bureau,
        position="局长",
        is_principal=True,
    )
    assert unit(world, world.township).head_id is None
    assert unit(world, world.county_bureau).head_id == world.township_head


def test_retiring_the_head_vacates_the_head(world: World) -> None:
    world.advance(hours=1)
    world.do(world.admin, "retire_cadre", cadre_id=world.village_head)
    assert unit(world, world.village).head_id is None


# --- retirement ---------------------------------------------------------------------------


def test_a_retired_cadre_cannot_act(world: World) -> None:
    case_id = world.accepted()
    world.advance(hours=1)
    world.do(world.admin, "retire_cadre", cadre_id=world.handler)
    world.advance(hours=1)
    world.refuse(NotActive, world.handler, "record_action", case_id=case_id, kind="visit")


def test_a_retired_administrator_cannot_administer(world: World) -> None:
    world.do(world.admin, "change_roles", cadre_id=world.county_clerk, roles=frozenset({Role.ADMINISTRATOR}))
    world.advance(hours=1)
    world.do(world.admin, "retire_cadre", cadre_id=world.county_clerk)
    world.advance(hours=1)
    world.refuse(
        NotActive,
        world.county_clerk,
        "register_cadre",
        name="新干事",
        unit_id=world.township,
        position="干事",
    )


def test_a_retired_cadre_cannot_be_transferred_or_retired_again(world: World) -> None:
    world.advance(hours=1)
    world.do(world.admin, "retire_cadre", cadre_id=world.handler)
    world.advance(hours=1)
    world.refuse(InvalidTransition, world.admin, "retire_cadre", cadre_id=world.handler)
    world.refuse(
        InvalidTransition,
        world.admin,
        "transfer_cadre",
        cadre_id=world.handler,
        unit_id=world.county_dept,
        position="科员",
    )


# --- renaming -------------------------------------------------------------------------


def test_renaming_a_unit_keeps_its_history_and_shows_the_new_name(world: World) -> None:
    world.do(world.admin, "rename_unit", unit_id=world.township, name="汲冢镇人民政府")
    renamed = unit(world, world.township)
    assert renamed.name == "汲冢镇人民政府"
    first = next(iter(world.ledger.events.get(world.township)))
    assert first.name == "汲冢镇"  # type: ignore[attr-defined]


def test_renaming_to_the_same_name_records_nothing(world: World) -> None:
    world.refuse(InvalidArgument, world.admin, "rename_unit", unit_id=world.township, name="汲冢镇")


def test_only_administrators_rename_units(world: World) -> None:
    world.refuse(RoleRequired, world.township_head, "rename_unit", unit_id=world.township, name="新名")
