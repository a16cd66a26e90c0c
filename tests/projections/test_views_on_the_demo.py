"""On the demo ledger, every view equals a from-scratch replay, and a rebuild changes nothing."""

from __future__ import annotations

import threading

from domain.ledger import Ledger
from projections import build_views
from projections.digest import digest
from projections.rebuild import new_generation, rebuild, swap_in
from projections.runner import Runner
from projections.store import ViewStore
from tests.projections.replay import assert_views_equal_replay


def test_every_view_equals_a_from_scratch_replay_of_the_demo(demo: Ledger) -> None:
    runner = Runner(demo, build_views(demo))
    runner.catch_up()
    assert runner.position == demo.recorder.max_notification_id()
    assert_views_equal_replay(demo, runner.connection)
    runner.close()


def test_a_rebuild_gives_the_digest_the_live_view_had(demo: Ledger) -> None:
    runner = Runner(demo, build_views(demo))
    runner.catch_up()
    before = {view.name: digest(runner.connection, view) for view in runner.views}
    for view in build_views(demo):
        rebuild(demo, view)
    after = {view.name: digest(runner.connection, view) for view in runner.views}
    assert after == before
    assert all(found.rows > 0 for found in after.values())
    runner.close()


def test_runners_racing_on_the_same_views_apply_each_event_once(demo: Ledger) -> None:
    store = ViewStore(demo.database_url)
    for view in build_views(demo):
        rebuild(demo, view, store)
    connection = store.connect()
    expected = {view.name: digest(connection, view) for view in build_views(demo)}
    for view in build_views(demo):  # every view starts again, empty, from position 0
        swap_in(view, new_generation(view, store), store)
    assert all(digest(connection, view).rows == 0 for view in build_views(demo))
    racers = [Runner(demo, build_views(demo), batch=97) for _ in range(3)]
    threads = [threading.Thread(target=racer.catch_up) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {view.name: digest(connection, view) for view in build_views(demo)} == expected
    assert_views_equal_replay(demo, connection)
