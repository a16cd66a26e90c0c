"""Where the API's reads run: on the event loop over SQLite, on worker threads over PostgreSQL."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from uuid import UUID

import anyio
import pytest
from starlette.requests import Request

from api.identity import IdentityStore
from api.reading import ViewReader
from api.routes.common import read_route
from domain.storage.url import store_env
from domain.storage.writers import write_lock
from projections.store import ViewConnection
from tests.api.conftest import Api, registration

T = TypeVar("T")


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


def answered_within(seconds: float, call: Callable[[], T]) -> T:
    """`call`'s answer, from another thread; fails if it takes longer than `seconds` (it would hang)."""
    answers: list[T] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert answers, f"no answer within {seconds} s"
    return answers[0]


def test_a_case_read_does_not_wait_for_an_identity_being_filed(api: Api) -> None:
    registered = api.post("/cases", registration(), "township_clerk").json()
    case_id, position = registered["aggregate_id"], registered["position"]
    identities: IdentityStore = api.client.app.state.identities  # type: ignore[attr-defined]
    with identities._connection.lock:  # a filing holds the identities' writer, waiting for the file
        found = answered_within(
            10, lambda: api.get(f"/cases/{case_id}", "township_clerk", min_position=position)
        )
    assert found.status_code == 200
    assert found.json()["petitioner_identity"] == "none"


@contextmanager
def views_writers_held(reader: ViewReader) -> Iterator[None]:
    """What a writer of the views' store holds while it changes them (or their schema)."""
    store = reader.store
    if store.dialect == "sqlite":
        with write_lock(store_env(store.database_url)["SQLITE_DBNAME"]):
            yield
        return
    holder = store.connect()
    try:
        with holder.schema_change():
            yield
    finally:
        holder.close()


def test_asking_how_far_the_views_are_waits_for_no_writer_of_their_store(api: Api) -> None:
    reader = ViewReader(reader_of(api).store)  # not yet known to be built
    with views_writers_held(reader):
        assert answered_within(10, reader.built)
        assert answered_within(10, lambda: reader.reached(0, 0))
    reader.close()


def test_every_query_of_a_read_route_sees_the_views_at_one_position(api: Api) -> None:
    reader = reader_of(api)
    writer = reader.store.connect()
    with writer.transaction():
        writer.execute("CREATE TABLE reading_probe (n INTEGER)")
    counts: list[int] = []

    def endpoint(request: Request, views: ViewConnection) -> None:
        """Count the rows, let another connection commit one more, count again."""
        counts.append(views.execute("SELECT COUNT(*) FROM reading_probe")[0][0])
        with writer.transaction():
            writer.execute("INSERT INTO reading_probe (n) VALUES (1)")
        counts.append(views.execute("SELECT COUNT(*) FROM reading_probe")[0][0])

    request = Request({"type": "http", "app": api.client.app, "headers": []})
    served = functools.partial(read_route(endpoint), request=request, views=None)
    try:
        api.client.portal.call(served)  # type: ignore[union-attr]
        assert counts == [0, 0]  # the commit in between is not seen by the same answer
        with reader.connection() as later:
            assert later.execute("SELECT COUNT(*) FROM reading_probe")[0][0] == 1
    finally:
        with writer.transaction():
            writer.execute("DROP TABLE reading_probe")
        writer.close()


def test_a_refused_read_gives_its_connection_back_to_the_pool(api: Api) -> None:
    reader = reader_of(api)
    registered = api.post("/cases", registration(), "township_clerk").json()
    found = api.get(
        f"/cases/{registered['aggregate_id']}", "township_clerk", min_position=registered["position"]
    )
    assert found.status_code == 200
    pooled = list(reader._idle.queue)
    missing = api.get("/cases/00000000-0000-0000-0000-000000000001", "township_clerk")
    assert missing.status_code == 404
    assert list(reader._idle.queue) == pooled  # the same connections, none closed and replaced
