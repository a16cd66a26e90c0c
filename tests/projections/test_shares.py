"""A rebuild in shares (one process per core, merged) gives exactly what a single pass gives."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.clock import ManualClock
from domain.ledger import Ledger
from projections import build_views, bulk
from projections import shares as sharing
from projections.digest import Digest, digest
from projections.rebuild import rebuild_together, shareable
from projections.runner import Share
from projections.shares import MAX_SHARES, PARALLEL_FROM, default_shares, jobs
from projections.store import ViewConnection, ViewStore
from projections.tracking import live_track
from projections.views.case_state import CaseStateView
from tests.projections.replay import assert_views_equal_replay
from tests.projections.test_runner import busy_cases
from tests.support import World


def digests(connection: ViewConnection, ledger: Ledger) -> dict[str, Digest]:
    return {view.name: digest(connection, view) for view in build_views(ledger)}


def test_a_rebuild_in_shares_gives_the_digests_of_a_single_pass(demo: Ledger) -> None:
    store = ViewStore(demo.database_url)
    connection = store.connect()
    rebuild_together(demo, build_views(demo), store, shares=1)
    single = digests(connection, demo)
    for shares in (2, 3):
        built = rebuild_together(demo, build_views(demo), store, shares=shares)
        assert digests(connection, demo) == single
        assert {name: track.position for name, track in built.items()} == {
            name: found.position for name, found in single.items()
        }
    assert all(found.rows > 0 for found in single.values())
    assert_views_equal_replay(demo, connection)
    connection.close()


def test_counts_kept_by_several_shares_are_summed_not_replaced(demo: Ledger) -> None:
    store = ViewStore(demo.database_url)
    rebuild_together(demo, build_views(demo), store, shares=3)
    connection = store.connect()
    registered = connection.execute("SELECT SUM(value) FROM unit_counts WHERE metric = 'registered'")
    cases = connection.execute("SELECT COUNT(*) FROM case_state")
    assert registered == cases
    assert cases[0][0] > 3  # enough cases that more than one share held some
    connection.close()


def test_events_recorded_while_the_shares_build_are_applied_before_the_swap(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = busy_cases(world, count=4, actions=3)
    store = ViewStore(world.ledger.database_url)
    monkeypatch.setattr(bulk, "HOLD", (5, 600.0))  # this process's share reports after every hold
    recorded: list[int] = []

    def record_one_more(_: object) -> None:
        if not recorded:
            result = world.do(world.township_clerk, "record_action", case_id=cases[0], kind="visit")
            recorded.append(result.position)

    built = rebuild_together(world.ledger, build_views(world.ledger), store, report=record_one_more, shares=2)
    monkeypatch.undo()
    assert recorded
    assert all(track.position >= recorded[0] for track in built.values())
    connection = store.connect()
    assert_views_equal_replay(world.ledger, connection)
    actions = connection.execute("SELECT action_count FROM case_state WHERE case_id = ?", (str(cases[0]),))
    assert actions == [(4,)]
    connection.close()


def test_a_rebuild_in_shares_leaves_one_live_generation_and_no_other(world: World) -> None:
    busy_cases(world, count=3, actions=1)
    store = ViewStore(world.ledger.database_url)
    rebuild_together(world.ledger, build_views(world.ledger), store, shares=1)
    first = rebuild_together(world.ledger, build_views(world.ledger), store, shares=2)
    connection = store.connect()
    for name, track in first.items():
        live = live_track(connection, name)
        assert live is not None
        assert live.generation == track.generation
        rows = connection.execute("SELECT COUNT(*) FROM projection_tracking WHERE view = ?", (name,))
        assert rows == [(1,)]
    connection.close()


@pytest.mark.parametrize(
    ("shares", "building"),
    [(1, ["building"]), (2, ["building in 2 shares", "merging the shares", "catching up"])],
)
def test_a_rebuild_names_each_stage_as_it_begins_the_swaps_after_the_last_event(
    world: World, shares: int, building: list[str]
) -> None:
    """After the last event a large rebuild still merges, indexes and drops: an operator sees which."""
    busy_cases(world, count=4, actions=2)
    stages: list[str] = []
    positions: list[int] = []

    def report(progress: Any) -> None:
        positions.append(len(stages))  # how many stages had begun when this commit was reported

    views = build_views(world.ledger)
    store = ViewStore(world.ledger.database_url)
    rebuild_together(world.ledger, views, store, report=report, shares=shares, stage=stages.append)
    swaps = [f"swapping in {view.name}" for view in views]
    assert stages == building + swaps + [f"dropping the old {view.name}" for view in views]
    assert positions
    assert max(positions) <= len(building)  # every commit reported before the first swap


@given(st.uuids(), st.integers(min_value=1, max_value=8), st.integers(min_value=0, max_value=10**6))
def test_every_aggregate_falls_to_exactly_one_share(aggregate: UUID, count: int, until: int) -> None:
    holders = [index for index in range(count) if Share(index, count, until).holds(str(aggregate))]
    assert len(holders) == 1


def test_each_view_is_built_once_for_every_aggregate_and_views_ranked_over_the_log_beside_the_shares(
    world: World,
) -> None:
    views = build_views(world.ledger)
    for shares in range(2, MAX_SHARES + 1):
        planned = jobs(views, shares, until=100)
        assert len(planned) == shares + 1  # the whole-log views run beside the shares, not after them
        whole = [job for job, share in planned if share.count == 1]
        assert [view.name for view in whole[0]] == [view.name for view in views if not view.shareable]
        spread = (UUID(int=n * 0x9E3779B97F4A7C15F39CC0605CEDC835 % 2**128) for n in range(50))
        for aggregate in (UUID(int=0), UUID(int=2**128 - 1), *spread):
            for view in views:
                holders = [share for job, share in planned if view in job and share.holds(str(aggregate))]
                assert len(holders) == 1


def test_a_small_log_is_rebuilt_in_one_pass_and_a_large_one_on_every_core() -> None:
    assert default_shares(PARALLEL_FROM - 1) == 1
    assert default_shares(PARALLEL_FROM) == min(os.cpu_count() or 1, MAX_SHARES)


def test_a_view_other_processes_cannot_build_is_rebuilt_in_one_pass_even_when_shares_are_asked(
    world: World,
) -> None:
    class Renamed(CaseStateView):
        """A view the registry does not hold: spawned processes would build another class."""

    busy_cases(world, count=3, actions=1)
    assert not shareable(world.ledger, [Renamed(world.ledger)])
    built = rebuild_together(world.ledger, [Renamed(world.ledger)], shares=2)
    assert built["case_state"].position == world.ledger.recorder.max_notification_id()


def test_an_in_memory_ledger_is_rebuilt_in_one_pass(clock: ManualClock) -> None:
    ledger = Ledger("sqlite:///:memory:", clock=clock)
    try:
        assert not shareable(ledger, build_views(ledger))
    finally:
        ledger.close()


def _failing_share(database_url: str, names: list[str], path: Path, share: Share) -> dict[str, int]:
    """A share that fails in its own process, as a bug in a view would."""
    raise RuntimeError("this share failed on purpose")


def _endless_share(database_url: str, names: list[str], path: Path, share: Share) -> dict[str, int]:
    """A share that takes far longer than any test may wait."""
    time.sleep(600)
    return {}


def _endless_unless_whole(database_url: str, names: list[str], path: Path, share: Share) -> dict[str, int]:
    """The second share never ends; the job of the views built whole (submitted after it) fails at once."""
    if share.count == 1:
        return _failing_share(database_url, names, path, share)
    return _endless_share(database_url, names, path, share)


def test_a_share_failing_in_another_process_stops_the_rebuild_while_this_process_still_builds(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ViewStore(world.ledger.database_url)
    rebuild_together(world.ledger, build_views(world.ledger), store)
    connection = store.connect()
    before = {view.name: live_track(connection, view.name) for view in build_views(world.ledger)}

    def slow_own_share(
        ledger: Ledger, views: object, path: Path, share: Share, report: Any
    ) -> dict[str, int]:
        for done in range(600):  # 30 s of holds, each reporting its progress
            report(done)
            time.sleep(0.05)
        return {}

    monkeypatch.setattr(sharing, "_build_share_alone", _failing_share)
    monkeypatch.setattr(sharing, "build_share", slow_own_share)
    began = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="failed on purpose"):
            rebuild_together(world.ledger, build_views(world.ledger), store, shares=2)
        assert time.monotonic() - began < 20
        assert {view.name: live_track(connection, view.name) for view in build_views(world.ledger)} == before
    finally:
        connection.close()


def test_a_failure_in_this_process_ends_the_other_shares_at_once_rather_than_waiting_for_them(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_own_share(
        ledger: Ledger, views: object, path: Path, share: Share, report: Any
    ) -> dict[str, int]:
        time.sleep(2)  # the other processes have started their endless shares
        raise ValueError("this process's share failed")

    rebuild_fails_fast(world, monkeypatch, failing_own_share, _endless_share, ValueError, "share failed")


def test_a_share_failing_after_this_process_built_its_own_is_not_waited_behind_a_slower_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def quick_own_share(ledger: Ledger, views: Any, path: Path, share: Share, report: Any) -> dict[str, int]:
        return {}

    rebuild_fails_fast(world, monkeypatch, quick_own_share, _endless_unless_whole, RuntimeError, "on purpose")


def rebuild_fails_fast(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    own_share: Callable[..., dict[str, int]],
    other_shares: Callable[..., dict[str, int]],
    error: type[Exception],
    match: str,
) -> None:
    """A rebuild in two shares built by these raises `error` within seconds, and leaves no process behind."""
    monkeypatch.setattr(sharing, "build_share", own_share)
    monkeypatch.setattr(sharing, "_build_share_alone", other_shares)
    began = time.monotonic()
    with pytest.raises(error, match=match):
        rebuild_together(world.ledger, build_views(world.ledger), shares=2)
    assert time.monotonic() - began < 30
    assert multiprocessing.active_children() == []  # ended, not left to sleep on
