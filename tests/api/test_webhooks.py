"""Webhooks against local receivers: signed as Standard Webhooks verifies, retried, never blocking others."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api.app import create_app
from api.keys import KeyStore, PrincipalKind
from api.settings import Settings
from api.webhooks.sealing import Sealer
from api.webhooks.store import Delivery, WebhookStore
from api.webhooks.worker import Worker, backoff
from domain.values import Role
from tests.api.conftest import Api
from tests.support import World

TIMEOUT = 3.0
"""The receivers' answer timeout in these tests: a hung receiver holds one delivery this long."""
BASE = 0.05
"""The first retry waits this long, then 0.1 s, 0.2 s…"""


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(self.body)
        return found


@dataclass
class Receiver:
    """A local HTTP server that records every POST; it refuses the first `failures`, or never answers."""

    failures: int = 0
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with lock:
                    status = 500 if len(receiver.received) < receiver.failures else 204
                    receiver.received.append(
                        Received(
                            {k.lower(): v for k, v in self.headers.items()}, body, status, time.monotonic()
                        )
                    )
                if receiver.hang:
                    receiver.release.wait(30)
                answer = b"busy, try later" if status == 500 else b""
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def delivered(self) -> list[Received]:
        """The requests it answered with a 2xx."""
        return [r for r in self.received if r.status < 300]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def a_port_nobody_listens_on() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hook_settings(database_url: str, *, private_networks: bool) -> Settings:
    """Settings with an embedded webhook worker, short timeouts and quick retries."""
    return Settings(
        database_url=database_url,
        rate_limit_per_second=0,
        read_wait_seconds=2,
        webhook_timeout_seconds=TIMEOUT,
        webhook_retry_base_seconds=BASE,
        webhook_private_networks=private_networks,
    )


@pytest.fixture
def hooks(world: World, database_url: str) -> Iterator[Api]:
    """The API with its webhook worker, receivers allowed on this machine (where the tests run them)."""
    settings = hook_settings(database_url, private_networks=True)
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        yield Api(client, world)


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Makes receivers, closed at the end (a hung one let go: ask for this fixture after the app's)."""
    made: list[Receiver] = []

    def receiver(**behaviour: Any) -> Receiver:
        made.append(Receiver(**behaviour))
        return made[-1]

    yield receiver
    for each in made:
        each.close()


def register(api: Api, url: str, token: str | None = None, **body: Any) -> dict[str, Any]:
    answer = api.client.post(
        "/webhooks",
        json={"url": url, **body},
        headers=bearer(token or api.token("hotline", PrincipalKind.INTEGRATOR)),
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def endpoint(api: Api, endpoint_id: str) -> dict[str, Any]:
    answer = api.client.get(
        f"/webhooks/{endpoint_id}", headers=api.headers("admin", PrincipalKind.ADMINISTRATOR)
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def last_index(api: Api) -> int:
    length: int = api.client.app.state.public_log.length()  # type: ignore[attr-defined]
    return length - 1


def caught_up(api: Api, *endpoint_ids: str) -> Callable[[], bool]:
    """Whether every endpoint has dealt with the whole log as it now stands."""
    api.client.app.state.reader.reached(api.positions(), 5)  # type: ignore[attr-defined]
    end = last_index(api)
    return lambda: all(endpoint(api, e)["position"] == end for e in endpoint_ids)


def test_a_delivery_is_a_signed_cloudevent_the_reference_library_verifies(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    created = register(hooks, receiver.url)
    assert created["secret"].startswith("whsec_")
    assert created["position"] == last_index(hooks)
    hooks.register()
    eventually(caught_up(hooks, created["id"]))

    indexes = []
    for delivery in receiver.delivered:
        event = Webhook(created["secret"]).verify(delivery.body, delivery.headers)
        assert delivery.headers["content-type"] == "application/cloudevents+json"
        assert delivery.headers["webhook-id"] == event["id"]
        assert event["specversion"] == "1.0"
        one = hooks.client.get(
            f"/events/{event['logindex']}", headers=hooks.headers("admin", PrincipalKind.ADMINISTRATOR)
        )
        assert delivery.body == one.content  # the very envelope the feed serves
        indexes.append(event["logindex"])
    assert indexes == list(range(created["position"] + 1, last_index(hooks) + 1))
    listed = hooks.client.get("/webhooks", headers=bearer(hooks.token("hotline", PrincipalKind.INTEGRATOR)))
    assert [e["id"] for e in listed.json()] == [created["id"]]
    assert "whsec_" not in listed.text


def test_a_receiver_that_fails_three_times_gets_the_event_on_a_later_attempt(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers(failures=3)
    created = register(hooks, receiver.url)
    hooks.register()
    eventually(caught_up(hooks, created["id"]))

    first = receiver.received[:4]
    assert [r.status for r in first] == [500, 500, 500, 204]
    assert len({r.headers["webhook-id"] for r in first}) == 1  # the same event each time
    gaps = [later.at - earlier.at for earlier, later in pairwise(first)]
    assert [gap >= BASE * 2**n * 0.9 for n, gap in enumerate(gaps)] == [True] * 3  # 0.05, 0.1, 0.2 s
    for attempt in first:
        Webhook(created["secret"]).verify(attempt.body, attempt.headers)

    log = hooks.client.get(
        f"/webhooks/{created['id']}/deliveries",
        headers=bearer(hooks.token("hotline", PrincipalKind.INTEGRATOR)),
    ).json()
    oldest = list(reversed(log))[:4]
    assert [(d["attempt"], d["status"], d["succeeded"]) for d in oldest] == [
        (1, 500, False),
        (2, 500, False),
        (3, 500, False),
        (4, 204, True),
    ]
    assert oldest[0]["error"] == "HTTP 500: busy, try later"
    assert {d["webhook_id"] for d in oldest} == {first[0].headers["webhook-id"]}
    assert endpoint(hooks, created["id"])["attempts"] == 0


def test_a_receiver_that_is_down_or_hangs_does_not_delay_another_nor_the_ledger(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    hung, healthy = receivers(hang=True), receivers()
    down = register(hooks, a_port_nobody_listens_on())
    stuck = register(hooks, hung.url)
    working = register(hooks, healthy.url)

    started = time.monotonic()
    hooks.register()
    recorded = time.monotonic() - started
    eventually(caught_up(hooks, working["id"]), within=TIMEOUT / 2)
    delivered = time.monotonic() - started

    assert recorded < TIMEOUT / 4, recorded
    assert delivered < TIMEOUT / 2, delivered
    admin = hooks.headers("admin", PrincipalKind.ADMINISTRATOR)
    assert hooks.client.get(f"/webhooks/{stuck['id']}/deliveries", headers=admin).json() == []
    eventually(lambda: bool(hung.received))  # it was sent the event, and sits on it
    eventually(lambda: endpoint(hooks, down["id"])["attempts"] >= 1)
    assert endpoint(hooks, down["id"])["position"] == down["position"]


def test_a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    receiver = receivers()
    created = register(hooks, receiver.url)
    integrator = bearer(hooks.token("hotline", PrincipalKind.INTEGRATOR))
    rotated = hooks.client.post(
        f"/webhooks/{created['id']}/secret", json={"grace_seconds": 3600}, headers=integrator
    )
    assert rotated.status_code == 200, rotated.text
    assert [s["expires_at"] is None for s in rotated.json()["secrets"]] == [True, False]
    hooks.register()
    eventually(caught_up(hooks, created["id"]))
    during = receiver.delivered[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (created["secret"], rotated.json()["secret"]):
        Webhook(secret).verify(during.body, during.headers)

    final = hooks.client.post(
        f"/webhooks/{created['id']}/secret", json={"grace_seconds": 0}, headers=integrator
    )
    assert len(final.json()["secrets"]) == 1
    hooks.register()
    eventually(caught_up(hooks, created["id"]))
    after = receiver.delivered[-1]
    Webhook(final.json()["secret"]).verify(after.body, after.headers)
    for lapsed in (created["secret"], rotated.json()["secret"]):
        with pytest.raises(WebhookVerificationError):
            Webhook(lapsed).verify(after.body, after.headers)


def test_an_endpoint_gets_what_the_feed_shows_its_key_narrowed_by_its_own_filter(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    receiver, control = receivers(), receivers()
    county = hooks.token("county", PrincipalKind.INTEGRATOR, scope=("county",))
    created = register(hooks, receiver.url, county, types=["cn.petition.case.*"])
    everything = register(hooks, control.url)
    hooks.register("township_clerk")
    hooks.register("henan_clerk")  # outside the key's county
    hooks.register("county_clerk")
    eventually(caught_up(hooks, created["id"], everything["id"]))

    feed = hooks.client.get(
        "/events", params={"after": created["position"], "type": "cn.petition.case.*"}, headers=bearer(county)
    ).json()
    expected = [e["logindex"] for e in feed["events"]]
    assert [d.event["logindex"] for d in receiver.delivered] == expected
    assert 0 < len(expected) < len(control.delivered)
    henan = str(hooks.world.units["henan_township"])
    assert henan in {d.event["actorunitid"] for d in control.delivered}
    assert henan not in {d.event["actorunitid"] for d in receiver.delivered}


def test_an_administrators_endpoint_is_not_sent_an_accusation_against_its_cadre(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    """What the feed withholds from an accused administrator (`api.feed.withholding`), their
    endpoints are not sent either."""
    receiver, control = receivers(), receivers()
    created = register(hooks, receiver.url, hooks.token("admin", PrincipalKind.ADMINISTRATOR))
    everything = register(hooks, control.url)
    accusation = "反映管理员违规"
    against = str(hooks.register("county_clerk", narrative=accusation,
                                 accused_cadre_ids=[str(hooks.world.cadres["admin"])]))  # fmt: skip
    hooks.register("county_clerk")
    eventually(caught_up(hooks, created["id"], everything["id"]))

    def sent(to: Receiver) -> list[tuple[str, str]]:
        return [(d.event["subject"], d.event["type"]) for d in to.delivered]

    assert (against, "cn.petition.case.registered.v1") in sent(control)
    assert sent(receiver) == [e for e in sent(control) if e != (against, "cn.petition.case.registered.v1")]
    assert not any(accusation in json.dumps(d.event, ensure_ascii=False) for d in receiver.delivered)


def test_another_integrators_endpoint_is_not_found_and_a_cadre_key_registers_none(hooks: Api) -> None:
    mine = register(hooks, "https://hotline.example.org/events")
    other = bearer(hooks.token("warehouse", PrincipalKind.INTEGRATOR))
    path = f"/webhooks/{mine['id']}"
    calls = [("GET", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/secret"), ("POST", "/retry")]
    for method, suffix in calls:
        assert hooks.client.request(method, path + suffix, headers=other).status_code == 404, (method, suffix)
    assert hooks.client.get("/webhooks", headers=other).json() == []
    admin = hooks.headers("admin", PrincipalKind.ADMINISTRATOR)
    assert [e["id"] for e in hooks.client.get("/webhooks", headers=admin).json()] == [mine["id"]]
    refused = hooks.client.post(
        "/webhooks", json={"url": "https://x.example"}, headers=hooks.headers("township_clerk")
    )
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:problem-type:dutyledger:forbidden"


REFUSED = [
    ({"url": "ftp://hotline.example.org/"}, 422),
    ({"url": "hotline.example.org/events"}, 422),
    ({"url": "http://"}, 422),
    ({"url": "https://hotline.example.org/", "types": ["cn.petition.nothing.v9"]}, 422),
    ({"url": "https://hotline.example.org/", "units": ["00000000-0000-0000-0000-000000000009"]}, 404),
    ({"url": "https://hotline.example.org/", "after": 10**9}, 422),
    ({"url": "https://hotline.example.org/", "after": 2**63}, 422),
]


def test_an_endpoint_that_cannot_be_delivered_to_is_refused(hooks: Api) -> None:
    integrator = bearer(hooks.token("hotline", PrincipalKind.INTEGRATOR))
    for body, status in REFUSED:
        answer = hooks.client.post("/webhooks", json=body, headers=integrator)
        assert answer.status_code == status, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert hooks.client.get("/webhooks", headers=integrator).json() == []


def test_a_disabled_endpoint_and_one_whose_key_was_revoked_are_sent_nothing_more(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    receiver, orphan, control = receivers(), receivers(), receivers()
    created = register(hooks, receiver.url)
    key, token = hooks.keys.create(PrincipalKind.INTEGRATOR, label="short-lived")
    orphaned = register(hooks, orphan.url, token)
    watching = register(hooks, control.url)
    integrator = bearer(hooks.token("hotline", PrincipalKind.INTEGRATOR))
    disabled = hooks.client.delete(f"/webhooks/{created['id']}", headers=integrator)
    assert disabled.status_code == 200
    assert disabled.json()["disabled_at"] is not None
    hooks.keys.revoke(key.key_id)
    hooks.register()
    eventually(caught_up(hooks, watching["id"]))
    eventually(lambda: endpoint(hooks, orphaned["id"])["disabled_at"] is not None)
    assert control.delivered
    assert receiver.received == orphan.received == []
    rotate = hooks.client.post(f"/webhooks/{created['id']}/secret", headers=integrator)
    assert rotate.status_code == 409


def deputy_administrator(api: Api) -> tuple[UUID, str]:
    """A second administrator, registered in the city, and an administrator's key for them."""
    world = api.world
    deputy = world.do(
        world.admin, "register_cadre", name="副管理员", unit_id=world.units["city"], position="管理员",
        roles=frozenset({Role.ADMINISTRATOR}),
    ).aggregate_id  # fmt: skip
    _, token = api.keys.create(PrincipalKind.ADMINISTRATOR, cadre_id=deputy)
    return deputy, token


def test_an_administrators_endpoint_is_sent_nothing_more_once_its_cadre_no_longer_administers(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    receiver, control = receivers(), receivers()
    world = hooks.world
    deputy, token = deputy_administrator(hooks)
    created = register(hooks, receiver.url, token)
    watching = register(hooks, control.url)
    world.do(world.admin, "change_roles", cadre_id=deputy, roles=frozenset())
    hooks.register()
    eventually(caught_up(hooks, watching["id"]))
    eventually(lambda: endpoint(hooks, created["id"])["disabled_at"] is not None)
    stripped = max(d.event["logindex"] for d in control.delivered if str(deputy) in d.event["subject"])
    # What was recorded before the role went may have been sent while the cadre still held it
    # (an endpoint starts where the feed stood, and the feed may not yet hold the cadre's own
    # registration); nothing from the role's removal on is.
    assert all(d.event["logindex"] < stripped for d in receiver.received)


def test_an_administrator_stripped_of_the_role_while_a_page_is_read_is_sent_none_of_it(
    hooks: Api, receivers: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = receivers()
    world = hooks.world
    deputy, token = deputy_administrator(hooks)
    created = register(hooks, receiver.url, token)
    log = hooks.client.app.state.public_log  # type: ignore[attr-defined]
    read = log.page

    def stripped_while_reading(*args: Any, **kwargs: Any) -> Any:
        """The worker has checked the key; the role goes before the page is read."""
        monkeypatch.setattr(log, "page", read)
        world.do(world.admin, "change_roles", cadre_id=deputy, roles=frozenset())
        assert hooks.client.app.state.reader.reached(hooks.positions(), 5)  # type: ignore[attr-defined]
        return read(*args, **kwargs)

    monkeypatch.setattr(log, "page", stripped_while_reading)
    hooks.register()
    eventually(lambda: endpoint(hooks, created["id"])["disabled_at"] is not None)
    assert receiver.received == []


def test_retry_delivers_at_once_instead_of_waiting_out_the_back_off(
    hooks: Api, receivers: Callable[..., Receiver]
) -> None:
    worker: Worker = hooks.client.app.state.webhook_worker  # type: ignore[attr-defined]
    worker.retry_base = 3600
    receiver = receivers(failures=1)
    created = register(hooks, receiver.url)
    hooks.register()
    eventually(lambda: endpoint(hooks, created["id"])["next_attempt_at"] is not None)
    waiting = endpoint(hooks, created["id"])
    assert datetime.fromisoformat(waiting["next_attempt_at"]) > datetime.now(UTC) + timedelta(minutes=59)

    started = time.monotonic()
    retried = hooks.client.post(
        f"/webhooks/{created['id']}/retry", headers=bearer(hooks.token("hotline", PrincipalKind.INTEGRATOR))
    )
    assert retried.status_code == 202, retried.text
    eventually(caught_up(hooks, created["id"]), within=TIMEOUT)
    assert time.monotonic() - started < TIMEOUT
    assert [r.status for r in receiver.received][:2] == [500, 204]


def test_two_workers_deliver_each_event_once_and_in_log_order(
    hooks: Api, receivers: Callable[..., Receiver], database_url: str
) -> None:
    state = hooks.client.app.state  # type: ignore[attr-defined]
    keys, store = KeyStore(database_url), WebhookStore(database_url, state.webhooks.sealer)
    other = Worker(
        store,
        state.public_log,
        state.envelopes,
        keys,
        timeout=TIMEOUT,
        retry_base=BASE,
        poll=0.02,
        private_networks=True,
    )
    other.start()
    try:
        start = last_index(hooks)
        endpoints = {register(hooks, r.url)["id"]: r for r in [receivers() for _ in range(4)]}
        for _ in range(4):
            hooks.register()
        eventually(caught_up(hooks, *endpoints))
    finally:
        other.stop()
        store.close()
        keys.close()
    expected = list(range(start + 1, last_index(hooks) + 1))
    for receiver in endpoints.values():
        assert [d.event["logindex"] for d in receiver.delivered] == expected


def test_a_lease_is_one_workers_at_a_time_and_a_worker_that_lost_it_changes_nothing(
    database_url: str,
) -> None:
    store = WebhookStore(database_url, Sealer(os.urandom(32)))
    try:
        created, _ = store.create("key", "http://127.0.0.1:9/hook", [], [], position=4)
        now = datetime.now(UTC)
        assert store.due(end=6, now=now, limit=10) == [created.endpoint_id]
        assert store.lease(created.endpoint_id, "first", now + timedelta(seconds=60), now)
        assert store.due(end=6, now=now, limit=10) == []
        assert not store.lease(created.endpoint_id, "second", now + timedelta(seconds=60), now)
        later = now + timedelta(seconds=61)
        assert store.lease(created.endpoint_id, "second", later + timedelta(seconds=60), later)
        done = Delivery(created.endpoint_id, 0, 5, "x:1", 1, later, 204, None, 3)
        assert not store.delivered(done, "first", later + timedelta(seconds=60))
        assert store.delivered(done, "second", later + timedelta(seconds=60))
        assert [d.webhook_id for d in store.deliveries(created.endpoint_id, 10)] == ["x:1"]
        found = store.get(created.endpoint_id)
        assert found is not None
        assert (found.position, found.sent) == (5, 1)
        assert store.due(end=6, now=later, limit=10) == []
    finally:
        store.close()


def test_back_off_doubles_from_the_base_and_stops_growing_at_a_day() -> None:
    assert [backoff(5, n).total_seconds() for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(5, 20) == timedelta(days=1)
    assert backoff(5, 10_000) == timedelta(days=1)


def test_the_command_line_worker_delivers_when_the_server_does_not(
    world: World, database_url: str, receivers: Callable[..., Receiver]
) -> None:
    settings = Settings(
        database_url=database_url,
        rate_limit_per_second=0,
        webhooks_embedded=False,
        webhook_private_networks=True,
    )
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        api = Api(client, world)
        receiver = receivers()
        created = register(api, receiver.url)
        env = {
            **os.environ,
            "DUTYLEDGER_DATABASE_URL": database_url,
            "DUTYLEDGER_WEBHOOK_PRIVATE_NETWORKS": "true",
        }
        worker = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import main; main()", "webhooks", "run", "--poll", "0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            api.register()
            check = caught_up(api, created["id"])
            eventually(lambda: check() or worker.poll() is not None, within=30)
        finally:
            worker.send_signal(signal.SIGINT)
            out, err = worker.communicate(timeout=30)
        assert "delivering webhooks as" in out, err
        assert worker.returncode == 0, err
        assert check(), f"{out}\n{err}"
        for delivery in receiver.delivered:
            Webhook(created["secret"]).verify(delivery.body, delivery.headers)
        assert json.loads(receiver.delivered[-1].body)["logindex"] == last_index(api)
