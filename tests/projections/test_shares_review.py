"""Adversarial checks of rebuilds in shares, holds, the rebuild lock and `Runner.wait_for`."""

from __future__ import annotations

import fcntl
import gc
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

import projections.rebuild as rebuilding
import projections.shares as sharing
from domain.case import Case
from domain.catalogue import event_classes
from domain.clock import ManualClock
from domain.ids import derived_id
from domain.ledger import Ledger
from domain.storage.url import store_env
from domain.values import UnitLevel
from projections import VIEWS, build_views, bulk
from projections.digest import Digest, digest
from projections.rebuild import ensure_current, rebuild, rebuild_together
from projections.runner import Runner, Share
from projections.store import RebuildRunning, ViewConnection, ViewStore
from projections.tracking import TRACKING, Track, live_track, tracks
from projections.tracking import claim as real_claim
from projections.view import Envelope, Table, View, Writer
from projections.views.case_state import CaseStateView
from projections.views.case_timeline import CASE_TIMELINE, CaseTimelineView
from tests.api.test_cli import dutyledger
from tests.conftest import POSTGRES_URL, fresh_store
from tests.projections.commits import counting
from tests.projections.replay import assert_views_equal_replay
from tests.projections.test_runner import Boom, FailingOnce, busy_cases
from tests.projections.test_runtime_review import (
    busy_case_followed,
    swap_after_a_write_the_live_runner_applied,
)
from tests.support import INTAKE, World, build_world

ROOT = Path(__file__).resolve().parents[2]
NAMES = list(VIEWS)
CASE_TOPICS = frozenset(event.TOPIC for event in event_classes(Case))


# Helpers


def digests(connection: ViewConnection, ledger: Ledger) -> dict[str, Digest]:
    return {view.name: digest(connection, view) for view in build_views(ledger)}


def single_pass(ledger: Ledger, store: ViewStore) -> dict[str, Digest]:
    """Every view rebuilt from the whole log in one pass, in this process; the digests of the result."""
    assert released(store, NAMES)
    rebuild_together(ledger, build_views(ledger), store, shares=1)
    connection = store.connect()
    try:
        return digests(connection, ledger)
    finally:
        connection.close()


def live_generations(store: ViewStore) -> dict[str, Track | None]:
    connection = store.connect()
    try:
        return {name: live_track(connection, name) for name in NAMES}
    finally:
        connection.close()


def share_of(aggregate: UUID, shares: int) -> int:
    return next(index for index in range(shares) if Share(index, shares, 0).holds(str(aggregate)))


def cases_in_every_share(world: World, shares: int) -> list[UUID]:
    """Accepted cases, at least one held by each of `shares` shares."""
    cases: list[UUID] = []
    while {share_of(case_id, shares) for case_id in cases} != set(range(shares)):
        assert len(cases) < 60, "ids never spread over every share"
        cases.append(world.accepted())
    return cases


def lock_is_free(store: ViewStore, names: Sequence[str]) -> bool:
    try:
        with store.rebuild_lock(names):
            return True
    except RebuildRunning:
        return False


def lock_from_another_thread_is_free(store: ViewStore, names: Sequence[str]) -> bool:
    found: list[bool] = []
    thread = threading.Thread(target=lambda: found.append(lock_is_free(store, names)))
    thread.start()
    thread.join()
    return found == [True]


def taken_by_another_thread(store: ViewStore, names: Sequence[str], within: float = 5.0) -> bool:
    """Whether another thread takes the locks of `names` within `within` seconds (see `released`)."""
    deadline = time.monotonic() + within
    while not lock_from_another_thread_is_free(store, names):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def released(store: ViewStore, names: Sequence[str], within: float = 5.0) -> bool:
    """Whether the rebuild locks of `names` are let go of within `within` seconds (looked at, not taken).

    A lock is let go of as its block ends (a test below checks that); waiting a little more
    costs nothing when it is.
    """
    deadline = time.monotonic() + within
    with held_by_another_session(store.database_url, names) as held:
        while held():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
    return True


@contextmanager
def held_by_another_session(
    database_url: str, names: Sequence[str] = ("case_state",)
) -> Iterator[Callable[[], bool]]:
    """A check, by a connection open already, whether another session holds a rebuild lock right now.

    SQLite: the `flock` of `ledger.sqlite-rebuild-VIEW.lock` for each view (the files the docs name);
    PostgreSQL: an advisory lock on one of the views' keys in this store's schema, granted to another
    session (tests running at once in other schemas take their own).
    """
    if database_url.startswith("sqlite"):
        paths = [f"{store_env(database_url)['SQLITE_DBNAME']}-rebuild-{name}.lock" for name in names]

        def flocked() -> bool:
            for path in paths:
                with open(path, "a") as file:
                    try:
                        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        return True
            return False

        yield flocked
        return
    probe = psycopg.connect(POSTGRES_URL, autocommit=True)
    schema = store_env(database_url).get("POSTGRES_SCHEMA") or "public"
    keys = [f"{schema}.dutyledger-rebuild.{name}" for name in names]

    def advisory() -> bool:
        row = probe.execute(
            "SELECT count(*) FROM pg_locks l, "
            "(SELECT hashtextextended(k, 0) AS key FROM unnest(%s::text[]) k) w "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = (w.key >> 32) & 4294967295 AND l.objid::bigint = w.key & 4294967295",
            (keys,),
        ).fetchone()
        assert row is not None
        return int(row[0]) > 0

    try:
        yield advisory
    finally:
        probe.close()


def backend_of(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


def count(store: ViewStore, query: str) -> int:
    """The number a query of one number answers."""
    connection = store.connect()
    try:
        [(number,)] = connection.execute(query)
        return int(number)
    finally:
        connection.close()


def table_names(store: ViewStore) -> set[str]:
    """Tables and SQL views in the store's database (or PostgreSQL schema)."""
    connection = store.connect()
    try:
        if connection.dialect == "sqlite":
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
        else:
            rows = connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            )
        return {str(name) for (name,) in rows}
    finally:
        connection.close()


def open_connections(database_url: str) -> int:
    """Connections this process holds open to the store: handles on the SQLite file, or TCP
    connections to the PostgreSQL server (other tests, in other processes, hold their own)."""
    targets = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    env = store_env(database_url)
    if database_url.startswith("sqlite"):
        path = os.path.realpath(env["SQLITE_DBNAME"])
        return sum(os.path.realpath(f"/proc/self/fd/{fd}") == path for fd in targets)
    mine = {target[len("socket:[") : -1] for target in targets.values() if target.startswith("socket:[")}
    port, established = int(env["POSTGRES_PORT"]), "01"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                count += int(remote.rsplit(":", 1)[1], 16) == port and state == established and inode in mine
    return count


@pytest.fixture
def scratch_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder rebuilds in shares put their scratch files in (instead of the system's $TMPDIR)."""
    root = tmp_path / "scratch-root"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


class ExplodingCaseState(CaseStateView):
    """case_state that raises on its first batch holding any case event (in the share built in-process)."""

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        if batch:
            raise Boom
        super().apply(writer, batch)


VERSIONS_V1 = Table("review_versions", "case_id TEXT NOT NULL, version BIGINT NOT NULL", key=("case_id",))
VERSIONS_V2 = Table(
    "review_versions",
    "case_id TEXT NOT NULL, version BIGINT NOT NULL, topic TEXT NOT NULL",
    key=("case_id",),
)


class CaseVersions(View):
    """A view of the tests' own (not registered): each case's latest version."""

    name = "review_versions"
    schema_version = 1
    tables = (VERSIONS_V1,)
    topics = CASE_TOPICS

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        latest = {e.aggregate[0]: (e.aggregate[0], e.aggregate[1]) for e in batch}
        writer.upsert(VERSIONS_V1, ("case_id", "version"), list(latest.values()))


class CaseVersionsWithTopic(View):
    """The same view at its next schema: a column added to its table."""

    name = "review_versions"
    schema_version = 2
    tables = (VERSIONS_V2,)
    topics = CASE_TOPICS

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        latest = {e.aggregate[0]: (e.aggregate[0], e.aggregate[1], e.topic) for e in batch}
        writer.upsert(VERSIONS_V2, ("case_id", "version", "topic"), list(latest.values()))


# Shares that fail


def test_a_share_that_fails_leaves_the_live_generation_serving_the_lock_released_and_no_scratch_files(
    world: World, scratch_root: Path
) -> None:
    cases = cases_in_every_share(world, 2)
    store = ViewStore(world.ledger.database_url)
    live = Runner(world.ledger, build_views(world.ledger), store)
    live.catch_up()
    before = digests(live.connection, world.ledger)
    generations = live_generations(store)
    views = [ExplodingCaseState(world.ledger), *build_views(world.ledger)[1:]]
    try:
        with pytest.raises(Boom):
            rebuild_together(world.ledger, views, store, shares=2)
        assert list(scratch_root.iterdir()) == []
        assert gc.isenabled()
        assert live_generations(store) == generations
        assert digests(live.connection, world.ledger) == before
        assert released(store, NAMES)

        world.do(world.township_clerk, "record_action", case_id=cases[0], kind="visit")
        live.catch_up()  # the live generation keeps following
        assert_views_equal_replay(world.ledger, live.connection)
        rebuilt = rebuild_together(world.ledger, build_views(world.ledger), store, shares=2)
        for name, track in rebuilt.items():
            assert [t.generation for t in tracks(live.connection, name)] == [track.generation]
        assert_views_equal_replay(world.ledger, live.connection)
    finally:
        live.close()


def test_a_view_another_process_cannot_build_is_rebuilt_in_one_pass_with_no_scratch_file(
    world: World, scratch_root: Path
) -> None:
    busy_cases(world, count=3, actions=1)
    store = ViewStore(world.ledger.database_url)
    live = Runner(world.ledger, [CaseVersions(world.ledger)], store)
    live.catch_up()
    before = digest(live.connection, CaseVersions(world.ledger))
    try:
        # the other processes build views by name, and this one is not registered: no shares
        built = rebuild_together(world.ledger, [CaseVersions(world.ledger)], store, shares=2)
        assert built["review_versions"].position == world.ledger.recorder.max_notification_id()
        assert list(scratch_root.iterdir()) == []
        assert digest(live.connection, CaseVersions(world.ledger)) == before
        assert before.rows == 3
        assert released(store, ["review_versions"])
    finally:
        live.close()


def test_a_merge_that_fails_halfway_leaves_no_fresh_tables_behind_and_the_live_one_serving(
    world: World, scratch_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases_in_every_share(world, 2)
    store = ViewStore(world.ledger.database_url)
    live = Runner(world.ledger, build_views(world.ledger), store)
    live.catch_up()
    before = digests(live.connection, world.ledger)
    claimed: list[str] = []
    scratch: list[Path] = []

    def claim_then_fail(connection: ViewConnection, track: Track, to_position: int) -> Track:
        scratch.extend(scratch_root.iterdir())
        if claimed:  # the first view's rows are copied and claimed; the second view's copy fails
            raise Boom
        claimed.append(track.view)
        return real_claim(connection, track, to_position)

    monkeypatch.setattr(sharing, "claim", claim_then_fail)
    try:
        with pytest.raises(Boom):
            rebuild_together(world.ledger, build_views(world.ledger), store, shares=2)
        monkeypatch.undo()
        assert claimed == [NAMES[0]]
        assert scratch, "the shares were not built under scratch_root"
        present = table_names(store)
        for view in build_views(world.ledger):
            [failed] = [t for t in tracks(live.connection, view.name) if not t.live]
            assert failed.position == 0, f"{view.name}: the merge's claim outlived its rollback"
            for table in view.tables:
                assert table.physical(failed.generation) not in present, (
                    f"{table.name}: failed merge's rows kept"
                )
        assert digests(live.connection, world.ledger) == before
        assert list(scratch_root.iterdir()) == []
        assert released(store, NAMES)
    finally:
        live.close()


# What a rebuild in shares builds


def test_a_rebuild_in_shares_into_a_separate_views_database_equals_a_single_pass_and_leaves_the_ledger_alone(
    world: World, database_url: str, tmp_path: Path
) -> None:
    cases_in_every_share(world, 3)
    busy_cases(world, count=2, actions=2)
    ledger_tables = table_names(ViewStore(database_url))
    with fresh_store(backend_of(database_url), tmp_path) as elsewhere:
        store = ViewStore(elsewhere)
        built = rebuild_together(world.ledger, build_views(world.ledger), store, shares=3)
        connection = store.connect()
        try:
            shared = digests(connection, world.ledger)
            assert_views_equal_replay(world.ledger, connection)
        finally:
            connection.close()
        assert shared == single_pass(world.ledger, store)
        end = world.ledger.recorder.max_notification_id()
        assert {name: track.position for name, track in built.items()} == dict.fromkeys(NAMES, end)
    assert table_names(ViewStore(database_url)) == ledger_tables


def test_a_rebuild_in_more_shares_than_aggregates_equals_a_single_pass(
    ledger: Ledger, clock: ManualClock, database_url: str
) -> None:
    world = World(ledger, clock)
    world.do(
        derived_id("test", "admin"),
        "establish",
        root_unit_name="周口市",
        root_level=UnitLevel.CITY,
        jurisdiction="CN",
        administrator_name="管理员",
        administrator_position="系统管理员",
    )
    rows = ledger.command_log.read_log(0, 1000)
    held = {share_of(UUID(str(row[1])), 5) for row in rows}
    assert 0 < len(held) < 5  # some shares hold no aggregate at all
    store = ViewStore(database_url)
    built = rebuild_together(ledger, build_views(ledger), store, shares=5)
    connection = store.connect()
    try:
        shared = digests(connection, ledger)
    finally:
        connection.close()
    assert shared == single_pass(ledger, store)
    assert shared["unit_stats"].rows > 0
    assert {track.position for track in built.values()} == {rows[-1][0]}


def test_a_rebuild_in_shares_of_an_empty_log_leaves_live_views_a_runner_then_follows(
    ledger: Ledger, clock: ManualClock, database_url: str
) -> None:
    store = ViewStore(database_url)
    built = rebuild_together(ledger, build_views(ledger), store, shares=3)
    assert {name: (track.position, track.live) for name, track in built.items()} == dict.fromkeys(
        NAMES, (0, True)
    )
    world = build_world(ledger, clock)
    world.do(world.township_clerk, "record_action", case_id=world.accepted(), kind="visit")
    runner = Runner(ledger, build_views(ledger), store)
    try:
        runner.catch_up()
        assert runner.position == ledger.recorder.max_notification_id()
        assert {name: runner.tracks[name].generation for name in NAMES} == {
            name: track.generation for name, track in built.items()
        }
        assert_views_equal_replay(ledger, runner.connection)
        followed = digests(runner.connection, ledger)
    finally:
        runner.close()
    assert followed == single_pass(ledger, store)


def test_counts_kept_by_cases_of_several_shares_are_summed_exactly_through_corrections_and_late_records(
    world: World,
) -> None:
    """One clerk's facts of one day fall to cases of every share; corrections take some of them back."""
    cases = cases_in_every_share(world, 3)
    world.advance(days=5)
    for case_id in cases:
        world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
    three_days_ago = world.clock.now() - timedelta(days=3)
    for case_id in cases[::2]:
        world.do(
            world.township_clerk,
            "record_action",
            case_id=case_id,
            kind="talk",
            ctx_options={"occurred_at": three_days_ago},  # late, and before the case's last event
        )
    for case_id in cases[1::2]:
        world.correct_category(case_id)
    store = ViewStore(world.ledger.database_url)
    single = single_pass(world.ledger, store)
    connection = store.connect()
    try:
        for shares in (2, 3):
            assert released(store, NAMES)
            rebuild_together(world.ledger, build_views(world.ledger), store, shares=shares)
            assert digests(connection, world.ledger) == single, f"{shares} shares"
        days = connection.execute(
            "SELECT cadre_id, day, kind, tag, count FROM cadre_days ORDER BY 1, 2, 3, 4"
        )
        facts = connection.execute(
            "SELECT cadre_id, substr(at, 1, 10), kind, COALESCE(tag, ''), COUNT(*) FROM cadre_facts "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        assert [tuple(row) for row in days] == [tuple(row) for row in facts]
        clerk = [row for row in days if row[0] == str(world.township_clerk) and row[2] == "action"]
        assert any(row[4] > 1 for row in clerk)  # a row really was summed over shares
        registered = connection.execute("SELECT SUM(value) FROM unit_counts WHERE metric = 'registered'")
        assert registered == [(len(cases),)]
        assert connection.execute("SELECT COUNT(*) FROM unit_counts WHERE value <= 0") == [(0,)]
    finally:
        connection.close()


def test_a_merge_copies_in_transactions_of_a_few_rows_so_the_ledgers_writers_never_wait_for_all_of_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the merge commits every `bulk.CHUNK` rows; counts summed across chunks stay exact."""
    for case_id in cases_in_every_share(world, 2):
        world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")
    store = ViewStore(world.ledger.database_url)
    single = single_pass(world.ledger, store)
    merged: list[int] = []

    def merging(connection: ViewConnection) -> bool:
        return any(row[1] == "share0" for row in connection.execute("PRAGMA database_list"))

    monkeypatch.setattr(bulk, "CHUNK", 2)
    monkeypatch.setattr(ViewConnection, "transaction", counting(merged, merging))
    rebuild_together(world.ledger, build_views(world.ledger), store, shares=2)
    monkeypatch.undo()
    connection = store.connect()
    try:
        assert digests(connection, world.ledger) == single
    finally:
        connection.close()
    if store.dialect == "sqlite":
        assert len(merged) > 20  # many small commits…
        assert max(merged) <= 2  # …none of more than a chunk
    else:
        assert merged == []  # PostgreSQL: one transaction, which blocks no writer


def test_events_recorded_between_the_share_build_and_the_merge_are_in_the_swapped_generation(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = cases_in_every_share(world, 2)
    away = next(case_id for case_id in cases if share_of(case_id, 2) == 1)  # built in another process
    store = ViewStore(world.ledger.database_url)
    real_merge = sharing.merge
    recorded: list[int] = []

    def merge_after_more_writes(*args: Any) -> dict[str, Track]:
        recorded.append(world.do(world.township_clerk, "record_action", case_id=away, kind="visit").position)
        recorded.append(world.do(world.township_clerk, "register_case", **new_case(world)).position)
        return real_merge(*args)

    monkeypatch.setattr(sharing, "merge", merge_after_more_writes)
    built = rebuild_together(world.ledger, build_views(world.ledger), store, shares=2)
    monkeypatch.undo()
    assert len(recorded) == 2
    assert {track.position for track in built.values()} == {recorded[-1]}
    connection = store.connect()
    try:
        assert_views_equal_replay(world.ledger, connection)
        actions = connection.execute("SELECT action_count FROM case_state WHERE case_id = ?", (str(away),))
        assert actions == [(1,)]
        shared = digests(connection, world.ledger)
    finally:
        connection.close()
    assert shared == single_pass(world.ledger, store)


def new_case(world: World) -> dict[str, Any]:
    return {"intake": INTAKE, "petitioner_id": UUID(int=7)}


def test_a_rebuild_in_shares_while_a_live_runner_follows_ends_with_the_digests_of_a_single_pass(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = cases_in_every_share(world, 2)
    store = ViewStore(world.ledger.database_url)
    live = Runner(world.ledger, build_views(world.ledger), store, batch=3)
    live.catch_up()
    stop = threading.Event()
    follower = threading.Thread(target=live.run, args=(stop, 0.01))
    follower.start()
    real_merge = sharing.merge

    def merge_after_a_write(*args: Any) -> dict[str, Track]:
        world.do(world.township_clerk, "record_action", case_id=cases[-1], kind="visit")
        return real_merge(*args)

    def write_meanwhile(_: object) -> None:
        world.do(world.township_clerk, "record_action", case_id=cases[0], kind="visit")

    monkeypatch.setattr(sharing, "merge", merge_after_a_write)
    monkeypatch.setattr(bulk, "HOLD", (2, 600.0))
    try:
        rebuild_together(world.ledger, build_views(world.ledger), store, report=write_meanwhile, shares=2)
        monkeypatch.undo()
        end = world.do(world.township_clerk, "record_action", case_id=cases[1], kind="visit").position
        answers: list[bool] = []
        waiters = [threading.Thread(target=lambda: answers.append(live.wait_for(end, 10))) for _ in range(4)]
        for waiter in waiters:
            waiter.start()
        for waiter in waiters:
            waiter.join()
        assert answers == [True] * 4
        probe = store.connect()
        try:
            seen = [live_track(probe, name) for name in NAMES]
            assert all(track is not None and track.position >= end for track in seen)
        finally:
            probe.close()
    finally:
        stop.set()
        live.wake()
        follower.join()
    try:
        assert_views_equal_replay(world.ledger, live.connection)
        followed = digests(live.connection, world.ledger)
    finally:
        live.close()
    assert {found.position for found in followed.values()} == {end}
    assert followed == single_pass(world.ledger, store)


# Holds


class SmallBatches(Runner):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["batch"] = 5
        super().__init__(*args, **kwargs)


def test_each_hold_commits_the_position_it_reports(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    busy_cases(world, count=3, actions=2)
    store = ViewStore(world.ledger.database_url)
    observer = store.connect()
    seen: list[tuple[int, int]] = []

    def look(progress: Any) -> None:
        [building] = [t for t in tracks(observer, "case_state") if not t.live]
        seen.append((progress.done, building.position))

    monkeypatch.setattr(rebuilding, "Runner", SmallBatches)
    monkeypatch.setattr(bulk, "HOLD", (10, 600.0))
    try:
        built = rebuild(world.ledger, CaseStateView(world.ledger), store, report=look)
    finally:
        observer.close()
    assert len(seen) >= 3
    assert all(done == committed for done, committed in seen), seen
    steps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(seen)]
    assert all(step == 10 for step in steps[:-1]), seen
    assert 0 <= steps[-1] <= 10, seen  # the last hold: whatever was left
    assert built.position == seen[-1][0] == world.ledger.recorder.max_notification_id()


def test_a_failed_single_pass_drops_its_tables_and_keeps_its_own_error_when_dropping_fails_too(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy_cases(world, count=2, actions=1)
    end = world.ledger.recorder.max_notification_id() or 0
    store = ViewStore(world.ledger.database_url)
    with pytest.raises(Boom):
        rebuild(world.ledger, FailingOnce(world.ledger, fail_at=end), store)
    [failed] = fresh_tracks(store, "case_state")
    assert failed.position == 0
    assert not {table.physical(failed.generation) for table in CaseStateView.tables} & table_names(store)

    def store_gone(*args: Any) -> None:
        raise OSError("the views' database went away")

    monkeypatch.setattr(rebuilding, "discard", store_gone)
    with pytest.raises(Boom):  # the rebuild's own error, not the clean-up's
        rebuild(world.ledger, FailingOnce(world.ledger, fail_at=end), store)


def test_an_old_generation_that_cannot_be_dropped_after_the_swap_leaves_the_swap_done_and_goes_at_the_next(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, old, kept = rebuilt_once(world, CaseStateView, cases=2, actions=1)
    real_execute = ViewConnection.execute

    def refusing_drops(connection: ViewConnection, statement: str, params: Any = ()) -> Any:
        if statement.startswith("DROP TABLE") and any(name in statement for name in kept):
            raise OSError("the store refused the drop")
        return real_execute(connection, statement, params)

    monkeypatch.setattr(ViewConnection, "execute", refusing_drops)
    new = rebuild(world.ledger, CaseStateView(world.ledger), store)
    monkeypatch.undo()
    assert new.generation != old.generation
    connection = store.connect()
    try:
        assert live_track(connection, "case_state") == new
        assert kept <= table_names(store)  # still there, not served
        rebuild(world.ledger, CaseStateView(world.ledger), store)
        assert not kept & table_names(store)
        assert [t.live for t in tracks(connection, "case_state")] == [True]
    finally:
        connection.close()


def test_an_old_generation_is_taken_apart_in_short_transactions_before_its_tables_are_dropped(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the ledger's writers wait for each transaction in its file: none may walk a whole table."""
    store, _, old_tables = rebuilt_once(world, CaseTimelineView, cases=3, actions=2)
    rows = sum(count(store, f"SELECT COUNT(*) FROM {name}") for name in old_tables)
    steps: list[tuple[str, str]] = []
    left: list[tuple[Any, ...]] = []  # rows the table still held when dropped
    changes: list[int] = []
    real_execute = ViewConnection.execute
    real_transaction = ViewConnection.transaction

    def watched(connection: ViewConnection, statement: str, params: Any = ()) -> Any:
        for name in old_tables:
            if statement.startswith(f"DROP INDEX IF EXISTS {name}_i"):
                steps.append(("drop index", name))
            elif statement.startswith(f"DELETE FROM {name} "):
                steps.append(("delete rows", name))
            elif statement == f"DROP TABLE IF EXISTS {name}":
                steps.append(("drop table", name))
                if connection.dialect == "sqlite":
                    left.extend(real_execute(connection, f"SELECT COUNT(*) FROM {name}"))
        return real_execute(connection, statement, params)

    counted = counting(changes)

    def dropping(*args: Any, **kwargs: Any) -> None:
        changes.clear()  # only the drop's transactions
        monkeypatch.setattr(ViewConnection, "transaction", counted)
        real_drop(*args, **kwargs)
        monkeypatch.setattr(ViewConnection, "transaction", real_transaction)

    real_drop = rebuilding.drop_tables
    monkeypatch.setattr(ViewConnection, "execute", watched)
    monkeypatch.setattr(rebuilding, "drop_tables", dropping)
    monkeypatch.setattr(bulk, "CHUNK", 2)
    new = rebuild(world.ledger, CaseTimelineView(world.ledger), store)
    monkeypatch.undo()
    assert not old_tables & table_names(store)
    connection = store.connect()
    try:
        assert [t.generation for t in tracks(connection, "case_timeline")] == [new.generation]
    finally:
        connection.close()
    [timeline] = old_tables
    if store.dialect == "postgres":  # a drop removes the table's files: no pages walked, nothing to split
        assert steps == [("drop table", timeline)]
        return
    kinds = [kind for kind, _ in steps]
    indexes = len(CaseTimelineView.tables[0].indexes)
    assert kinds[:indexes] == ["drop index"] * indexes  # the indexes first: deleting rows then updates none
    assert kinds[indexes:-1] == ["delete rows"] * (len(kinds) - indexes - 1)
    assert kinds[-1] == "drop table"
    assert left == [(0,)]  # of a table already empty
    assert rows > 10
    assert (
        sum(changes) == rows + 1
    )  # every row deleted in the drop's own transactions (and its tracking row)…
    assert max(changes) <= 2  # …none of more than a chunk


def test_each_index_of_a_swap_is_built_on_sqlite_in_a_transaction_of_its_own_queued_with_the_writers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a command waiting for the write lock meets the index builds in the queue, and goes between two."""
    store, _, _ = rebuilt_once(world, CaseTimelineView, cases=2, actions=1)
    began: list[int] = []
    builds: list[tuple[str, bool, int]] = []  # statement, the writers' lock held, transactions begun before
    real_execute = ViewConnection.execute
    real_transaction = ViewConnection.transaction

    def counted(connection: ViewConnection) -> Any:
        began.append(1)
        return real_transaction(connection)

    def watched(connection: ViewConnection, statement: str, params: Any = ()) -> Any:
        if statement.startswith("CREATE INDEX"):
            queued = connection.writers is not None and connection.writers.locked()
            builds.append((statement, queued and connection.raw.in_transaction, len(began)))
        return real_execute(connection, statement, params)

    monkeypatch.setattr(ViewConnection, "transaction", counted)
    monkeypatch.setattr(ViewConnection, "execute", watched)
    new = rebuild(world.ledger, CaseTimelineView(world.ledger), store)
    monkeypatch.undo()
    assert [statement for statement, _, _ in builds] == CASE_TIMELINE.create_indexes(new.generation)
    if store.dialect == "sqlite":
        assert all(queued for _, queued, _ in builds)
        assert len({before for _, _, before in builds}) == len(builds)  # one transaction each


def rebuilt_once(
    world: World, view: type[View], cases: int, actions: int
) -> tuple[ViewStore, Track, set[str]]:
    """`view` rebuilt once over a few busy cases: its store, its generation and that generation's tables."""
    busy_cases(world, count=cases, actions=actions)
    store = ViewStore(world.ledger.database_url)
    built = rebuild(world.ledger, view(world.ledger), store)
    return store, built, {table.physical(built.generation) for table in view.tables}


def fresh_tracks(store: ViewStore, view: str) -> list[Track]:
    """The view's generations that are not live (a rebuild's)."""
    connection = store.connect()
    try:
        return [t for t in tracks(connection, view) if not t.live]
    finally:
        connection.close()


def test_a_failed_rebuild_gives_the_cycle_collector_back_as_it_found_it(world: World) -> None:
    busy_cases(world, count=2, actions=1)
    end = world.ledger.recorder.max_notification_id() or 0
    store = ViewStore(world.ledger.database_url)
    with pytest.raises(Boom):
        rebuild(world.ledger, FailingOnce(world.ledger, fail_at=end), store)
    assert gc.isenabled()
    gc.disable()
    try:
        assert released(store, ["case_state"])
        with pytest.raises(Boom):
            rebuild(world.ledger, FailingOnce(world.ledger, fail_at=end), store)
        assert not gc.isenabled()
        assert released(store, ["case_state"])
        rebuild(world.ledger, CaseStateView(world.ledger), store)
        assert not gc.isenabled()
    finally:
        gc.enable()


class Interleaved:
    """`gc` as `bulk` sees it: the second hold's thread is preempted between its look and its pause.

    The first hold ends in that window: a schedule the interpreter may always choose.
    """

    def __init__(self) -> None:
        self.second_looked = threading.Event()
        self.first_done = threading.Event()

    def isenabled(self) -> bool:
        found = gc.isenabled()
        if threading.current_thread().name == "second":
            self.second_looked.set()
        return found

    def disable(self) -> None:
        if threading.current_thread().name == "second":
            self.first_done.wait(2)
        gc.disable()

    def enable(self) -> None:
        gc.enable()

    def collect(self, generation: int = 2) -> int:
        return gc.collect(generation)


def test_holds_in_two_threads_at_once_leave_the_cycle_collector_enabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shim = Interleaved()
    monkeypatch.setattr(bulk, "gc", shim)
    assert gc.isenabled()

    def first() -> None:
        with bulk.collector_paused():
            shim.second_looked.wait(2)  # the second hold starts while this one runs
        shim.first_done.set()

    def second() -> None:
        with bulk.collector_paused():
            pass

    threads = [threading.Thread(target=first, name="first"), threading.Thread(target=second, name="second")]
    try:
        threads[0].start()
        time.sleep(0.05)
        threads[1].start()
        for thread in threads:
            thread.join()
        assert gc.isenabled()
    finally:
        gc.enable()


# The rebuild lock


def test_threads_racing_for_the_rebuild_lock_of_a_view_let_exactly_one_in(database_url: str) -> None:
    store = ViewStore(database_url)
    racers = 6
    start = threading.Barrier(racers)
    tried = threading.Barrier(racers)
    outcomes: list[str] = []

    def race() -> None:
        start.wait()
        try:
            with store.rebuild_lock(["case_state"]):
                outcomes.append("in")
                tried.wait(10)  # held until every racer has tried
        except RebuildRunning:
            outcomes.append("refused")
            tried.wait(10)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["in"] + ["refused"] * (racers - 1)
    assert released(store, ["case_state"])


def test_a_lock_refused_on_one_of_several_views_holds_none_of_them(database_url: str) -> None:
    store = ViewStore(database_url)
    with store.rebuild_lock(["unit_stats"]):  # sorts after the others: they are taken first
        with (
            pytest.raises(RebuildRunning, match="unit_stats"),
            store.rebuild_lock(["case_state", "unit_stats", "case_timeline"]),
        ):
            pytest.fail("entered although unit_stats is held")
        assert taken_by_another_thread(store, ["case_state", "case_timeline"])
    assert released(store, NAMES)


def test_the_lock_is_released_when_the_block_raises(database_url: str) -> None:
    store = ViewStore(database_url)
    held_inside: list[bool] = []

    def fail_while_holding() -> None:
        with store.rebuild_lock(["case_state", "unit_stats"]):
            held_inside.append(not lock_from_another_thread_is_free(store, ["unit_stats"]))
            raise Boom

    with pytest.raises(Boom):
        fail_while_holding()
    assert held_inside == [True]
    assert released(store, ["case_state", "unit_stats"])


def test_a_rebuild_lock_is_free_for_others_as_soon_as_its_block_has_ended(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    """Asked by a process connected already: a rebuild starting just after another ended is not refused."""
    store = ViewStore(database_url)
    lingered = 0
    with held_by_another_session(database_url) as still_held:
        for _ in range(20):
            with store.rebuild_lock(["case_state"]):
                assert still_held()
            lingered += still_held()
            deadline = time.monotonic() + 5
            while still_held():  # the next round starts clean
                assert time.monotonic() < deadline, "the lock never went"
                time.sleep(0.01)
    assert lingered == 0, f"the lock was still held just after its block ended, {lingered} times of 20"


def test_two_spellings_of_one_views_database_share_one_lock(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        path = Path(store_env(database_url)["SQLITE_DBNAME"])
        other = f"sqlite:///{path.parent}/detour/../{path.name}"
    else:
        other = database_url.replace("127.0.0.1", "localhost")
    assert other != database_url
    with ViewStore(database_url).rebuild_lock(["case_state"]):
        assert not lock_is_free(ViewStore(other), ["case_state"])
    assert released(ViewStore(other), ["case_state"])


def test_rebuild_locks_of_two_ledgers_in_one_process_do_not_interfere(
    world: World, database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    busy_cases(world, count=2, actions=1)
    with fresh_store(backend_of(database_url), tmp_path) as other_url:
        other = Ledger(other_url, clock=clock)
        try:
            other_world = build_world(other, clock)
            busy_cases(other_world, count=1, actions=1)
            mine, theirs = ViewStore(database_url), ViewStore(other_url)
            with mine.rebuild_lock(NAMES):
                built = rebuild_together(other, build_views(other), theirs, shares=2)
                assert {t.position for t in built.values()} == {other.recorder.max_notification_id()}
                with pytest.raises(RebuildRunning):
                    rebuild(world.ledger, CaseStateView(world.ledger), mine)
            assert released(mine, NAMES)
            with theirs.rebuild_lock(NAMES):
                assert rebuild(world.ledger, CaseStateView(world.ledger), mine).position == (
                    world.ledger.recorder.max_notification_id()
                )
            connection = theirs.connect()
            try:
                assert_views_equal_replay(other, connection)
            finally:
                connection.close()
        finally:
            other.close()


HOLD_THE_LOCK = (
    "import sys, time\n"
    "from projections.store import ViewStore\n"
    "with ViewStore(sys.argv[1]).rebuild_lock(['case_state']):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def test_the_lock_goes_with_a_process_that_is_killed(database_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, database_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        store = ViewStore(database_url)
        assert not lock_is_free(store, ["case_state"])
        holder.kill()
        holder.wait(10)
        deadline = time.monotonic() + 10
        while not lock_is_free(store, ["case_state"]):
            assert time.monotonic() < deadline, "the lock outlived the process that held it"
            time.sleep(0.05)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_ensure_current_leaves_a_view_being_rebuilt_to_that_rebuild_and_rebuilds_the_others(
    world: World,
) -> None:
    busy_cases(world, count=2, actions=1)
    store = ViewStore(world.ledger.database_url)
    live = Runner(world.ledger, build_views(world.ledger), store)
    live.catch_up()
    live.close()
    connection = store.connect()
    try:
        connection.execute(
            f"UPDATE {TRACKING} SET schema_version = 0 "
            "WHERE view IN ('case_state', 'unit_stats') AND live = 1"
        )
        stale_case_state = live_track(connection, "case_state")
        with store.rebuild_lock(["case_state"]):
            assert ensure_current(world.ledger, build_views(world.ledger), store) == ["unit_stats"]
            assert tracks(connection, "case_state") == [stale_case_state]
        unit_stats = live_track(connection, "unit_stats")
        assert unit_stats is not None
        assert unit_stats.schema_version == build_views(world.ledger)[3].schema_version
        assert released(store, NAMES)
        assert ensure_current(world.ledger, build_views(world.ledger), store) == ["case_state"]
        assert ensure_current(world.ledger, build_views(world.ledger), store) == []
        assert_views_equal_replay(world.ledger, connection)
    finally:
        connection.close()


def test_a_runner_that_starts_while_a_view_is_rebuilt_for_a_new_schema_leaves_it_and_follows_the_swap(
    world: World,
) -> None:
    cases = busy_cases(world, count=2, actions=1)
    store = ViewStore(world.ledger.database_url)
    old = Runner(world.ledger, [CaseVersions(world.ledger)], store)
    old.catch_up()
    old.close()
    world.do(world.township_clerk, "record_action", case_id=cases[0], kind="visit")  # not applied yet
    with store.rebuild_lock(["review_versions"]):  # another process rebuilds the view for its new schema
        assert ensure_current(world.ledger, [CaseVersionsWithTopic(world.ledger)], store) == []
        runner = Runner(world.ledger, [CaseVersionsWithTopic(world.ledger)], store)
        try:
            runner.catch_up()  # what `dutyledger projections run` and the server do next
        finally:
            runner.close()
    assert released(store, ["review_versions"])
    rebuild(world.ledger, CaseVersionsWithTopic(world.ledger), store)
    runner = Runner(world.ledger, [CaseVersionsWithTopic(world.ledger)], store)
    try:
        runner.catch_up()
        rows = runner.connection.execute("SELECT case_id, version FROM review_versions ORDER BY case_id")
        assert sorted(rows) == sorted((str(c), world.case(c).version) for c in cases)
    finally:
        runner.close()


def test_the_command_line_refuses_a_rebuild_of_every_view_while_one_is_held_and_rebuilds_the_others(
    world: World, database_url: str
) -> None:
    busy_cases(world, count=2, actions=1)
    store = ViewStore(database_url)
    live = Runner(world.ledger, build_views(world.ledger), store)
    live.catch_up()
    live.close()
    before = live_generations(store)
    with store.rebuild_lock(["unit_stats"]):
        refused = dutyledger("projections", "rebuild", database_url=database_url)
        assert refused.returncode == 4, refused.stderr
        assert "unit_stats" in refused.stderr
        assert live_generations(store) == before  # no view was rebuilt, not even those not held
        others = dutyledger(
            "projections",
            "rebuild",
            "case_state",
            "case_timeline",
            "--shares",
            "2",
            database_url=database_url,
        )
        assert others.returncode == 0, others.stderr
    after = live_generations(store)
    assert after["unit_stats"] == before["unit_stats"]
    for name in ("case_state", "case_timeline"):
        assert after[name] is not None
        assert before[name] is not None
        assert after[name].generation > before[name].generation  # type: ignore[union-attr]
    connection = store.connect()
    try:
        assert_views_equal_replay(world.ledger, connection)
    finally:
        connection.close()


# Runner.wait_for


def test_wait_for_with_a_timeout_of_zero_answers_at_once_and_only_yes_when_readers_see_the_position(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, live = busy_case_followed(world)
    try:
        end = world.ledger.recorder.max_notification_id() or 0
        started = time.monotonic()
        assert live.wait_for(end, 0)
        assert not live.wait_for(end + 1, 0)
        assert not live.wait_for(end + 1, -5)
        assert time.monotonic() - started < 1
        swap_after_a_write_the_live_runner_applied(monkeypatch, world, live)
        rebuild(world.ledger, CaseStateView(world.ledger), store)  # readers now lag the runner by one write
        monkeypatch.undo()
        end = world.ledger.recorder.max_notification_id() or 0
        assert live.position >= end
        assert not live.wait_for(end, 0)
        live.catch_up()  # follows the swap
        assert live.wait_for(end, 0)
    finally:
        live.close()


def test_wait_for_answers_yes_at_once_when_readers_already_see_the_position_another_runner_applied(
    world: World,
) -> None:
    busy_cases(world, count=2, actions=1)
    store = ViewStore(world.ledger.database_url)
    idle = Runner(world.ledger, build_views(world.ledger), store)  # e.g. a second server's runner, not woken
    busy = Runner(world.ledger, build_views(world.ledger), store)
    try:
        busy.catch_up()
        end = world.ledger.recorder.max_notification_id() or 0
        assert busy.wait_for(end, 0)
        assert idle.wait_for(end, 0)
    finally:
        idle.close()
        busy.close()


def test_wait_for_from_threads_that_come_and_go_keeps_no_connection_for_each_of_them(
    world: World, database_url: str
) -> None:
    busy_cases(world, count=1, actions=1)
    store = ViewStore(database_url)
    live = Runner(world.ledger, [CaseStateView(world.ledger)], store)
    try:
        live.catch_up()
        end = world.ledger.recorder.max_notification_id() or 0
        assert live.wait_for(end, 1)  # this thread's probe, if any, is open before counting
        before = open_connections(database_url)
        assert before >= 1, "the runner's own connection is counted: the count sees connections"
        answers: list[bool] = []
        for _ in range(20):
            worker = threading.Thread(target=lambda: answers.append(live.wait_for(end, 1)))
            worker.start()
            worker.join()
        gc.collect()
        assert answers == [True] * 20
        assert open_connections(database_url) - before <= 2
    finally:
        live.close()


def test_wait_for_from_several_threads_across_a_swap_answers_yes_only_once_readers_see_the_position(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, live = busy_case_followed(world)
    swap_after_a_write_the_live_runner_applied(monkeypatch, world, live)
    rebuild(world.ledger, CaseStateView(world.ledger), store)
    monkeypatch.undo()
    end = world.ledger.recorder.max_notification_id() or 0
    stop = threading.Event()
    following = threading.Thread(target=live.run, args=(stop, 30.0))  # asleep until woken
    answers: list[tuple[bool, int]] = []

    def wait() -> None:
        said = live.wait_for(end, 10)
        probe = store.connect()
        try:
            held = live_track(probe, "case_state")
        finally:
            probe.close()
        answers.append((said, held.position if held else -1))

    waiters = [threading.Thread(target=wait) for _ in range(5)]
    try:
        for waiter in waiters:
            waiter.start()
        following.start()
        for waiter in waiters:
            waiter.join()
    finally:
        stop.set()
        live.wake()
        if following.is_alive():
            following.join()
        live.close()
    assert len(answers) == 5
    assert all(said and seen >= end for said, seen in answers), answers
