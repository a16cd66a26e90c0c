"""Webhook receivers on addresses only the ledger's own host can reach are refused (no SSRF)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import PrincipalKind
from api.settings import Settings
from api.webhooks import addresses
from api.webhooks.addresses import NonPublicAddress, Resolver, refused_literal
from tests.api.conftest import Api
from tests.api.test_webhooks import Receiver, bearer, eventually, hook_settings, receivers  # noqa: F401 - a fixture
from tests.support import World

PUBLIC_HOST = "hotline.example.org"


@pytest.fixture
def guarded(world: World, database_url: str) -> Iterator[Api]:
    """The API as deployed by default: webhook receivers must be public."""
    settings = hook_settings(database_url, private_networks=False)
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        yield Api(client, world)


def resolving(monkeypatch: pytest.MonkeyPatch, to: dict[str, str]) -> None:
    """Names resolve to the given addresses (no DNS in tests)."""

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in to:
            raise socket.gaierror(f"unknown name {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (to[host], port))]

    monkeypatch.setattr(addresses.socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://localhost:8000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
    ],
)
def test_a_receiver_named_by_a_non_public_address_is_refused_and_nothing_is_stored(
    guarded: Api, url: str
) -> None:
    integrator = bearer(guarded.token("hotline", PrincipalKind.INTEGRATOR))
    answer = guarded.client.post("/webhooks", json={"url": url}, headers=integrator)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "public" in answer.json()["detail"]
    assert guarded.client.get("/webhooks", headers=integrator).json() == []


def test_a_receiver_whose_name_resolves_to_this_machine_is_not_called(
    guarded: Api,
    receivers: Callable[..., Receiver],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = receivers()
    resolving(monkeypatch, {PUBLIC_HOST: "127.0.0.1"})
    integrator = bearer(guarded.token("hotline", PrincipalKind.INTEGRATOR))
    url = receiver.url.replace("127.0.0.1", PUBLIC_HOST)
    created = guarded.client.post("/webhooks", json={"url": url}, headers=integrator)
    assert created.status_code == 201, created.text  # a name: judged when it is called
    guarded.register()

    def refused() -> bool:
        log = guarded.client.get(f"/webhooks/{created.json()['id']}/deliveries", headers=integrator)
        return bool(log.json())

    eventually(refused)
    (first, *_) = reversed(
        guarded.client.get(f"/webhooks/{created.json()['id']}/deliveries", headers=integrator).json()
    )
    assert first["succeeded"] is False
    assert first["status"] is None
    assert first["error"] == f"not called: {PUBLIC_HOST} resolves to 127.0.0.1, not a public address"
    assert receiver.received == []


def test_only_public_addresses_pass_and_the_name_is_resolved_once_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert refused_literal("203.0.113.7") is not None  # documentation range: not global
    assert refused_literal("8.8.8.8") is None
    assert refused_literal("2001:4860:4860::8888") is None
    assert refused_literal("224.0.0.1") is not None
    assert refused_literal(PUBLIC_HOST) is None  # a name: resolved when called
    calls: list[str] = []
    resolving(monkeypatch, {PUBLIC_HOST: "93.184.215.14", "intranet.example.org": "10.0.0.8"})
    counted = addresses.socket.getaddrinfo

    def counting(host: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(host)
        return counted(host, *args, **kwargs)

    monkeypatch.setattr(addresses.socket, "getaddrinfo", counting)
    resolver = Resolver()
    resolver.check(PUBLIC_HOST, 443)
    resolver.check(PUBLIC_HOST, 443)
    assert calls == [PUBLIC_HOST]
    with pytest.raises(NonPublicAddress, match=r"intranet\.example\.org resolves to 10\.0\.0\.8"):
        resolver.check("intranet.example.org", 443)
    resolver.check("unknown.example.org", 443)  # unresolvable: left to fail on its own


def test_private_receivers_are_allowed_when_the_operator_says_so(database_url: str, world: World) -> None:
    settings = Settings(database_url=database_url, rate_limit_per_second=0, webhook_private_networks=True)
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        api = Api(client, world)
        integrator = bearer(api.token("hotline", PrincipalKind.INTEGRATOR))
        answer = client.post("/webhooks", json={"url": "http://10.1.2.3/hook"}, headers=integrator)
        assert answer.status_code == 201, answer.text
