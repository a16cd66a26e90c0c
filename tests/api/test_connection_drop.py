"""A client whose connection drops before it reads the answer retries with the same key: recorded once."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from api.app import create_app
from api.keys import PrincipalKind
from api.settings import Settings
from tests.api.live import serving
from tests.support import World


@pytest.fixture
def server(world: World, database_url: str) -> Iterator[tuple[str, str]]:
    """A real server on a free port over the test world; its address and a clerk's key."""
    app = create_app(Settings(database_url=database_url, rate_limit_per_second=0), ledger=world.ledger)
    with serving(app) as url:
        token = app.state.keys.create(PrincipalKind.CADRE, cadre_id=world.township_clerk)[1]
        yield url.removeprefix("http://"), token


def send_and_hang_up(address: str, path: str, body: dict[str, object], headers: dict[str, str]) -> None:
    """Send a request and close the connection without reading a byte of the answer."""
    host, port = address.split(":")
    payload = json.dumps(body).encode()
    fields = {
        "Host": address,
        "Content-Type": "application/json",
        "Content-Length": str(len(payload)),
        **headers,
    }
    head = [f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items()), "", ""]
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall("\r\n".join(head).encode() + payload)
        connection.shutdown(socket.SHUT_RDWR)


def test_a_command_retried_after_a_dropped_connection_is_recorded_once(
    world: World, server: tuple[str, str]
) -> None:
    address, token = server
    case_id = world.accepted()
    before = len(world.events(case_id))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "visit-2026-11-28-001"}
    body = {"narrative": "入户走访", "kind": "visit"}
    send_and_hang_up(address, f"/cases/{case_id}/actions", body, headers)
    deadline = time.monotonic() + 10
    while len(world.events(case_id)) == before and time.monotonic() < deadline:
        time.sleep(0.02)  # the server carries on with the command the client gave up on
    retried = httpx.post(f"http://{address}/cases/{case_id}/actions", json=body, headers=headers, timeout=10)
    assert retried.status_code == 200, retried.text
    assert retried.json()["replayed"] is True
    assert len(world.events(case_id)) == before + 1
    again = httpx.post(f"http://{address}/cases/{case_id}/actions", json=body, headers=headers, timeout=10)
    assert again.json() == retried.json()
    assert len(world.events(case_id)) == before + 1
