"""Webhook receivers on addresses only the ledger's own host can reach are refused (no SSRF)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpcore
import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import PrincipalKind
from api.settings import Settings
from api.webhooks import addresses
from api.webhooks.addresses import PublicOnlyTransport, checked_address, public, refused_literal
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
        "http://0x7f000001/hook",  # 127.0.0.1 as the resolver also reads it
        "http://2130706433/hook",
        "http://127.1/hook",
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
    deliveries = f"/webhooks/{created.json()['id']}/deliveries"
    eventually(lambda: bool(guarded.client.get(deliveries, headers=integrator).json()))
    first = guarded.client.get(deliveries, headers=integrator).json()[-1]
    assert first["succeeded"] is False
    assert first["status"] is None
    assert first["error"] == (
        f"ConnectError: not called: {PUBLIC_HOST} resolves to 127.0.0.1, not a public address"
    )
    assert receiver.received == []


def test_the_transport_connects_to_the_address_it_checked_not_to_a_second_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter(["93.184.215.14", "127.0.0.1"])  # public when checked, loopback after (rebinding)
    looked_up: list[str] = []

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        looked_up.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(addresses.socket, "getaddrinfo", getaddrinfo)
    connected: list[tuple[str, int]] = []

    def connect_tcp(self: Any, host: str, port: int, *args: Any) -> Any:
        connected.append((host, port))
        raise httpcore.ConnectError("stopped here")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    with httpx.Client(transport=PublicOnlyTransport()) as client, pytest.raises(httpx.ConnectError):
        client.post("https://faß.example.org/hook", content=b"{}")
    assert looked_up == ["xn--fa-hia.example.org"], "the name as sent on the wire (IDNA 2008), once"
    assert connected == [("93.184.215.14", 443)]


def test_a_name_that_does_not_resolve_is_not_called() -> None:
    with pytest.raises(httpcore.ConnectError, match="does not resolve"):
        checked_address("no-such-host.invalid", 443)


@pytest.mark.parametrize(
    ("address", "reachable"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("203.0.113.7", False),  # documentation range
        ("224.0.0.1", False),  # multicast
        ("100.64.0.1", False),  # shared (carrier-grade NAT)
        ("::ffff:10.0.0.5", False),  # IPv4-mapped
        ("::127.0.0.1", False),  # IPv4-compatible
        ("64:ff9b::a00:5", False),  # NAT64 to 10.0.0.5
        ("64:ff9b::808:808", True),  # NAT64 to 8.8.8.8
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo client 10.0.0.1
        ("::", False),
    ],
)
def test_only_addresses_anyone_could_reach_are_public(address: str, reachable: bool) -> None:
    assert public(ipaddress.ip_address(address)) is reachable
    assert (refused_literal(address) is None) is reachable


def test_private_receivers_are_allowed_when_the_operator_says_so(database_url: str, world: World) -> None:
    settings = Settings(database_url=database_url, rate_limit_per_second=0, webhook_private_networks=True)
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        api = Api(client, world)
        integrator = bearer(api.token("hotline", PrincipalKind.INTEGRATOR))
        answer = client.post("/webhooks", json={"url": "http://10.1.2.3/hook"}, headers=integrator)
        assert answer.status_code == 201, answer.text


def test_a_receiver_url_with_a_user_or_password_is_refused(guarded: Api) -> None:
    """It was stored, and listed back to every administrator."""
    integrator = bearer(guarded.token("hotline", PrincipalKind.INTEGRATOR))
    answer = guarded.client.post(
        "/webhooks", json={"url": f"https://hook:s3cret@{PUBLIC_HOST}/in"}, headers=integrator
    )
    assert answer.status_code == 422, answer.text
    assert "s3cret" not in answer.text
    assert guarded.client.get("/webhooks", headers=integrator).json() == []
