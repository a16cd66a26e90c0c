"""Events go to the store as orjson JSON and come back equal; old class versions are upcast."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

import orjson
import pytest
from eventsourcing.persistence import Recording, StoredEvent
from eventsourcing.utils import get_topic

from domain.case import Case, Intake
from domain.clock import ManualClock
from domain.events import LedgerEvent
from domain.ledger import Ledger
from domain.storage.mapper import OrjsonTranscoder, PydanticMapper
from domain.values import (
    BureauLevel,
    Campaign,
    Channel,
    ClosureKind,
    DeclineReason,
    Evidence,
    KeyArea,
    Reception,
    ReplyOutcome,
    ReviewLevel,
    ReviewOutcome,
    Satisfaction,
    Source,
)
from tests.support import World, build_world

ENVELOPE = {"originator_id", "originator_version"}


class RecordingLedger(Ledger):
    """Keeps every event exactly as the aggregates produced it, before the store saw it."""

    name = Ledger.name  # the library names tables after the application: share the ledger's

    def __init__(self, database_url: str, *, clock: ManualClock) -> None:
        super().__init__(database_url, clock=clock)
        self.originals: list[LedgerEvent] = []

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        self.originals.extend(r.domain_event for r in recordings)  # type: ignore[misc]


@pytest.fixture
def recording(database_url: str, clock: ManualClock) -> Iterator[World]:
    app = RecordingLedger(database_url, clock=clock)
    try:
        yield build_world(app, clock)
    finally:
        app.close()


def originals(world: World) -> list[LedgerEvent]:
    assert isinstance(world.ledger, RecordingLedger)
    return world.ledger.originals


def full_lifecycle(world: World) -> UUID:
    """A case that goes through every step of its life, with evidence and Chinese text; returns its id."""
    evidence = (Evidence(sha256="a" * 64, media_type="application/pdf", name="受理告知书.pdf"),)
    intake = Intake(
        channel=Channel.VISIT,
        reception=Reception.SCHEDULED,
        category="land_compensation",
        campaign=Campaign(key_area=KeyArea.LAND_EXPROPRIATION, key_group=True),
        source=Source(assigned_by=BureauLevel.CITY, reference="周信交〔2026〕12号", due=date(2026, 5, 30)),
        headcount=3,
    )
    steps: list[tuple[UUID, str, dict[str, Any]]] = [
        (world.county_clerk, "forward_case", {"to_unit_id": world.county_dept}),
        (world.county_clerk, "assign_case", {"to_unit_id": world.township, "due": date(2026, 5, 15)}),
        (world.township_clerk, "object_to_assignment", {"narrative": "本镇认为应由县自然资源局办理"}),
        (world.township_clerk, "accept_case", {"ctx_options": {"evidence": evidence}}),
        (world.township_clerk, "appoint_owning_leader", {"leader_id": world.township_leader}),
        (world.township_clerk, "assign_responsibility", {"cadre_id": world.handler}),
        (world.township_clerk, "assign_handler", {"handler_id": world.handler}),
        (world.handler, "record_action", {"kind": "visit", "narrative": "入户走访，了解补偿争议"}),
        (world.handler, "hold_hearing", {"days": 2}),
        (world.township_head, "extend_deadline", {"days": 10}),
        (world.handler, "issue_reply", {"outcome": ReplyOutcome.EXPLAIN}),
        (world.handler, "rate_satisfaction", {"rating": Satisfaction.UNSATISFIED}),
        (world.township_clerk, "request_review", {"level": ReviewLevel.FIRST}),
        (world.county_head, "decide_review", {"level": ReviewLevel.FIRST, "outcome": ReviewOutcome.UPHELD}),
        (world.handler, "close_case", {"closure": ClosureKind.SUBSTANTIVE}),
        (world.handler, "end_petition", {}),
        (world.reexaminer, "reopen_case", {"narrative": "回头看：补偿标准有误"}),
        (world.township_clerk, "record_leapfrog", {"level": BureauLevel.CITY}),
        (world.county_clerk, "issue_supervision", {"due": date(2026, 6, 30)}),
        (world.handler, "answer_supervision", {"order_no": 1}),
    ]
    case_id = world.register(world.county_clerk, intake=intake)
    meeting_id = world.do(
        world.township_head, "convene_meeting", unit_id=world.township, chair_id=world.township_head
    )
    for number, (actor, command, kwargs) in enumerate(steps):
        world.advance(hours=5)
        world.do(actor, command, case_id=case_id, **kwargs)
        if number == 6:
            world.advance(hours=1)
            world.do(
                world.township_head,
                "study_case",
                meeting_id=meeting_id.aggregate_id,
                case_id=case_id,
                owning_leader_id=world.township_head,
                responsible_cadre_id=world.handler,
                due=date(2026, 4, 30),
            )
    action_version = next(
        e.originator_version for e in world.events(case_id) if type(e).__name__ == "ActionRecorded"
    )
    world.do(
        world.handler,
        "correct_record",
        aggregate_id=case_id,
        corrects=action_version,
        changes={"kind": "talk"},
        narrative="记录有误：是约谈不是走访",
    )
    declined = world.register()
    world.advance(hours=1)
    world.do(world.township_clerk, "decline_case", case_id=declined, reason=DeclineReason.OUTSIDE_SCOPE)
    return case_id


def test_every_event_of_a_full_case_lifecycle_comes_back_from_the_store_equal(recording: World) -> None:
    case_id = full_lifecycle(recording)
    case_kinds = {type(e) for e in originals(recording) if isinstance(e, Case.Event)}
    all_case_kinds = {v for k, v in vars(Case).items() if isinstance(v, type) and issubclass(v, LedgerEvent)}
    assert case_kinds == all_case_kinds - {Case.Event}, (
        "the lifecycle should produce every kind of case event"
    )
    stored = {(e.originator_id, e.originator_version): e for e in recording.ledger.events.get(case_id)}
    assert len(stored) == recording.case(case_id).version
    for original in originals(recording):
        back = next(
            iter(recording.ledger.events.get(original.originator_id, gt=original.originator_version - 1))
        )
        assert type(back) is type(original)
        assert back.model_dump() == original.model_dump(), type(original).__name__
        assert back == original


def test_stored_state_is_orjson_json_without_the_envelope(recording: World) -> None:
    full_lifecycle(recording)
    recorder = recording.ledger.recorder
    for original in originals(recording):
        (stored,) = recorder.select_events(
            original.originator_id, gt=original.originator_version - 1, lte=original.originator_version
        )
        assert stored.topic == get_topic(type(original))
        state = orjson.loads(stored.state)
        assert isinstance(state, dict)
        assert not ENVELOPE & set(state), "originator id and version are columns, not payload"
        assert state == original.model_dump(mode="json", exclude=ENVELOPE)
        assert bytes(stored.state) == orjson.dumps(original.model_dump(mode="json", exclude=ENVELOPE))


def test_chinese_text_is_stored_as_utf8_not_escaped(recording: World) -> None:
    case_id = recording.register(narrative="信访人到镇政府反映征地补偿问题")
    (stored,) = recording.ledger.recorder.select_events(case_id)
    assert "信访人到镇政府反映征地补偿问题".encode() in bytes(stored.state)


# --- upcasting ----------------------------------------------------------------------------


class NoteWritten(LedgerEvent):
    """Version 3 of a test event: v1 had `text`; v2 split it into `title` and `body`; v3 added `pages`."""

    class_version: ClassVar[int] = 3
    title: str
    body: str
    pages: int

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        title, _, body = state.pop("text").partition("\n")
        state["title"], state["body"] = title, body

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["pages"] = 1


COMMON = {
    "timestamp": "2026-03-02T01:00:00Z",
    "actor_id": str(UUID(int=1)),
    "actor_unit_id": str(UUID(int=2)),
    "occurred_at": "2026-03-02T01:00:00Z",
    "command_id": "c-1",
    "correlation_id": "c-1",
    "narrative": "写了一张便条",
}


@pytest.fixture
def mapper() -> PydanticMapper:
    return PydanticMapper(transcoder=OrjsonTranscoder())


def stored(state: dict[str, Any], originator_id: UUID) -> StoredEvent:
    return StoredEvent(
        originator_id=originator_id,
        originator_version=7,
        topic=get_topic(NoteWritten),
        state=orjson.dumps(state),
    )


def test_a_version_1_event_is_upcast_to_the_current_class_version(mapper: PydanticMapper) -> None:
    originator_id = uuid4()
    event = mapper.to_domain_event(stored({**COMMON, "text": "标题\n正文"}, originator_id))
    assert isinstance(event, NoteWritten)
    assert (event.title, event.body, event.pages) == ("标题", "正文", 1)
    assert (event.originator_id, event.originator_version) == (originator_id, 7)
    assert event.timestamp == datetime.fromisoformat("2026-03-02T01:00:00+00:00")


def test_a_version_2_event_runs_only_the_later_upcasters(mapper: PydanticMapper) -> None:
    event = mapper.to_domain_event(stored({**COMMON, "class_version": 2, "title": "t", "body": "b"}, uuid4()))
    assert isinstance(event, NoteWritten)
    assert (event.title, event.body, event.pages) == ("t", "b", 1)


def test_a_current_event_records_its_class_version_and_round_trips(mapper: PydanticMapper) -> None:
    event = NoteWritten.model_validate(
        {**COMMON, "originator_id": uuid4(), "originator_version": 1, "title": "t", "body": "b", "pages": 4}
    )
    record = mapper.to_stored_event(event)
    state = orjson.loads(record.state)
    assert state["class_version"] == 3
    assert not ENVELOPE & set(state)
    assert mapper.to_domain_event(record) == event


def test_a_version_1_class_stores_no_class_version(mapper: PydanticMapper, recording: World) -> None:
    (stored_event,) = recording.ledger.recorder.select_events(recording.register())
    assert "class_version" not in orjson.loads(stored_event.state)
