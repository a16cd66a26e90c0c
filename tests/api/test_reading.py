"""Where the API's reads run: on the event loop over SQLite, on worker threads over PostgreSQL."""

from __future__ import annotations

import threading
from uuid import UUID

import anyio
import pytest

from api.reading import ViewReader
from api.routes.common import read_route
from tests.api.conftest import Api


def reader_of(api: Api) -> ViewReader:
    reader: ViewReader = api.client.app.state.reader  # type: ignore[attr-defined]
    return reader


def test_reads_run_on_the_event_loop_over_sqlite_and_on_a_worker_thread_over_postgresql(
    api: Api, database_url: str
) -> None:
    reader = reader_of(api)
    assert reader.inline is database_url.startswith("sqlite")

    async def read_on_the_loop_thread() -> bool:
        return await reader.run(threading.get_ident) == threading.get_ident()

    assert api.client.portal.call(read_on_the_loop_thread) is reader.inline  # type: ignore[union-attr]


def test_a_read_waiting_for_the_views_to_catch_up_leaves_the_event_loop_free(api: Api) -> None:
    reader = reader_of(api)

    async def wait_while_ticking() -> tuple[bool, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await anyio.sleep(0.01)
                ticks += 1

        async with anyio.create_task_group() as others:
            others.start_soon(tick)
            reached = await reader.caught_up(10**9, 0.3)  # a position no command gave
            others.cancel_scope.cancel()
        return reached, ticks

    reached, ticks = api.client.portal.call(wait_while_ticking)  # type: ignore[union-attr]
    assert not reached
    assert ticks >= 10  # the loop went on serving while the read waited


def test_a_read_that_waits_for_its_own_write_is_answered_once_the_views_have_it(api: Api) -> None:
    case_id = api.register()
    answer = api.post(f"/cases/{case_id}/actions", {"narrative": "走访", "kind": "visit"}, "township_clerk")
    position = answer.json()["position"]
    found = api.get(f"/cases/{case_id}", "township_clerk", min_position=position)
    assert found.status_code == 200
    assert found.json()["action_count"] == 1


def test_a_read_route_must_take_the_request() -> None:
    def endpoint(case_id: UUID) -> None:
        """No request: the route could not find the app's reader."""

    with pytest.raises(TypeError, match="must take the request"):
        read_route(endpoint)
