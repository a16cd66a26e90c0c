"""The runner applies every event exactly once: through failures, races and concurrent writers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

import pytest

from domain.clock import ManualClock
from domain.ledger import CommandContext, Ledger
from projections import build_views
from projections.digest import digest
from projections.embedded import EmbeddedProjections
from projections.rebuild import rebuild
from projections.runner import Runner
from projections.store import ViewStore
from projections.tracking import tracks
from projections.view import Envelope, Writer
from projections.views.cadre_accountability import CadreAccountabilityView
from projections.views.case_state import CaseStateView
from tests.projections.replay import assert_views_equal_replay
from tests.support import World, build_world


class Boom(Exception):
    """A failure injected into a view halfway through a batch."""


class FailingOnce(CaseStateView):
    """case_state that fails in the middle of the batch holding a chosen position, once."""

    def __init__(self, ledger: Ledger, fail_at: int) -> None:
        super().__init__(ledger)
        self.fail_at = fail_at

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        if self.fail_at and any(e.position == self.fail_at for e in batch):
            self.fail_at = 0
            super().apply(writer, batch[: len(batch) // 2])  # half the rows written, then the crash
            raise Boom
        super().apply(writer, batch)


def busy_cases(world: World, count: int = 4, actions: int = 3) -> list[UUID]:
    cases = [world.accepted() for _ in range(count)]
    for number in range(actions):
        for case_id in cases:
            world.do(
                world.township_clerk,
                "record_action",
                case_id=case_id,
                kind="visit",
                narrative=f"走访{number}",
            )
    return cases


def test_a_runner_killed_mid_batch_applies_every_event_exactly_once_on_restart(world: World) -> None:
    busy_cases(world)
    end = world.ledger.recorder.max_notification_id() or 0
    crashing = Runner(world.ledger, [FailingOnce(world.ledger, fail_at=end - 3)], batch=7)
    with pytest.raises(Boom):
        crashing.catch_up()
    stopped_at = crashing.position
    crashing.close()
    assert stopped_at < end
    restarted = Runner(world.ledger, build_views(world.ledger), batch=7)
    restarted.catch_up()
    assert restarted.position == end
    assert_views_equal_replay(world.ledger, restarted.connection)
    live = {view.name: digest(restarted.connection, view) for view in build_views(world.ledger)}
    for view in build_views(world.ledger):
        rebuild(world.ledger, view)
    assert {view.name: digest(restarted.connection, view) for view in build_views(world.ledger)} == live
    restarted.close()


def test_a_view_that_failed_forgets_its_memory_and_replays_from_the_store(world: World) -> None:
    busy_cases(world, count=2, actions=2)
    end = world.ledger.recorder.max_notification_id() or 0
    view = FailingOnce(world.ledger, fail_at=end)
    runner = Runner(world.ledger, [view], batch=5)
    with pytest.raises(Boom):
        runner.catch_up()
    runner.catch_up()  # the same runner and view carry on after the failure
    assert runner.position == end
    rows = dict(runner.connection.execute("SELECT case_id, action_count FROM case_state"))
    assert sorted(rows.values()) == [2, 2]
    runner.close()


def test_concurrent_writers_and_followers_miss_nothing_and_apply_nothing_twice(
    world: World, database_url: str
) -> None:
    """Four writers (own connections each) on shared cases while two runners follow the log."""
    cases = [world.accepted() for _ in range(3)]
    writers = [Ledger(database_url, clock=world.clock) for _ in range(4)]
    followers = [Runner(world.ledger, build_views(world.ledger), batch=3) for _ in range(2)]
    stop = threading.Event()
    follow = [threading.Thread(target=f.run, args=(stop, 0.01)) for f in followers]
    for thread in follow:
        thread.start()

    failures: list[BaseException] = []

    def write(ledger: Ledger, number: int) -> None:
        try:
            record(ledger, number)
        except BaseException as error:
            failures.append(error)
            raise

    def record(ledger: Ledger, number: int) -> None:
        for step in range(12):
            case_id = cases[(number + step) % len(cases)]
            ledger.record_action(
                world.ctx(world.township_clerk, f"写入者{number}第{step}次走访"),
                case_id=case_id,
                kind="visit",
            )

    threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    end = world.ledger.recorder.max_notification_id() or 0
    assert all(f.wait_for(end, timeout=30) for f in followers)
    stop.set()
    for thread in follow:
        thread.join()
    connection = followers[0].connection
    assert_views_equal_replay(world.ledger, connection)
    live = {view.name: digest(connection, view) for view in build_views(world.ledger)}
    for view in build_views(world.ledger):
        rebuild(world.ledger, view)
    assert {view.name: digest(connection, view) for view in build_views(world.ledger)} == live
    rows = dict(connection.execute("SELECT case_id, action_count FROM case_state"))
    assert sum(rows[str(c)] for c in cases) == 4 * 12
    for runner in followers:
        runner.close()
    for ledger in writers:
        ledger.close()


def test_embedded_views_show_a_command_promptly_after_it_is_saved(world: World) -> None:
    views = EmbeddedProjections(world.ledger, poll=5.0, watch=5.0).start()
    try:
        case_id = world.register()
        started = time.perf_counter()
        position = world.do(world.township_clerk, "accept_case", case_id=case_id).position
        assert views.wait_for(position, timeout=2.0)
        assert time.perf_counter() - started < 1.0  # woken by the save, not by the 5 s poll
        assert views.runner is not None
        status = views.runner.connection.execute(
            "SELECT status FROM case_state WHERE case_id = ?", (str(case_id),)
        )
        assert status == [("accepted",)]
    finally:
        views.stop()


def test_of_two_processes_on_one_store_one_applies_the_log_the_other_watches_then_takes_over(
    world: World, database_url: str
) -> None:
    first = EmbeddedProjections(world.ledger, watch=0.01).start()
    other_ledger = Ledger(database_url, clock=world.clock)
    second = EmbeddedProjections(other_ledger, watch=0.01).start()
    try:
        assert (first.applying, second.applying) == (True, False)
        moved: list[int] = []
        assert second.runner is not None
        second.runner.listeners.append(lambda: moved.append(1))
        case_id = world.register()
        saved = other_ledger.accept_case(CommandContext(actor_id=world.township_clerk, narrative="受理"),
                                         case_id=case_id)  # fmt: skip
        assert second.wait_for(saved.position, timeout=5)  # saved by the watcher, applied by the other
        deadline = time.monotonic() + 5  # the readers see it; the watcher hears of it at its next look
        while not moved and time.monotonic() < deadline:
            time.sleep(0.005)
        assert moved  # the watcher's listeners heard that the views moved
        first.stop()
        saved = other_ledger.record_action(
            CommandContext(actor_id=world.township_clerk, narrative="走访"), case_id=case_id, kind="visit"
        )
        assert second.wait_for(saved.position, timeout=5)
        assert second.applying
        assert_views_equal_replay(world.ledger, second.runner.connection)
    finally:
        second.stop()
        first.stop()
        other_ledger.close()


def test_a_rebuild_reports_its_progress_up_to_the_end_of_the_log(world: World) -> None:
    busy_cases(world)
    reported: list[tuple[int, int]] = []
    rebuild(world.ledger, CaseStateView(world.ledger), report=lambda p: reported.append((p.done, p.total)))
    end = world.ledger.recorder.max_notification_id()
    assert reported[-1] == (end, end)  # a log shorter than one commit reported 0 before


def test_views_may_live_in_a_database_of_their_own(world: World, tmp_path: Path) -> None:
    busy_cases(world, count=2, actions=2)
    elsewhere = ViewStore(f"sqlite:///{tmp_path}/views.sqlite")
    runner = Runner(world.ledger, build_views(world.ledger), store=elsewhere)
    runner.catch_up()
    assert_views_equal_replay(world.ledger, runner.connection)
    tables = {
        row[0] for row in runner.connection.execute("SELECT name FROM sqlite_master WHERE type = 'view'")
    }
    assert {"case_state", "case_timeline", "cadre_roles", "unit_counts"} <= tables
    runner.close()


@pytest.mark.postgres
def test_a_rebuild_on_postgresql_swaps_in_tables_the_planner_has_statistics_for(
    postgres_schema_url: str, clock: ManualClock
) -> None:
    with Ledger(postgres_schema_url, clock=clock) as ledger:
        busy_cases(build_world(ledger, clock), count=3, actions=2)
        view = CadreAccountabilityView(ledger)
        rebuild(ledger, view)
        connection = ViewStore(postgres_schema_url).connect()
        try:
            (live,) = [track for track in tracks(connection, view.name) if track.live]
            filled = [
                name
                for name in (table.physical(live.generation) for table in view.tables)
                if connection.execute(f"SELECT COUNT(*) FROM {name}")[0][0] > 0
            ]
            assert len(filled) >= 3  # facts, days, deadlines: an empty table has nothing to sample
            for name in filled:
                columns = connection.execute(
                    "SELECT COUNT(*) FROM pg_stats WHERE schemaname = ? AND tablename = ?",
                    (connection.schema, name),
                )
                assert columns[0][0] > 0, f"{name}: no statistics"
        finally:
            connection.close()
