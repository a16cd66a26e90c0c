"""Ledger.correct_record: corrections are new events citing what they correct; nothing is rewritten."""

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.aggregate import as_corrected
from domain.case import Case, Intake
from domain.errors import (
    ConflictOfInterest,
    InvalidArgument,
    InvalidTime,
    LedgerError,
    NotAllowed,
    PersonalDataInText,
)
from domain.values import BureauLevel, Channel
from tests.support import INTAKE, World

CORRECTED_INTAKE = {"channel": "letter", "category": "land_expropriation"}


def with_action(world: World, kind: str = "visit") -> tuple[UUID, int]:
    """An accepted case with one action recorded by the handler; answers the action's version."""
    case_id = world.accepted()
    world.advance(hours=1)
    version = world.do(world.handler, "record_action", case_id=case_id, kind=kind).version
    return case_id, version


def stored_record(world: World, case_id: UUID, version: int) -> tuple[str, bytes]:
    """The topic and state bytes of one stored event, exactly as the store holds them."""
    records = world.ledger.recorder.select_events(case_id, gt=version - 1, lte=version)
    assert len(records) == 1
    return records[0].topic, bytes(records[0].state)


def correct(world: World, actor: UUID, case_id: UUID, corrects: int, **changes: Any) -> None:
    world.do(
        actor,
        "correct_record",
        narrative="mistyped",
        aggregate_id=case_id,
        corrects=corrects,
        changes=changes,
    )


def refuse_correction(
    world: World, error: type[LedgerError], actor: UUID, case_id: UUID, corrects: int, changes: dict[str, Any]
) -> None:
    world.refuse(error, actor, "correct_record", aggregate_id=case_id, corrects=corrects, changes=changes)


# --- what a correction records -------------------------------------------------------------


def test_a_correction_is_a_new_event_citing_the_corrected_version(world: World) -> None:
    case_id = world.accepted()
    versions_before = len(world.events(case_id))
    world.do(
        world.township_clerk,
        "correct_record",
        narrative="the petition came by letter, not in person",
        aggregate_id=case_id,
        corrects=1,
        changes={"intake": CORRECTED_INTAKE},
    )
    events = world.events(case_id)
    assert len(events) == versions_before + 1
    corrected = events[-1]
    assert type(corrected) is Case.Corrected
    assert (corrected.corrects, corrected.corrected_event) == (1, "Registered")
    assert corrected.narrative == "the petition came by letter, not in person"
    assert corrected.actor_id == world.township_clerk
    assert Intake.model_validate(corrected.changes["intake"]).channel is Channel.LETTER


def test_a_corrected_intake_is_the_intake_of_the_rebuilt_case(world: World) -> None:
    case_id = world.accepted()
    correct(world, world.township_clerk, case_id, 1, intake=CORRECTED_INTAKE)
    intake = world.case(case_id).intake
    assert (intake.channel, intake.category) == (Channel.LETTER, "land_expropriation")


def test_the_corrected_event_is_unchanged_in_the_store(world: World) -> None:
    case_id, version = with_action(world)
    registered_before = stored_record(world, case_id, 1)
    action_before = stored_record(world, case_id, version)
    correct(world, world.township_clerk, case_id, 1, intake=CORRECTED_INTAKE)
    correct(world, world.handler, case_id, version, kind="talk")
    assert stored_record(world, case_id, 1) == registered_before
    assert stored_record(world, case_id, version) == action_before
    registered, action = world.events(case_id)[0], world.events(case_id)[version - 1]
    assert isinstance(registered, Case.Registered)
    assert registered.intake == INTAKE
    assert isinstance(action, Case.ActionRecorded)
    assert action.kind == "visit"


RECORDING = {
    "ActionRecorded": ("record_action", {"kind": "visit"}),
    "HearingHeld": ("hold_hearing", {"days": 2}),
    "LeapfrogRecorded": ("record_leapfrog", {"level": BureauLevel.CITY}),
}


@pytest.mark.parametrize(
    ("event", "changes"),
    [
        ("ActionRecorded", {"kind": "talk"}),
        ("ActionRecorded", {"occurred_at": "2026-03-02T03:30:00+00:00"}),
        ("HearingHeld", {"occurred_at": "2026-03-02T03:30:00+00:00"}),
        ("LeapfrogRecorded", {"level": "provincial"}),
    ],
)
def test_correctable_fields_of_handling_events_can_be_corrected(
    world: World, event: str, changes: dict[str, Any]
) -> None:
    case_id = world.accepted()
    world.advance(hours=1)
    command, arguments = RECORDING[event]
    version = world.do(world.handler, command, case_id=case_id, **arguments).version
    assert type(world.events(case_id)[-1]).__name__ == event
    correct(world, world.handler, case_id, version, **changes)
    corrected = world.events(case_id)[-1]
    assert type(corrected) is Case.Corrected
    assert (corrected.corrected_event, corrected.corrects) == (event, version)
    assert set(corrected.changes) == set(changes)


def test_the_history_as_known_today_holds_each_event_with_its_corrections_and_no_correction(
    world: World,
) -> None:
    case_id, version = with_action(world)
    really = world.clock.now() - timedelta(minutes=30)
    correct(world, world.handler, case_id, version, kind="talk")
    correct(world, world.handler, case_id, version, occurred_at=really.isoformat())
    stored = world.events(case_id)
    known = as_corrected(stored)
    assert [e.originator_version for e in known] == [e.originator_version for e in stored[:version]]
    action = known[version - 1]
    assert isinstance(action, Case.ActionRecorded)
    assert (action.kind, action.occurred_at) == ("talk", really)  # both corrections, in order
    assert (action.actor_id, action.timestamp) == (
        stored[version - 1].actor_id,
        stored[version - 1].timestamp,
    )
    assert known[: version - 1] == stored[: version - 1]


# --- what may be corrected -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "changes"),
    [
        (1, {"petitioner_id": str(uuid4())}),  # Registered: only the intake
        (1, {"unit_id": str(uuid4())}),
        (1, {"forward_due": "2026-12-31"}),
        (2, {"reply_due": "2026-12-31"}),  # Accepted: nothing
        (3, {"actor_id": str(uuid4())}),  # ActionRecorded: kind and occurred_at only
        (3, {"narrative": "rewritten"}),
    ],
)
def test_fields_outside_the_correctable_set_are_refused(
    world: World, version: int, changes: dict[str, Any]
) -> None:
    case_id, _ = with_action(world)
    refuse_correction(world, InvalidArgument, world.admin, case_id, version, changes)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("intake", {"channel": "pigeon", "category": "x"}),
        ("intake", {"channel": "letter", "category": "  "}),
        ("occurred_at", "yesterday"),
    ],
)
def test_a_correction_to_a_malformed_value_is_refused(world: World, field: str, value: Any) -> None:
    case_id, version = with_action(world)
    corrects = 1 if field == "intake" else version
    refuse_correction(world, InvalidArgument, world.admin, case_id, corrects, {field: value})


def test_a_corrected_action_kind_must_still_be_a_lower_case_slug(world: World) -> None:
    case_id, version = with_action(world)
    refuse_correction(
        world, InvalidArgument, world.handler, case_id, version, {"kind": "Tea With The Family!"}
    )


def test_a_corrected_occurred_at_cannot_be_in_the_future(world: World) -> None:
    case_id, version = with_action(world)
    future = (world.clock.now() + timedelta(days=3)).isoformat()
    refuse_correction(world, InvalidTime, world.handler, case_id, version, {"occurred_at": future})


@pytest.mark.parametrize("version", [0, 4])
def test_a_correction_of_a_version_that_does_not_exist_is_refused(world: World, version: int) -> None:
    case_id, _ = with_action(world)
    refuse_correction(world, InvalidArgument, world.admin, case_id, version, {"kind": "talk"})


def test_an_administrator_of_a_unit_the_petition_accuses_cannot_correct_its_records(world: World) -> None:
    case_id = world.register(world.county_clerk, accused_unit_ids=frozenset({world.city}))
    refuse_correction(world, ConflictOfInterest, world.admin, case_id, 1, {"intake": CORRECTED_INTAKE})


def test_a_corrected_time_can_be_neither_after_the_event_was_recorded_nor_before_the_registration(
    world: World,
) -> None:
    case_id, version = with_action(world)
    recorded = world.events(case_id)[version - 1].timestamp
    registered = world.events(case_id)[0].occurred_at
    world.advance(hours=2)
    for moment in (recorded + timedelta(seconds=1), registered - timedelta(seconds=1)):
        refuse_correction(
            world, InvalidTime, world.handler, case_id, version, {"occurred_at": moment.isoformat()}
        )


def test_a_correction_must_change_something(world: World) -> None:
    case_id, version = with_action(world)
    refuse_correction(world, InvalidArgument, world.handler, case_id, version, {})


def test_a_correction_reason_must_not_carry_personal_data(world: World) -> None:
    case_id, version = with_action(world)
    world.refuse(
        PersonalDataInText,
        world.handler,
        "correct_record",
        narrative="petitioner called from 13912345678",
        aggregate_id=case_id,
        corrects=version,
        changes={"kind": "talk"},
    )


# --- who may correct -------------------------------------------------------------------------


@pytest.mark.parametrize("actor", ["township_head", "township_clerk", "inspector"])
def test_only_the_recorder_or_an_administrator_may_correct(world: World, actor: str) -> None:
    case_id, version = with_action(world)
    refuse_correction(world, NotAllowed, getattr(world, actor), case_id, version, {"kind": "talk"})


def test_an_administrator_may_correct_what_another_cadre_recorded(world: World) -> None:
    case_id, version = with_action(world)
    correct(world, world.admin, case_id, version, kind="mediation")
    corrected = world.events(case_id)[-1]
    assert type(corrected) is Case.Corrected
    assert (corrected.actor_id, corrected.changes) == (world.admin, {"kind": "mediation"})
