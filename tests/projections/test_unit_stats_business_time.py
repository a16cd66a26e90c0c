"""Unit statistics follow business time: corrections and late entries move counts where they belong."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from domain.values import BureauLevel
from projections.digest import digest
from projections.rebuild import rebuild_together
from projections.runner import Runner
from projections.statistics import unit_stats
from projections.store import ViewStore
from projections.views.unit_stats import UnitStatsView
from tests.projections.conftest import every_case_redone, followed_event_by_event
from tests.projections.test_business_time_review import a_busy_history
from tests.support import BEIJING, World

EveryCaseRedone = every_case_redone(UnitStatsView)


@pytest.fixture
def live(world: World) -> Iterator[Runner]:
    """Unit statistics followed one event per batch, in the ledger's own database."""
    with followed_event_by_event(world, UnitStatsView(world.ledger)) as runner:
        yield runner


def content(world: World, view: UnitStatsView, store: ViewStore | None = None, batch: int = 500) -> Any:
    """The view's rows and hash once caught up (in a scratch store of its own unless given one)."""
    with tempfile.TemporaryDirectory() as folder:
        runner = Runner(world.ledger, [view], store or ViewStore(f"sqlite:///{folder}/v.sqlite"), batch=batch)
        try:
            runner.catch_up()
            found = digest(runner.connection, view)
            return found.rows, found.sha256
        finally:
            runner.close()


def test_a_leapfrog_corrected_into_an_earlier_month_is_counted_there(world: World, live: Runner) -> None:
    case_id = world.accepted()
    world.advance(days=40)
    leapfrog = world.do(world.city_clerk, "record_leapfrog", case_id=case_id, level=BureauLevel.CITY)
    recorded_in = world.today().strftime("%Y-%m")
    live.catch_up()
    earlier = world.clock.now() - timedelta(days=38)  # more than a month: another month
    world.do(
        world.city_clerk,
        "correct_record",
        narrative="越级访日期登记错误，更正",
        aggregate_id=case_id,
        corrects=leapfrog.version,
        changes={"occurred_at": earlier.isoformat()},
    )
    live.catch_up()
    months = unit_stats(live.connection, world.city, "2000-01", "2999-12", world.clock.now()).months
    leapfrogs = {month: counts["leapfrogs"] for month, counts in months.items() if "leapfrogs" in counts}
    assert leapfrogs == {earlier.astimezone(BEIJING).strftime("%Y-%m"): 1}
    assert recorded_in not in leapfrogs


def test_followed_event_by_event_through_late_entries_and_corrections_it_equals_a_redo_at_every_event(
    world: World, live: Runner
) -> None:
    a_busy_history(world, live.catch_up)
    live.catch_up()
    found = digest(live.connection, live.views[0])
    followed = (found.rows, found.sha256)
    assert followed == content(world, EveryCaseRedone(world.ledger), batch=1)
    assert followed == content(world, UnitStatsView(world.ledger))  # caught up in one go
    for shares in (1, 2):
        view = UnitStatsView(world.ledger)
        store = ViewStore(world.ledger.database_url)
        rebuild_together(world.ledger, [view], store, shares=shares)
        connection = store.connect()
        try:
            again = digest(connection, view)
        finally:
            connection.close()
        assert (again.rows, again.sha256) == followed
