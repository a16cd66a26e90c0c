"""Adversarial checks of cadre accountability in business time, with corrections folded in.

The promises under test (docs/projections.md, "Business time, not record order"):

- a case's rows follow its history as known today: its events in the order they happened,
  each with its corrections folded in, however and whenever they were recorded;
- the view followed live, in batches of any size, with any memory, equals a rebuild from
  scratch (a single pass or in shares) and a view that derives every case from scratch at
  every event; the day counts always equal a recount of the facts;
- `case_as_of(..., "occurred")` and `responsibility_at` read the same corrected history;
- every record over 24 hours late is kept, tagged with its whole hours late (rounded up), and
  the reader's threshold counts exactly the records late by more than it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest

from domain.errors import InvalidTime
from domain.values import (
    BureauLevel,
    ClosureKind,
    DeclineReason,
    EventRef,
    Obligation,
    ReplyOutcome,
    Satisfaction,
)
from projections import bulk
from projections.accountability import cadre_accountability
from projections.digest import digest
from projections.memory import AggregateMemory
from projections.queries import case_as_of, responsibility_at
from projections.rebuild import rebuild_together
from projections.runner import Runner
from projections.store import ViewConnection, ViewStore
from projections.views.cadre_accountability import CadreAccountabilityView
from tests.projections.conftest import every_case_redone, followed_event_by_event
from tests.projections.up_to import UpTo
from tests.support import World

EVER = datetime(2020, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


# --- helpers ----------------------------------------------------------------------------------


EveryCaseRedone = every_case_redone(CadreAccountabilityView)


def forgetful(ledger: Any) -> CadreAccountabilityView:
    """The view remembering one case at a time: every other case is replayed from the store."""
    view = CadreAccountabilityView(ledger)
    view.cases = AggregateMemory(view._replayed, size=1)
    return view


@pytest.fixture
def live(world: World) -> Iterator[Runner]:
    """The accountability view followed one event per batch, in the ledger's own database."""
    with followed_event_by_event(world, CadreAccountabilityView(world.ledger)) as runner:
        yield runner


def scratch_digest(world: World, make: Callable[[Any], CadreAccountabilityView], batch: int = 500) -> Any:
    """The digest of a view built from the whole log into a scratch SQLite store of its own."""
    with tempfile.TemporaryDirectory() as folder:
        runner = Runner(
            world.ledger, [make(world.ledger)], ViewStore(f"sqlite:///{folder}/v.sqlite"), batch=batch
        )
        try:
            runner.catch_up()
            return content(runner.connection, runner.views[0])
        finally:
            runner.close()


def content(connection: ViewConnection, view: CadreAccountabilityView) -> tuple[int, str]:
    """A view's rows and hash, without the position it reached."""
    found = digest(connection, view)
    return found.rows, found.sha256


def rebuilt(world: World, shares: int = 1) -> tuple[int, str]:
    """The view's content after a rebuild from scratch in the ledger's own database."""
    view = CadreAccountabilityView(world.ledger)
    store = ViewStore(world.ledger.database_url)
    rebuild_together(world.ledger, [view], store, shares=shares)
    connection = store.connect()
    try:
        return content(connection, view)
    finally:
        connection.close()


def day_counts(connection: ViewConnection) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in connection.execute(
            "SELECT cadre_id, day, kind, tag, count FROM cadre_days ORDER BY 1, 2, 3, 4"
        )
    ]


def recount(connection: ViewConnection) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in connection.execute(
            "SELECT cadre_id, substr(at, 1, 10), kind, COALESCE(tag, ''), COUNT(*) FROM cadre_facts "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
    ]


def facts(connection: ViewConnection, case_id: UUID, kind: str) -> list[tuple[Any, ...]]:
    return [
        tuple(row)
        for row in connection.execute(
            "SELECT cadre_id, at, tag, detail, aggregate_id, version FROM cadre_facts "
            "WHERE case_id = ? AND kind = ? ORDER BY at, version",
            (str(case_id), kind),
        )
    ]


def roles(connection: ViewConnection, case_id: UUID, role: str) -> list[tuple[str, str, str]]:
    return [
        (row[0], row[1], row[2])
        for row in connection.execute(
            "SELECT cadre_id, started_at, ended_at FROM cadre_roles "
            "WHERE case_id = ? AND role = ? ORDER BY seq",
            (str(case_id), role),
        )
    ]


def text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def backdated(world: World, actor: UUID, command: str, at: datetime, **kwargs: Any) -> Any:
    return world.do(actor, command, narrative="补录", ctx_options={"occurred_at": at}, **kwargs)


def account(connection: ViewConnection, cadre: UUID, end: datetime, **kwargs: Any) -> Any:
    return cadre_accountability(connection, cadre, EVER, end, **kwargs)


def a_busy_history(world: World, step: Callable[[], None] = lambda: None) -> list[UUID]:
    """Cases whose events arrive out of business order, with corrections, calling `step` after each command.

    One case gets a leapfrog entered after the reply it preceded, an action whose date is
    corrected twice and whose kind once, and a rating; another is forwarded by a late entry
    dated before its unit's first action; a third is studied at a meeting by a late entry, and
    its intake is corrected; an inquiry finds against the first case's clerk.
    """
    first = world.accepted()
    step()
    world.do(world.township_clerk, "assign_handler", case_id=first, handler_id=world.handler)
    step()
    leapfrog_at = world.clock.now() + HOUR
    world.advance(days=2)
    action = world.do(world.township_clerk, "record_action", case_id=first, kind="visit")
    action_at = world.clock.now()
    step()
    world.advance(days=1)
    world.do(world.township_clerk, "issue_reply", case_id=first, outcome=ReplyOutcome.SUPPORT)
    step()
    second = world.register()
    step()
    forwarded_at = world.clock.now() + HOUR
    world.advance(hours=3)
    world.do(world.township_clerk, "record_action", case_id=second, kind="call")
    step()
    world.advance(days=2)
    backdated(
        world, world.county_clerk, "record_leapfrog", leapfrog_at, case_id=first, level=BureauLevel.CITY
    )
    step()
    world.correct_record(first, action.version, occurred_at=(action_at - timedelta(days=2)).isoformat())
    step()
    backdated(
        world,
        world.township_clerk,
        "forward_case",
        forwarded_at,
        case_id=second,
        to_unit_id=world.other_township,
    )
    step()
    world.do(world.county_clerk, "rate_satisfaction", case_id=first, rating=Satisfaction.UNSATISFIED)
    step()
    world.advance(hours=5)
    world.correct_record(first, action.version, narrative="走访方式登记错误，更正", kind="call")
    step()
    world.correct_record(first, action.version, occurred_at=(action_at - timedelta(hours=30)).isoformat())
    step()
    third = world.accepted()
    step()
    convened_at = world.clock.now() + HOUR
    world.advance(days=2)
    meeting = backdated(
        world,
        world.township_head,
        "convene_meeting",
        convened_at,
        unit_id=world.township,
        chair_id=world.township_head,
    ).aggregate_id
    step()
    world.do(world.township_clerk, "record_action", case_id=third, kind="visit")
    step()
    backdated(
        world,
        world.township_head,
        "study_case",
        convened_at + HOUR,
        meeting_id=meeting,
        case_id=third,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=(world.today() + timedelta(days=20)),
    )
    step()
    world.correct_category(third)
    step()
    inquiry = world.do(
        world.inspector, "open_inquiry", case_ids=frozenset({first}), cadre_ids=frozenset()
    ).aggregate_id
    step()
    world.do(
        world.inspector,
        "record_finding",
        inquiry_id=inquiry,
        cadre_id=world.township_clerk,
        obligation=Obligation.PERFUNCTORY,
        case_id=first,
        proof=(EventRef(aggregate_id=first, version=3),),
    )
    step()
    world.advance(days=1)
    backdated(
        world,
        world.township_clerk,
        "record_action",
        world.clock.now() - timedelta(days=6),
        case_id=first,
        kind="visit",
    )
    step()
    return [first, second, third]


# --- live, in any batches, with any memory, equals from scratch ------------------------------


def test_the_view_followed_one_event_at_a_time_equals_a_rebuild_and_a_redo_at_every_event(
    world: World, live: Runner
) -> None:
    first, second, third = a_busy_history(world, live.catch_up)
    live.catch_up()
    followed = content(live.connection, live.views[0])
    assert followed == scratch_digest(world, EveryCaseRedone)
    assert followed == rebuilt(world)
    # the history reads as it happened: the leapfrog preceded the reply, the forward the action
    assert [orjson.loads(row[3])["because"] for row in facts(live.connection, first, "reply_failed")] == [
        "unsatisfied"
    ]
    assert len(facts(live.connection, second, "passed_on")) == 1
    assert [row[0] for row in roles(live.connection, third, "owning_leader")] == [str(world.township_leader)]


@pytest.mark.parametrize("batch", [2, 3, 7, 500])
def test_the_view_followed_in_batches_that_split_redos_anywhere_equals_a_redo_at_every_event(
    world: World, batch: int
) -> None:
    runner = Runner(world.ledger, [CadreAccountabilityView(world.ledger)], batch=batch)
    try:
        a_busy_history(world, runner.catch_up)
        runner.catch_up()
        assert content(runner.connection, runner.views[0]) == scratch_digest(world, EveryCaseRedone, batch=1)
    finally:
        runner.close()


def test_the_view_caught_up_once_over_the_whole_history_equals_one_followed_event_by_event(
    world: World, live: Runner
) -> None:
    a_busy_history(world, live.catch_up)
    live.catch_up()
    assert content(live.connection, live.views[0]) == scratch_digest(world, CadreAccountabilityView)


@pytest.mark.parametrize("batch", [1, 4])
def test_a_view_that_remembers_one_case_at_a_time_equals_one_that_remembers_them_all(
    world: World, batch: int
) -> None:
    runner = Runner(world.ledger, [forgetful(world.ledger)], batch=batch)
    try:
        a_busy_history(world, runner.catch_up)
        runner.catch_up()
        assert content(runner.connection, runner.views[0]) == scratch_digest(world, CadreAccountabilityView)
    finally:
        runner.close()


def test_day_counts_equal_a_recount_of_the_facts_after_every_batch(world: World, live: Runner) -> None:
    checked = []

    def check() -> None:
        live.catch_up()
        assert day_counts(live.connection) == recount(live.connection)
        assert all(row[4] > 0 for row in day_counts(live.connection))
        checked.append(len(day_counts(live.connection)))

    a_busy_history(world, check)
    assert len(checked) > 15
    assert checked[-1] > 5


def test_a_rebuild_in_two_shares_equals_a_single_pass_and_the_live_view_after_redos(
    world: World, live: Runner
) -> None:
    cases = a_busy_history(world, live.catch_up)
    for number in range(20):  # more cases, until both shares hold some with redone histories
        if number >= 3 and len({int(str(case)[:8], 16) % 2 for case in cases}) == 2:
            break
        more = world.accepted()
        done_at = world.clock.now() + HOUR
        world.advance(days=2)
        world.do(world.township_clerk, "issue_reply", case_id=more, outcome=ReplyOutcome.SUPPORT)
        backdated(world, world.county_clerk, "record_leapfrog", done_at, case_id=more, level=BureauLevel.CITY)
        cases.append(more)
    assert len({int(str(case)[:8], 16) % 2 for case in cases}) == 2
    live.catch_up()
    followed = content(live.connection, live.views[0])
    assert rebuilt(world, shares=1) == followed
    assert rebuilt(world, shares=2) == followed


def test_a_correction_recorded_while_the_shares_are_built_is_folded_in_before_the_swap(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = a_busy_history(world)[0]
    action = next(e for e in world.events(first) if type(e).__name__ == "ActionRecorded")
    monkeypatch.setattr(bulk, "HOLD", (5, 600.0))  # this process's share reports after every hold
    meanwhile: list[int] = []

    def correct_and_backdate(_: object) -> None:
        if not meanwhile:
            world.correct_record(first, action.originator_version, occurred_at=action.occurred_at.isoformat())
            late = backdated(
                world,
                world.township_clerk,
                "record_action",
                world.clock.now() - timedelta(days=5),
                case_id=first,
                kind="letter",
            )
            meanwhile.append(late.position)

    view = CadreAccountabilityView(world.ledger)
    store = ViewStore(world.ledger.database_url)
    built = rebuild_together(world.ledger, [view], store, report=correct_and_backdate, shares=2)
    monkeypatch.undo()
    assert meanwhile
    assert built[view.name].position >= meanwhile[0]
    connection = store.connect()
    try:
        assert content(connection, view) == scratch_digest(world, EveryCaseRedone)
        assert day_counts(connection) == recount(connection)
    finally:
        connection.close()


# --- what a redo keeps, moves and removes ----------------------------------------------------


@pytest.mark.parametrize("batch", [1, 500])
def test_an_inquiry_finding_about_a_case_survives_when_the_case_is_derived_again(
    world: World, batch: int
) -> None:
    runner = Runner(world.ledger, [CadreAccountabilityView(world.ledger)], batch=batch)
    try:
        case_id = world.accepted()
        world.advance(days=3)
        world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
        inquiry = world.do(world.inspector, "open_inquiry", case_ids=frozenset({case_id})).aggregate_id
        world.do(
            world.inspector,
            "record_finding",
            inquiry_id=inquiry,
            cadre_id=world.township_clerk,
            obligation=Obligation.DELAY,
            case_id=case_id,
            proof=(EventRef(aggregate_id=case_id, version=3),),
        )
        runner.catch_up()
        backdated(
            world,
            world.township_clerk,
            "record_action",
            world.clock.now() - timedelta(days=2),
            case_id=case_id,
            kind="call",
        )  # dated before the visit: the case is derived again
        world.correct_record(case_id, 3, narrative="走访方式登记错误，更正", kind="call")
        runner.catch_up()
        findings = facts(runner.connection, case_id, "finding")
        assert [(row[0], row[4]) for row in findings] == [(str(world.township_clerk), str(inquiry))]
        assert account(runner.connection, world.township_clerk, world.clock.now() + HOUR).findings == 1
        assert day_counts(runner.connection) == recount(runner.connection)
    finally:
        runner.close()


def test_several_corrections_of_one_action_leave_one_fact_at_the_last_date_with_the_last_kind(
    world: World, live: Runner
) -> None:
    case_id = world.accepted()
    world.advance(days=6)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")  # version 3
    recorded_at = world.clock.now()
    live.catch_up()
    first_guess, last_word = recorded_at - timedelta(days=5), recorded_at - timedelta(days=2)
    world.advance(hours=1)
    world.correct_record(case_id, 3, occurred_at=first_guess.isoformat())
    live.catch_up()
    world.correct_record(case_id, 3, narrative="走访方式登记错误，更正", kind="call")
    world.correct_record(case_id, 3, narrative="再次更正走访日期", occurred_at=last_word.isoformat())
    live.catch_up()
    actions = facts(live.connection, case_id, "action")
    assert [(row[1], orjson.loads(row[3])) for row in actions] == [(text(last_word), {"kind": "call"})]
    lates = facts(live.connection, case_id, "late_record")
    assert [(row[1], row[2], row[5]) for row in lates] == [(text(last_word), "48", 3)]
    assert day_counts(live.connection) == recount(live.connection)
    between = first_guess + timedelta(days=1)  # after the first guess, before the last word
    as_known = case_as_of(world.ledger, case_id, between, "occurred")
    assert as_known is not None
    assert as_known.action_count == 0
    then = case_as_of(world.ledger, case_id, last_word, "occurred")
    assert then is not None
    assert then.action_count == 1


def test_a_corrected_intake_leaves_every_row_of_the_cadre_view_as_it_was(world: World, live: Runner) -> None:
    case_id = world.replied()
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.handler)
    world.advance(days=1)
    live.catch_up()
    before = content(live.connection, live.views[0])
    world.correct_category(case_id)
    live.catch_up()
    assert content(live.connection, live.views[0]) == before
    as_known = case_as_of(world.ledger, case_id, world.clock.now(), "occurred")
    assert as_known is not None
    assert (as_known.intake.category, as_known.status.value, as_known.handler_id) == (
        "wage_arrears",
        "replied",
        world.handler,
    )


def test_facts_derived_again_cite_the_log_positions_and_record_times_of_their_events(
    world: World, live: Runner
) -> None:
    case_id = world.accepted()
    world.advance(days=2)
    for kind in ("visit", "call"):
        world.do(world.township_clerk, "record_action", case_id=case_id, kind=kind)
        world.advance(hours=2)
    live.catch_up()
    backdated(
        world,
        world.township_clerk,
        "record_action",
        world.clock.now() - timedelta(days=1),
        case_id=case_id,
        kind="letter",
    )
    live.catch_up()
    rows = live.connection.execute(
        "SELECT version, position, recorded_at FROM cadre_facts "
        "WHERE aggregate_id = ? ORDER BY version, kind",
        (str(case_id),),
    )
    events = {event.originator_version: event for event in world.events(case_id)}
    positions = world.ledger.command_log.positions_of([(case_id, v) for v, *_ in rows])
    assert [row[1] for row in rows] == positions
    assert [row[2] for row in rows] == [text(events[row[0]].timestamp) for row in rows]
    assert len(rows) >= 4  # received, and three actions


def test_a_correction_that_dates_an_action_back_into_a_past_window_moves_it_there_and_out_of_now(
    world: World, live: Runner
) -> None:
    case_id = world.accepted()
    world.advance(days=10)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
    recorded_at = world.clock.now()
    live.catch_up()
    world.advance(hours=1)
    world.correct_record(case_id, 3, occurred_at=(recorded_at - timedelta(days=8)).isoformat())
    live.catch_up()
    last_week = account(live.connection, world.township_clerk, recorded_at - timedelta(days=7))
    today = cadre_accountability(
        live.connection, world.township_clerk, recorded_at - timedelta(days=1), world.clock.now()
    )
    assert (last_week.actions, today.actions) == (1, 0)
    assert last_week.late_records == 1  # recorded eight days after it happened


def test_a_leapfrog_corrected_to_after_the_reply_fails_that_reply_and_corrected_back_does_not(
    world: World, live: Runner
) -> None:
    case_id = world.accepted()
    world.advance(days=3)
    reply = world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
    replied_at = world.clock.now()
    world.advance(days=2)
    leapfrog = backdated(  # entered two days after the reply, dated a day before it
        world,
        world.county_clerk,
        "record_leapfrog",
        replied_at - timedelta(days=1),
        case_id=case_id,
        level=BureauLevel.CITY,
    )
    live.catch_up()
    end = world.clock.now() + HOUR
    assert account(live.connection, world.township_clerk, end).flags == []

    def correct(at: datetime) -> None:
        world.do(
            world.county_clerk,
            "correct_record",
            narrative="越级访日期登记错误，更正",
            aggregate_id=case_id,
            corrects=leapfrog.version,
            changes={"occurred_at": at.isoformat()},
        )
        live.catch_up()

    correct(replied_at + timedelta(days=1))
    after = account(live.connection, world.township_clerk, end)
    assert [(f.pattern, [p.version for p in f.proof]) for f in after.flags] == [
        ("prescribed_not_cured", [reply.version, leapfrog.version])
    ]
    correct(replied_at - timedelta(hours=1))
    assert account(live.connection, world.township_clerk, end).flags == []
    assert day_counts(live.connection) == recount(live.connection)


@pytest.mark.parametrize("when", ["after it was recorded", "before its case was registered"])
def test_a_correction_cannot_date_an_action_where_recording_it_could_not_have(
    world: World, when: str
) -> None:
    case_id = world.register()
    registered_at = world.clock.now()
    world.advance(hours=2)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")  # version 2
    recorded_at = world.clock.now()
    world.advance(days=3)
    impossible = recorded_at + timedelta(days=1) if when == "after it was recorded" else registered_at - HOUR
    world.refuse(
        InvalidTime,
        world.township_clerk,
        "correct_record",
        narrative="走访日期登记错误，更正",
        aggregate_id=case_id,
        corrects=2,
        changes={"occurred_at": impossible.isoformat()},
    )


# --- business order beats record order, everywhere -------------------------------------------


def test_responsibility_at_and_the_cadre_roles_agree_on_who_handled_a_case_after_a_backdated_handover(
    world: World, live: Runner
) -> None:
    case_id = world.accepted()
    world.advance(days=2)
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.handler)
    handler_from = world.clock.now()
    world.advance(days=1)
    backdated(  # entered now, but the clerk says they took the case over a day before the handler did
        world,
        world.township_clerk,
        "assign_handler",
        handler_from - timedelta(days=1),
        case_id=case_id,
        handler_id=world.township_clerk,
    )
    live.catch_up()
    later = handler_from + HOUR
    handlers = {
        row[0]
        for row in live.connection.execute(
            "SELECT cadre_id FROM cadre_roles "
            "WHERE case_id = ? AND role = 'handler' AND started_at <= ? AND ended_at > ?",
            (str(case_id), text(later), text(later)),
        )
    }
    assert handlers == {str(world.handler)}  # in business order the handler took over last
    held = responsibility_at(world.ledger, case_id, later)
    assert held is not None
    assert held.handler_id == world.handler


@pytest.mark.parametrize("ending", ["close_case", "decline_case"])
def test_a_handler_named_after_the_case_ended_by_a_late_entry_does_not_hold_it_forever(
    world: World, live: Runner, ending: str
) -> None:
    case_id = world.replied() if ending == "close_case" else world.register()
    settled_at = world.clock.now() + HOUR  # when the case was (as entered later) closed or declined
    world.advance(days=1)
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.handler)
    world.advance(days=1)
    how = (
        {"closure": ClosureKind.SUBSTANTIVE}
        if ending == "close_case"
        else {"reason": DeclineReason.OUTSIDE_SCOPE}
    )
    backdated(world, world.township_clerk, ending, settled_at, case_id=case_id, **how)
    live.catch_up()
    a_month_on = world.clock.now() + timedelta(days=30)
    held = cadre_accountability(live.connection, world.handler, a_month_on, a_month_on + timedelta(days=1))
    assert held.cases_held == {}


def replayed_window(world: World, folder: str, cadre: UUID, start: datetime, end: datetime) -> Any:
    past = UpTo(world.ledger, end)
    replay = Runner(
        past,  # type: ignore[arg-type]
        [CadreAccountabilityView(past)],  # type: ignore[arg-type]
        store=ViewStore(f"sqlite:///{folder}/replay-{end.timestamp()}.sqlite"),
    )
    try:
        replay.catch_up()
        return cadre_accountability(replay.connection, cadre, start, end)
    finally:
        replay.close()


def test_windows_around_late_entered_handovers_equal_replays_of_what_had_happened_before_their_end(
    world: World, live: Runner, tmp_path: Any
) -> None:
    case_id = world.accepted()
    accepted_at = world.clock.now()
    world.advance(days=2)
    world.do(world.township_clerk, "assign_handler", case_id=case_id, handler_id=world.handler)
    convened_at = world.clock.now() - timedelta(days=1)
    world.advance(days=1)
    backdated(
        world,
        world.township_clerk,
        "assign_handler",
        accepted_at + HOUR,
        case_id=case_id,
        handler_id=world.township_clerk,
    )
    meeting = backdated(
        world,
        world.township_head,
        "convene_meeting",
        convened_at,
        unit_id=world.township,
        chair_id=world.township_head,
    ).aggregate_id
    backdated(
        world,
        world.township_head,
        "study_case",
        convened_at + HOUR,
        meeting_id=meeting,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=world.today() + timedelta(days=1),
    )
    world.advance(days=5)  # the meeting's deadline passes unmet
    live.catch_up()
    ends = [
        accepted_at + 2 * HOUR,
        convened_at + 2 * HOUR,
        world.clock.now() - timedelta(days=4),
        world.clock.now(),
    ]
    for cadre in (world.handler, world.township_clerk, world.township_leader):
        for end in ends:
            start = accepted_at - timedelta(days=1)
            expected = replayed_window(world, str(tmp_path), cadre, start, end)
            assert cadre_accountability(live.connection, cadre, start, end) == expected, (cadre, end)
    leader = account(live.connection, world.township_leader, world.clock.now())
    assert [f.pattern for f in leader.flags] == ["owned_not_resolved"]


# --- late records: kept from a day on, tagged in whole hours, counted by the reader ----------


def late_action(world: World, late_by: timedelta) -> UUID:
    case_id = world.accepted()
    world.advance(days=5)
    backdated(
        world,
        world.township_clerk,
        "record_action",
        world.clock.now() - late_by,
        case_id=case_id,
        kind="visit",
    )
    return case_id


@pytest.mark.parametrize(
    ("late_by", "tag"),
    [
        (timedelta(hours=24), None),  # exactly a day late: not kept
        (timedelta(hours=24, microseconds=1), "25"),
        (timedelta(hours=48), "48"),  # whole hours late: tagged with that number, not the next
        (timedelta(hours=48, microseconds=1), "49"),
        (timedelta(days=4, minutes=1), "97"),
    ],
)
def test_a_record_is_kept_as_late_from_a_day_on_tagged_with_its_hours_late_rounded_up(
    world: World, live: Runner, late_by: timedelta, tag: str | None
) -> None:
    case_id = late_action(world, late_by)
    live.catch_up()
    assert [row[2] for row in facts(live.connection, case_id, "late_record")] == ([tag] if tag else [])


@pytest.mark.parametrize(
    ("late_by", "threshold", "counted"),
    [
        (timedelta(hours=24, microseconds=1), 24, 1),
        (timedelta(hours=25), 24, 1),
        (timedelta(hours=25), 25, 0),
        (timedelta(hours=48), 47, 1),
        (timedelta(hours=48), 48, 0),
        (timedelta(hours=48, microseconds=1), 48, 1),
        (timedelta(hours=72, microseconds=1), 72, 1),
        (timedelta(hours=97), 96, 1),
        (timedelta(hours=97), 97, 0),
    ],
)
def test_the_readers_threshold_counts_exactly_the_records_late_by_more_than_it(
    world: World, live: Runner, late_by: timedelta, threshold: int, counted: int
) -> None:
    late_action(world, late_by)
    live.catch_up()
    end = world.clock.now() + HOUR
    found = account(live.connection, world.township_clerk, end, late_after=timedelta(hours=threshold))
    assert found.late_records == counted
    short = cadre_accountability(  # a window of part days only, counted from the facts themselves
        live.connection,
        world.township_clerk,
        world.clock.now() - late_by - timedelta(minutes=1),
        world.clock.now() - late_by + timedelta(minutes=1),
        late_after=timedelta(hours=threshold),
    )
    assert short.late_records == counted


@pytest.mark.parametrize(
    ("earlier_by", "counted"), [(timedelta(hours=72), 0), (timedelta(hours=72, microseconds=1), 1)]
)
def test_an_action_corrected_to_just_over_the_threshold_before_its_record_becomes_a_late_record(
    world: World, live: Runner, earlier_by: timedelta, counted: int
) -> None:
    case_id = world.accepted()
    world.advance(days=5)
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")  # version 3
    recorded_at = world.clock.now()
    live.catch_up()
    world.advance(hours=2)
    world.correct_record(case_id, 3, occurred_at=(recorded_at - earlier_by).isoformat())
    live.catch_up()
    found = account(live.connection, world.township_clerk, world.clock.now())
    assert found.late_records == counted
    assert [row[2] for row in facts(live.connection, case_id, "late_record")] == [str(72 + counted)]


def test_a_correction_that_shows_a_record_was_made_in_time_removes_its_late_record(
    world: World, live: Runner
) -> None:
    case_id = late_action(world, timedelta(days=4))  # version 3: entered four days after the fact
    live.catch_up()
    assert account(live.connection, world.township_clerk, world.clock.now() + HOUR).late_records == 1
    world.advance(hours=1)
    world.correct_record(case_id, 3, occurred_at=(world.clock.now() - timedelta(hours=2)).isoformat())
    live.catch_up()
    assert facts(live.connection, case_id, "late_record") == []
    assert account(live.connection, world.township_clerk, world.clock.now() + HOUR).late_records == 0
    assert day_counts(live.connection) == recount(live.connection)


def test_late_registrations_and_late_meetings_count_for_whoever_recorded_them(
    world: World, live: Runner
) -> None:
    world.advance(days=10)
    case_id = world.register(ctx_options={"occurred_at": world.clock.now() - timedelta(hours=80)})
    backdated(
        world,
        world.township_head,
        "convene_meeting",
        world.clock.now() - timedelta(hours=100),
        unit_id=world.township,
        chair_id=world.township_leader,
    )
    live.catch_up()
    end = world.clock.now() + HOUR
    clerk = account(live.connection, world.township_clerk, end)
    head = account(live.connection, world.township_head, end)
    assert (clerk.late_records, head.late_records) == (1, 1)
    assert (
        account(live.connection, world.township_head, end, late_after=timedelta(hours=100)).late_records == 0
    )
    assert [row[2] for row in facts(live.connection, case_id, "late_record")] == ["80"]


def test_a_meeting_study_entered_late_is_one_late_record_not_one_per_event_it_wrote(
    world: World, live: Runner
) -> None:
    case_id = world.accepted()
    meeting = world.do(
        world.township_head, "convene_meeting", unit_id=world.township, chair_id=world.township_head
    ).aggregate_id
    studied_at = world.clock.now() + HOUR
    world.advance(days=4)
    backdated(  # one record, entered three days late: the case studied, its leader and person named
        world,
        world.township_head,
        "study_case",
        studied_at,
        meeting_id=meeting,
        case_id=case_id,
        owning_leader_id=world.township_leader,
        responsible_cadre_id=world.handler,
        due=world.today() + timedelta(days=20),
    )
    live.catch_up()
    assert account(live.connection, world.township_head, world.clock.now()).late_records == 1
