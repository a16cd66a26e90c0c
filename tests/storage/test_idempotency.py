"""A command id names one command: a retry is answered, never applied twice; misuse is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.clock import ManualClock
from domain.errors import AlreadyExists, IdempotencyConflict, InvalidArgument, VersionConflict
from domain.ids import LEDGER_NAMESPACE
from domain.ledger import CommandResult, Ledger
from domain.storage.commands import CommandRecord
from tests.storage.raw_db import raw_connection
from tests.support import INTAKE, World


class Counts:
    """Rows in the store, counted with raw SQL so the code under test cannot flatter itself."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def __call__(self) -> tuple[int, int]:
        with raw_connection(self.database_url) as raw:
            return raw.count("{events}"), raw.count("command_log")


@pytest.fixture
def counts(database_url: str) -> Counts:
    return Counts(database_url)


def ctx(command_id: str, **options: Any) -> dict[str, Any]:
    return {"ctx_options": {"command_id": command_id, **options}}


def case_versions(world: World, case_id: UUID) -> list[int]:
    return [e.originator_version for e in world.ledger.events.get(case_id)]


# --- retries ------------------------------------------------------------------------


def test_the_same_command_id_twice_records_one_event_and_replays_the_first_answer(
    world: World, counts: Counts
) -> None:
    case_id = world.accepted()
    before = counts()
    first = world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit", **ctx("visit-1"))
    second = world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit", **ctx("visit-1"))
    assert counts() == (before[0] + 1, before[1] + 1)
    assert not first.replayed
    assert second.replayed
    assert (second.command_id, second.aggregate_id) == ("visit-1", case_id)
    assert (second.version, second.position, second.positions) == (
        first.version,
        first.position,
        first.positions,
    )
    assert world.case(case_id).action_count == 1


def test_a_repeated_creation_names_the_same_aggregate_and_creates_it_once(
    world: World, counts: Counts
) -> None:
    petitioner = uuid4()
    before = counts()
    first = world.do(
        world.township_clerk, "register_case", intake=INTAKE, petitioner_id=petitioner, **ctx("reg-1")
    )
    second = world.do(
        world.township_clerk, "register_case", intake=INTAKE, petitioner_id=petitioner, **ctx("reg-1")
    )
    assert second.replayed
    assert second.aggregate_id == first.aggregate_id
    assert second.positions == first.positions
    assert counts() == (before[0] + 1, before[1] + 1)
    assert world.case(first.aggregate_id).version == 1


def test_a_creation_whose_derived_id_another_record_was_given_is_refused_at_once(
    world: World, counts: Counts
) -> None:
    """Derived ids are predictable and any creation takes an explicit id, so one can be taken first."""
    world.register(case_id=uuid5(LEDGER_NAMESPACE, "case/visit-001"))
    before = counts()
    started = time.monotonic()
    with pytest.raises(AlreadyExists):
        world.register(**ctx("visit-001"))
    assert time.monotonic() - started < 0.5  # not after the retry loop's back-off
    assert counts() == before


def test_a_retried_command_that_would_now_be_refused_is_answered_with_its_first_result(
    world: World, counts: Counts
) -> None:
    case_id = world.register()
    world.advance(hours=1)
    first = world.do(world.township_clerk, "accept_case", case_id=case_id, **ctx("accept-1"))
    before = counts()
    retry = world.do(world.township_clerk, "accept_case", case_id=case_id, **ctx("accept-1"))
    assert retry.replayed
    assert (retry.version, retry.positions) == (first.version, first.positions)
    assert counts() == before


def test_a_late_retry_reports_the_version_its_command_reached_not_the_latest(world: World) -> None:
    case_id = world.register()
    world.advance(hours=1)
    first = world.do(world.township_clerk, "accept_case", case_id=case_id, **ctx("accept-late"))
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="talk")
    retry = world.do(world.township_clerk, "accept_case", case_id=case_id, **ctx("accept-late"))
    assert retry.replayed
    assert retry.version == first.version == 2
    assert retry.position == first.position
    assert world.case(case_id).version == 4


def test_a_retry_with_an_expected_version_is_answered_after_the_record_moved_on(world: World) -> None:
    case_id = world.accepted()
    first = world.do(
        world.township_clerk,
        "record_action",
        case_id=case_id,
        kind="visit",
        **ctx("expected-2", expected_version=2),
    )
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="talk")
    retry = world.do(
        world.township_clerk,
        "record_action",
        case_id=case_id,
        kind="visit",
        **ctx("expected-2", expected_version=2),
    )
    assert retry.replayed
    assert retry.positions == first.positions


def test_an_over_long_command_id_is_refused(world: World) -> None:
    case_id = world.accepted()
    with pytest.raises(InvalidArgument):
        world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit", **ctx("x" * 201))


# --- misuse of a command id -------------------------------------------------------------


def _different(world: World) -> dict[str, Callable[[UUID], tuple[UUID, str, dict[str, Any]]]]:
    """Ways to reuse the id of `record_action(kind=visit)` by township_clerk for something else."""
    return {
        "payload": lambda case_id: (
            world.township_clerk,
            "record_action",
            {"case_id": case_id, "kind": "talk"},
        ),
        "narrative": lambda case_id: (
            world.township_clerk,
            "record_action",
            {"case_id": case_id, "kind": "visit", "narrative": "a different account of the visit"},
        ),
        "actor": lambda case_id: (world.handler, "record_action", {"case_id": case_id, "kind": "visit"}),
        "command": lambda case_id: (
            world.county_clerk,
            "issue_supervision",
            {"case_id": case_id},
        ),
        "occurred_at": lambda case_id: (
            world.township_clerk,
            "record_action",
            {
                "case_id": case_id,
                "kind": "visit",
                "ctx_options": {"occurred_at": world.clock.now() - timedelta(1)},
            },
        ),
    }


@pytest.mark.parametrize("change", ["payload", "narrative", "actor", "command", "occurred_at"])
def test_reusing_a_command_id_for_a_different_command_is_refused_and_writes_nothing(
    world: World, counts: Counts, change: str
) -> None:
    case_id = world.accepted()
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit", **ctx("reused"))
    before = counts()
    actor, command, kwargs = _different(world)[change](case_id)
    kwargs.setdefault("ctx_options", {})["command_id"] = "reused"
    with pytest.raises(IdempotencyConflict) as refused:
        world.do(actor, command, **kwargs)
    assert refused.value.context["command_id"] == "reused"
    assert counts() == before
    assert world.case(case_id).action_count == 1


def test_reusing_a_command_id_for_a_command_that_would_be_refused_is_still_a_conflict(world: World) -> None:
    """The caller learns they misused the id, not some unrelated refusal."""
    case_id = world.register()
    world.advance(hours=1)
    world.do(world.township_clerk, "accept_case", case_id=case_id, **ctx("accept-x"))
    with pytest.raises(IdempotencyConflict):
        world.do(
            world.township_clerk, "accept_case", case_id=case_id, narrative="told again", **ctx("accept-x")
        )


# --- expected versions ----------------------------------------------------------------


@pytest.mark.parametrize("expected", [1, 3])
def test_an_expected_version_mismatch_is_a_version_conflict_and_writes_nothing(
    world: World, counts: Counts, expected: int
) -> None:
    case_id = world.accepted()
    before = counts()
    with pytest.raises(VersionConflict):
        world.do(
            world.township_clerk,
            "record_action",
            case_id=case_id,
            kind="visit",
            **ctx("stale", expected_version=expected),
        )
    assert counts() == before
    assert world.ledger.command_log.select_command("stale") is None


def test_a_matching_expected_version_is_applied(world: World) -> None:
    case_id = world.accepted()
    result = world.do(
        world.township_clerk,
        "record_action",
        case_id=case_id,
        kind="visit",
        ctx_options={"expected_version": 2},
    )
    assert result.version == 3


# --- concurrency ---------------------------------------------------------------------


def run_together(count: int, call: Callable[[int], CommandResult]) -> list[CommandResult]:
    """Run `call(i)` in `count` threads released at the same moment; re-raise the first error."""
    barrier = threading.Barrier(count)

    def released(i: int) -> CommandResult:
        barrier.wait(timeout=30)
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(released, range(count)))


@pytest.mark.parametrize("round_no", range(3))
def test_concurrent_duplicates_of_an_action_record_exactly_one_event(
    world: World, counts: Counts, round_no: int
) -> None:
    case_id = world.accepted()
    before = counts()
    results = run_together(
        2,
        lambda _: world.do(
            world.township_clerk, "record_action", case_id=case_id, kind="visit", **ctx("twin")
        ),
    )
    assert counts() == (before[0] + 1, before[1] + 1)
    assert sorted(r.replayed for r in results) == [False, True]
    assert results[0].positions == results[1].positions
    assert results[0].version == results[1].version == 3
    assert world.case(case_id).action_count == 1


def test_concurrent_duplicates_of_a_registration_create_one_case(world: World, counts: Counts) -> None:
    petitioner = uuid4()
    before = counts()
    results = run_together(
        2,
        lambda _: world.do(
            world.township_clerk,
            "register_case",
            intake=INTAKE,
            petitioner_id=petitioner,
            **ctx("twin-reg"),
        ),
    )
    assert counts() == (before[0] + 1, before[1] + 1)
    assert results[0].aggregate_id == results[1].aggregate_id
    assert sorted(r.replayed for r in results) == [False, True]


def test_commands_without_an_expected_version_are_retried_after_concurrent_writes(
    world: World, counts: Counts
) -> None:
    case_id = world.accepted()
    per_thread = 30
    before = counts()

    def record_many(thread_no: int) -> list[CommandResult]:
        actor = (world.township_clerk, world.handler)[thread_no]
        return [
            world.do(
                actor, "record_action", case_id=case_id, kind="visit", narrative=f"visit {thread_no}/{i}"
            )
            for i in range(per_thread)
        ]

    barrier = threading.Barrier(2)

    def released(thread_no: int) -> list[CommandResult]:
        barrier.wait(timeout=30)
        return record_many(thread_no)

    with ThreadPoolExecutor(2) as pool:
        results = [r for batch in pool.map(released, range(2)) for r in batch]

    assert not any(r.replayed for r in results)
    assert sorted(r.version for r in results) == list(range(3, 3 + 2 * per_thread))
    assert case_versions(world, case_id) == list(range(1, 3 + 2 * per_thread))
    assert world.case(case_id).action_count == 2 * per_thread
    assert counts() == (before[0] + 2 * per_thread, before[1] + 2 * per_thread)


# --- the command log commits with its events ----------------------------------------------


class InterleavedLedger(Ledger):
    """A ledger that runs queued callbacks just before it saves: a concurrent writer, made deterministic."""

    name = Ledger.name  # the library names tables after the application: share the ledger's

    def __init__(self, database_url: str, *, clock: ManualClock) -> None:
        super().__init__(database_url, clock=clock)
        self.before_save: list[Callable[[], object]] = []

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        while self.before_save:
            self.before_save.pop(0)()
        return super().save(*objs, **kwargs)


@pytest.fixture
def interleaved(world: World, database_url: str, clock: ManualClock) -> Iterator[InterleavedLedger]:
    with InterleavedLedger(database_url, clock=clock) as app:
        yield app


def test_a_failed_event_insert_leaves_no_command_log_row(
    world: World, interleaved: InterleavedLedger, counts: Counts
) -> None:
    case_id = world.accepted()
    # Another ledger on the same store records version 3 after this one loaded version 2.
    interleaved.before_save.append(
        lambda: world.do(
            world.handler, "record_action", case_id=case_id, kind="talk", **ctx("the-other-writer")
        )
    )
    before = counts()
    with pytest.raises(VersionConflict):
        interleaved.record_action(
            world.ctx(world.township_clerk, command_id="clashing", expected_version=2),
            case_id=case_id,
            kind="visit",
        )
    assert interleaved.command_log.select_command("clashing") is None
    assert counts() == (before[0] + 1, before[1] + 1), "only the other writer's event and command remain"
    assert [type(e).__name__ for e in world.ledger.events.get(case_id)][-1] == "ActionRecorded"
    assert world.case(case_id).action_count == 1


def test_a_clash_without_an_expected_version_is_retried_and_applied_once(
    world: World, interleaved: InterleavedLedger, counts: Counts
) -> None:
    case_id = world.accepted()
    interleaved.before_save.append(
        lambda: world.do(
            world.handler, "record_action", case_id=case_id, kind="talk", **ctx("the-other-writer")
        )
    )
    before = counts()
    result = interleaved.record_action(
        world.ctx(world.township_clerk, command_id="retried"), case_id=case_id, kind="visit"
    )
    assert not result.replayed
    assert result.version == 4
    assert counts() == (before[0] + 2, before[1] + 2)
    record = interleaved.command_log.select_command("retried")
    assert record is not None
    assert record.events == ((case_id, 4),)
    assert case_versions(world, case_id) == [1, 2, 3, 4]


def test_the_recorder_rolls_back_the_command_row_when_an_event_key_is_taken(
    world: World, counts: Counts
) -> None:
    case_id = world.accepted()
    recorder = world.ledger.recorder
    existing = recorder.select_events(case_id)[-1]
    clash = StoredEvent(
        originator_id=existing.originator_id,
        originator_version=existing.originator_version,
        topic=existing.topic,
        state=existing.state,
    )
    record = CommandRecord(
        command_id="orphan",
        name="record_action",
        digest="0" * 64,
        actor_id=world.township_clerk,
        aggregate_id=case_id,
        events=((case_id, existing.originator_version),),
        recorded_at=world.clock.now(),
    )
    before = counts()
    with pytest.raises(IntegrityError):
        recorder.insert_events([clash], command=record)
    assert world.ledger.command_log.select_command("orphan") is None
    assert counts() == before


def test_a_number_too_large_to_record_is_refused_not_crashed_on(world: World) -> None:
    case_id = world.accepted()
    world.refuse(InvalidArgument, world.township_clerk, "hold_hearing", case_id=case_id, days=2**64)


@pytest.mark.parametrize("headcount", [2**53, 2**63])
def test_a_number_beyond_what_json_carries_safely_is_refused_even_inside_a_value(
    world: World, headcount: int
) -> None:
    """Once recorded, such a number would stop the views (64-bit columns) on every replay."""
    intake = INTAKE.model_copy(update={"headcount": headcount})
    world.refuse(InvalidArgument, world.township_clerk, "register_case", intake=intake, petitioner_id=uuid4())


def test_the_largest_safe_number_is_still_recorded(world: World) -> None:
    intake = INTAKE.model_copy(update={"headcount": 2**53 - 1})
    world.do(world.township_clerk, "register_case", intake=intake, petitioner_id=uuid4())


def test_a_value_no_event_may_hold_is_refused_not_crashed_on(world: World) -> None:
    world.refuse(InvalidArgument, world.handler, "record_dispute", source="visit", category="")


def test_text_with_a_nul_character_is_refused_on_both_backends(world: World) -> None:
    world.refuse(InvalidArgument, world.township_clerk, "register_case", narrative="来访\x00", intake=INTAKE,
                 petitioner_id=uuid4())  # fmt: skip
    with pytest.raises(InvalidArgument):
        world.do(world.township_clerk, "register_case", intake=INTAKE, petitioner_id=uuid4(),
                 ctx_options={"command_id": "nul\x00id"})  # fmt: skip
