"""Ledgers sharing a store (threads, processes, replicas) see each other's changes on their next command.

Each `Ledger` keeps aggregates in memory between commands and follows the notification
log to forget what changed elsewhere. Here ledger A is the world's ledger and ledger B
a second instance on the same database; every test first warms A's cache with what B
is about to change.
"""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest

from domain.errors import NotActive, RoleRequired, VersionConflict
from domain.events import Stamp
from domain.ledger import Ledger
from domain.ledger.cache import FollowingCache
from domain.registry import Unit
from domain.rules import RuleSet
from domain.rules.defaults import packaged_rule_sets
from domain.storage.freshness import Freshness, StaleRead
from tests.storage.spies import another_request_refreshes_once_read, saves_of
from tests.support import World


def test_a_transfer_made_through_one_ledger_stamps_the_next_event_recorded_through_the_other(
    world: World, other: Ledger
) -> None:
    case_id = world.accepted()
    world.do(world.handler, "record_action", case_id=case_id, kind="visit")  # A caches the handler
    world.advance(hours=1)
    other.transfer_cadre(
        world.ctx(world.admin), cadre_id=world.handler, unit_id=world.county_dept, position="科员"
    )
    world.advance(hours=1)
    world.do(world.handler, "record_action", case_id=case_id, kind="talk")
    first, second = [e for e in world.events(case_id) if type(e).__name__ == "ActionRecorded"]
    assert first.actor_unit_id == world.township
    assert second.actor_unit_id == world.county_dept


def test_a_save_whose_reads_another_ledger_changed_rolls_back_and_the_command_runs_again(
    world: World, other: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = world.accepted()
    world.do(world.handler, "record_action", case_id=case_id, kind="visit")  # A caches the handler
    other.transfer_cadre(
        world.ctx(world.admin), cadre_id=world.handler, unit_id=world.county_dept, position="科员"
    )
    outcomes = saves_of(world.ledger, monkeypatch)
    before = len(world.events(case_id))
    world.do(world.handler, "record_action", case_id=case_id, kind="talk")
    assert outcomes == ["stale", "committed"]
    assert len(world.events(case_id)) == before + 1
    assert world.events(case_id)[-1].actor_unit_id == world.county_dept


def test_a_save_whose_reads_no_one_else_changed_commits_at_once_and_the_cache_moves_past_the_others_events(
    world: World, other: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, theirs = world.accepted(), world.accepted()
    world.do(world.handler, "record_action", case_id=theirs, kind="visit")  # A caches their case
    elsewhere = other.record_action(world.ctx(world.township_clerk), case_id=theirs, kind="talk")
    outcomes = saves_of(world.ledger, monkeypatch)
    result = world.do(world.handler, "record_action", case_id=mine, kind="visit")
    assert outcomes == ["committed"]
    assert result.position > elsewhere.position
    assert world.ledger.cache.position == result.position
    assert world.ledger.cache.get(theirs).version == elsewhere.version  # the stale copy was forgotten


def test_the_store_refuses_a_save_whose_read_set_changed_after_its_position_and_writes_nothing(
    world: World, other: Ledger
) -> None:
    case_id = world.accepted()
    position = world.ledger.recorder.max_notification_id()
    other.record_action(world.ctx(world.handler), case_id=case_id, kind="talk")
    case = world.ledger.repository.get(case_id)
    now = world.clock.now()
    case.record_action(
        Stamp(world.handler, world.township, now, now, "direct", "direct", "a direct save"), "visit"
    )
    count = len(world.events(case_id))
    freshness = Freshness(after=position, read={case_id})
    with pytest.raises(StaleRead):
        world.ledger.save(case, freshness=freshness)
    assert len(world.events(case_id)) == count


@pytest.mark.parametrize("refreshed_meanwhile", [False, True], ids=["alone", "refreshed-meanwhile"])
def test_an_expected_version_taken_from_the_other_ledger_is_accepted(
    world: World, other: Ledger, monkeypatch: pytest.MonkeyPatch, refreshed_meanwhile: bool
) -> None:
    """Also when another request of A's process refreshes the cache while the command runs."""
    case_id = world.accepted()
    world.do(world.township_clerk, "record_action", case_id=case_id, kind="visit")  # A caches the case at v3
    through_other = other.record_action(world.ctx(world.handler), case_id=case_id, kind="talk")
    assert through_other.version == 4
    if refreshed_meanwhile:
        another_request_refreshes_once_read(world.ledger, case_id, world.admin, monkeypatch)
    result = world.do(
        world.township_clerk,
        "record_action",
        case_id=case_id,
        kind="coordination",
        ctx_options={"expected_version": through_other.version},
    )
    assert result.version == 5
    with pytest.raises(VersionConflict):
        other.record_action(world.ctx(world.handler, expected_version=4), case_id=case_id, kind="visit")


def test_changes_flow_both_ways_between_two_ledgers(world: World, other: Ledger) -> None:
    case_id = world.accepted()
    other.record_action(world.ctx(world.handler), case_id=case_id, kind="visit")  # B caches the case
    for turn in range(3):
        world.do(world.township_clerk, "record_action", case_id=case_id, kind="talk")
        result = other.record_action(world.ctx(world.handler), case_id=case_id, kind="visit")
        assert result.version == 5 + 2 * turn
    assert world.case(case_id).action_count == 7


def test_a_retirement_made_through_the_other_ledger_stops_the_cadre_at_once(
    world: World, other: Ledger
) -> None:
    case_id = world.accepted()
    world.do(world.handler, "record_action", case_id=case_id, kind="visit")
    world.advance(hours=1)
    other.retire_cadre(world.ctx(world.admin), cadre_id=world.handler)
    world.advance(hours=1)
    with pytest.raises(NotActive):
        world.do(world.handler, "record_action", case_id=case_id, kind="visit")


def test_a_new_unit_head_appointed_through_the_other_ledger_may_approve_extensions(
    world: World, other: Ledger
) -> None:
    case_id = world.accepted()
    township: Unit = world.ledger.repository.get(world.township)
    assert township.head_id == world.township_head
    world.advance(hours=1)
    other.transfer_cadre(
        world.ctx(world.admin), cadre_id=world.township_head, unit_id=world.county, position="副县长"
    )
    other.transfer_cadre(
        world.ctx(world.admin),
        cadre_id=world.township_leader,
        unit_id=world.township,
        position="党委书记",
        is_principal=True,
    )
    world.advance(hours=1)
    with pytest.raises(RoleRequired):
        world.do(world.township_head, "extend_deadline", case_id=case_id, days=10)
    world.do(world.township_leader, "extend_deadline", case_id=case_id, days=10)


def test_rules_published_through_the_other_ledger_apply_to_the_next_acceptance(
    world: World, other: Ledger
) -> None:
    world.accepted()  # A caches the rule book
    national = next(r for r in packaged_rule_sets() if r.jurisdiction == "CN")
    version_2: RuleSet = national.model_copy(update={"version": 2, "effective_from": date(2026, 3, 1)})
    other.publish_rule_set(world.ctx(world.admin), rule_set=version_2)
    case_id = world.accepted()
    accepted = next(e for e in world.events(case_id) if type(e).__name__ == "Accepted")
    assert str(accepted.rules) == "CN@2"  # type: ignore[attr-defined]


def test_a_command_id_used_through_one_ledger_is_replayed_by_the_other(world: World, other: Ledger) -> None:
    case_id = world.accepted()
    first = world.do(
        world.handler, "record_action", case_id=case_id, kind="visit", ctx_options={"command_id": "x"}
    )
    again = other.record_action(world.ctx(world.handler, command_id="x"), case_id=case_id, kind="visit")
    assert again.replayed
    assert again.positions == first.positions
    assert world.case(case_id).action_count == 1


def test_a_full_cache_forgets_the_aggregate_used_least_recently(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FollowingCache(world.ledger.repository, world.ledger.recorder, maxsize=2)
    loads: list[UUID] = []
    load = world.ledger.repository.get
    monkeypatch.setattr(
        world.ledger.repository, "get", lambda aggregate_id: loads.append(aggregate_id) or load(aggregate_id)
    )
    first, second, third = world.township, world.county, world.city
    for aggregate_id in (first, second, first, third, first, second):
        cache.get(aggregate_id)
    assert loads == [first, second, third, second]


def counted_loads(world: World, monkeypatch: pytest.MonkeyPatch) -> list[UUID]:
    """The aggregates the repository is asked for from now on (each a cache miss)."""
    loads: list[UUID] = []
    load = world.ledger.repository.get
    monkeypatch.setattr(
        world.ledger.repository, "get", lambda aggregate_id: loads.append(aggregate_id) or load(aggregate_id)
    )
    return loads


def test_a_refresh_keeps_an_aggregate_held_at_the_version_the_log_shows_and_forgets_an_older_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    current, behind = world.accepted(), world.accepted()
    cache = FollowingCache(world.ledger.repository, world.ledger.recorder, maxsize=10)
    cache.get(behind)  # held before its next event
    world.do(world.handler, "record_action", case_id=current, kind="visit")
    world.do(world.handler, "record_action", case_id=behind, kind="visit")
    cache.get(current)  # loaded after its event: it holds it
    versions = {case_id: world.case(case_id).version for case_id in (current, behind)}
    loads = counted_loads(world, monkeypatch)
    cache.refresh()
    assert {case_id: cache.get(case_id).version for case_id in (current, behind)} == versions
    assert loads == [behind]


def test_a_save_keeps_what_another_thread_just_saved_though_its_event_came_in_between(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load each command's window holds the events other threads of the process just saved:
    forgetting those cases sent nearly every command to the store to replay its case."""
    theirs, mine = world.accepted(), world.accepted()
    world.do(world.handler, "record_action", case_id=theirs, kind="visit")
    cache = world.ledger.cache
    held = cache.get(theirs)
    loads = counted_loads(world, monkeypatch)
    after = cache.position
    cache.saved([cache.get(mine)], [after + 1], intervening=[(theirs, held.version)])
    assert cache.get(theirs) is held
    cache.saved([cache.get(mine)], [after + 2], intervening=[(theirs, held.version + 1)])
    assert cache.get(theirs).version == held.version  # loaded again: the cache had to forget it
    assert loads == [theirs]


def test_a_refresh_reads_the_log_without_holding_the_cache(
    world: World, other: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests on the event loop read through the cache: they must not wait while a thread pages the log."""
    case_id = world.accepted()
    cache = world.ledger.cache
    cache.get(case_id)
    other.record_action(world.ctx(world.handler), case_id=case_id, kind="visit")  # behind the cache's back
    held_while_reading: list[bool] = []
    select = world.ledger.recorder.select_notifications

    def spying(*args: object, **kwargs: object) -> object:
        held_while_reading.append(cache._lock.locked())
        return select(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(world.ledger.recorder, "select_notifications", spying)
    cache.refresh()
    assert held_while_reading == [False]
    assert cache.get(case_id).version == other.repository.get(case_id).version  # still forgotten, reloaded
