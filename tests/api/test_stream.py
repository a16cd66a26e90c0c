"""The live feed: Server-Sent Events by log index, resumed after any disconnect, nothing lost or repeated."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

import api.routes.events as events_routes
from api.app import create_app
from api.keys import PrincipalKind
from api.settings import Settings
from projections import build_views
from projections.digest import digest
from projections.rebuild import rebuild
from projections.store import ViewStore
from tests.api.live import serving
from tests.support import World


@dataclass
class Server:
    """A real server on a free port over the test world, and an integrator's key."""

    url: str
    headers: dict[str, str]
    world: World
    app: Any

    def length(self) -> int:
        """Wait until every saved event is sequenced; how many there are."""
        assert self.app.state.reader.reached(self.world.ledger.recorder.max_notification_id() or 0, 10)
        return int(self.app.state.public_log.length())


@pytest.fixture
def server(world: World, database_url: str) -> Iterator[Server]:
    app = create_app(Settings(database_url=database_url, rate_limit_per_second=0), ledger=world.ledger)
    with serving(app) as url:
        token = app.state.keys.create(PrincipalKind.INTEGRATOR, label="stream test")[1]
        yield Server(url, {"Authorization": f"Bearer {token}"}, world, app)


def messages(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse a text/event-stream into messages (fields by name; comments as `comment`)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if fields:
                yield fields
            fields = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def collect(server: Server, count: int, **headers: str) -> list[tuple[int, dict[str, Any]]]:
    """Read `count` events from the stream (following the given headers), then hang up."""
    seen: list[tuple[int, dict[str, Any]]] = []
    with httpx.stream("GET", f"{server.url}/events/stream", headers={**server.headers, **headers},
                      timeout=10) as response:  # fmt: skip
        assert response.status_code == 200, response.read()
        for message in messages(response):
            if "data" in message:
                seen.append((int(message["id"]), orjson.loads(message["data"])))
                if len(seen) == count:
                    break
    return seen


def collect_while(
    server: Server, count: int, write: Callable[[], object], **headers: str
) -> list[tuple[int, dict[str, Any]]]:
    """`collect` while another thread runs `write`, 0.3 s after the stream was asked for."""

    def later() -> None:
        time.sleep(0.3)
        write()

    writer = threading.Thread(target=later)
    writer.start()
    try:
        return collect(server, count, **headers)
    finally:
        writer.join()


def test_the_stream_sends_the_log_then_each_new_event_as_it_is_sequenced(server: Server) -> None:
    length = server.length()
    world = server.world
    seen = collect_while(server, length + 3, lambda: [world.register() for _ in range(3)])
    assert [index for index, _ in seen] == list(range(length + 3))
    assert all(event["logindex"] == index for index, event in seen)
    assert [e["type"] for _, e in seen[-3:]] == ["cn.petition.case.registered.v1"] * 3


def test_the_stream_starts_with_a_retry_interval_and_keeps_the_connection_alive(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_routes, "HEARTBEAT_SECONDS", 0.2)
    length = server.length()
    with httpx.stream("GET", f"{server.url}/events/stream", params={"after": length - 1},
                      headers=server.headers, timeout=10) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        stream = messages(response)
        assert next(stream) == {"retry": "2000"}
        assert next(stream) == {"comment": "keep-alive"}


def test_last_event_id_wins_over_after_so_a_browser_reconnect_resumes_where_it_was(server: Server) -> None:
    server.length()
    seen = collect(server, 2, **{"Last-Event-ID": "5"})
    assert [index for index, _ in seen] == [6, 7]
    refused = httpx.get(f"{server.url}/events/stream", headers={**server.headers, "Last-Event-ID": "x"})
    assert refused.status_code == 422


def test_clients_disconnected_at_random_points_lose_nothing_and_see_nothing_twice(server: Server) -> None:
    """While cases are registered, a client hangs up after a random number of events and resumes."""
    world = server.world
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            world.register()
            time.sleep(0.005)

    writer = threading.Thread(target=write)
    writer.start()
    chance = random.Random(20261128)
    seen: list[int] = []
    try:
        while len(seen) < 150:
            resume = {"Last-Event-ID": str(seen[-1])} if seen else {}
            seen += [index for index, _ in collect(server, chance.randint(1, 25), **resume)]
    finally:
        stop.set()
        writer.join()
    assert seen == list(range(len(seen)))


def test_a_stream_filtered_by_type_sends_only_those_events_in_order(server: Server) -> None:
    server.world.register()
    server.length()
    with httpx.stream("GET", f"{server.url}/events/stream", params={"type": "cn.petition.case.*"},
                      headers=server.headers, timeout=10) as response:  # fmt: skip
        first = next(m for m in messages(response) if "data" in m)
    assert orjson.loads(first["data"])["type"] == "cn.petition.case.registered.v1"


def test_an_accusation_recorded_while_an_accused_administrator_follows_the_stream_is_not_sent(
    server: Server,
) -> None:
    """Each page the stream reads asks anew what the reader may be shown (`api.feed.withholding`)."""
    world = server.world
    length = server.length()
    token = server.app.state.keys.create(PrincipalKind.ADMINISTRATOR, cadre_id=world.admin)[1]
    against: list[str] = []

    def write() -> None:
        against.append(str(world.register(accused_cadre_ids=frozenset({world.admin}))))
        world.register()

    seen = collect_while(server, length + 1, write, Authorization=f"Bearer {token}")
    assert [index for index, _ in seen] == [*range(length), length + 1]
    assert seen[-1][1]["subject"] != against[0]


def test_a_stream_ends_once_its_key_is_revoked_and_sends_nothing_recorded_after(server: Server) -> None:
    """What the key may read is asked anew for every page, as for a webhook endpoint."""
    length = server.length()
    key, token = server.app.state.keys.create(PrincipalKind.INTEGRATOR, label="revoked while streaming")

    def revoke_then_write() -> None:
        time.sleep(0.3)
        server.app.state.keys.revoke(key.key_id)
        server.world.register()

    writer = threading.Thread(target=revoke_then_write)
    seen = []
    with httpx.stream("GET", f"{server.url}/events/stream", headers={"Authorization": f"Bearer {token}"},
                      timeout=10) as response:  # fmt: skip
        assert response.status_code == 200
        writer.start()
        seen = [int(message["id"]) for message in messages(response) if "data" in message]  # ends by itself
    writer.join()
    assert seen == list(range(length))
    again = httpx.get(f"{server.url}/events/stream", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert again.status_code == 401


def test_an_administrator_posted_to_an_accused_unit_while_streaming_is_not_sent_the_accusation(
    server: Server,
) -> None:
    """The stream asks anew what its key may read: here, whom an administrator's postings make accused."""
    world = server.world
    length = server.length()
    token = server.app.state.keys.create(PrincipalKind.ADMINISTRATOR, cadre_id=world.admin)[1]

    def move_then_write() -> None:
        world.do(
            world.admin, "transfer_cadre", cadre_id=world.admin, unit_id=world.county_dept, position="科员"
        )
        world.register(accused_unit_ids=frozenset({world.county_dept}))
        world.register()

    seen = collect_while(server, length + 2, move_then_write, Authorization=f"Bearer {token}")
    assert [index for index, _ in seen] == [*range(length), length, length + 2]


WRITER = """
import sys
from uuid import UUID
from domain.ledger import Ledger
from domain.ledger.work import CommandContext
url, clerk, case, number = sys.argv[1], UUID(sys.argv[2]), UUID(sys.argv[3]), int(sys.argv[4])
ledger = Ledger(url)
for step in range(25):
    ledger.record_action(CommandContext(actor_id=clerk, narrative=f"写入者{number}第{step}次走访"),
                         case_id=case, kind="visit")
ledger.close()
"""


def patient(database_url: str) -> str:
    """The URL with a long lock wait on PostgreSQL: each insert holds the events table's lock to its
    commit, and on a machine busy with other tests three writers can queue past the default 10 s;
    the test is about what followers see, not about how long a writer waits."""
    if database_url.startswith("sqlite"):
        return database_url
    return database_url + ("&" if "?" in database_url else "?") + "lock_timeout=120"


def test_a_follower_of_writers_in_several_processes_sees_every_event_once_in_order(
    server: Server, database_url: str
) -> None:
    """Three writer processes at once; one follower on the pull feed, one on the stream."""
    world = server.world
    cases = [world.accepted() for _ in range(3)]
    start = server.length()
    expected = start + 3 * 25
    streamed: list[int] = []
    pulled: list[int] = []

    def follow_stream() -> None:
        streamed.extend(index for index, _ in collect(server, expected))

    def follow_pages() -> None:
        after, deadline = -1, time.monotonic() + 60
        while len(pulled) < expected and time.monotonic() < deadline:
            page = httpx.get(f"{server.url}/events", params={"after": after, "limit": 7},
                             headers=server.headers).json()  # fmt: skip
            pulled.extend(event["logindex"] for event in page["events"])
            after = page["next"]
            if not page["events"]:
                time.sleep(0.02)

    followers = [threading.Thread(target=follow_stream), threading.Thread(target=follow_pages)]
    for follower in followers:
        follower.start()
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                patient(database_url),
                str(world.township_clerk),
                str(case),
                str(n),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, case in enumerate(cases)
    ]
    failures = [
        error for writer in writers for error in [writer.communicate(timeout=120)[1]] if writer.returncode
    ]
    assert not failures, failures
    for follower in followers:
        follower.join(timeout=60)
    assert streamed == list(range(expected))
    assert pulled == list(range(expected))
    stored = world.ledger.command_log.read_log(0, 100_000)
    page = httpx.get(f"{server.url}/events", params={"limit": 1000}, headers=server.headers).json()
    assert [(e["subject"], e["aggregateversion"]) for e in page["events"]] == [(r[1], r[2]) for r in stored]
    (view,) = build_views(world.ledger, ["event_log"])
    store = ViewStore(database_url)
    connection = store.connect()
    try:
        followed = digest(connection, view)
        rebuild(world.ledger, view, store)
        assert digest(connection, view) == followed
    finally:
        connection.close()
