"""Command routes answer exactly as FastAPI's own handler would, bad input of every kind included."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, request_response
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.keys import PrincipalKind
from api.lean import CommandRoute
from api.settings import Settings
from tests.api.conftest import Api
from tests.support import World

ACTIONS = "/cases/{}/actions"


@contextmanager
def framework_handlers(app: FastAPI) -> Iterator[None]:
    """Answer the command routes with FastAPI's generic handler for a while (what `CommandRoute` replaces)."""
    routes = [route for route in app.router.routes if isinstance(route, CommandRoute)]
    assert routes, "the app has command routes"
    lean = [route.app for route in routes]
    for route in routes:
        route.app = request_response(APIRoute.get_route_handler(route))
    try:
        yield
    finally:
        for route, handler in zip(routes, lean, strict=True):
            route.app = handler


def answer(api: Api, path: str, content: bytes | None, headers: dict[str, str]) -> tuple[int, Any, str]:
    """Status, body and the challenge header of a POST."""
    sent = {"Content-Type": "application/json", **headers}
    response = api.client.post(path, content=content, headers=sent)
    body = response.json() if response.content else None
    return response.status_code, body, response.headers.get("WWW-Authenticate", "")


def both(api: Api, path: str, content: bytes | None, headers: dict[str, str]) -> tuple[Any, Any]:
    """The lean answer and FastAPI's, to the same request; neither may record anything."""
    before = api.positions()
    lean = answer(api, path, content, headers)
    with framework_handlers(api.client.app):  # type: ignore[arg-type]
        framework = answer(api, path, content, headers)
    assert api.positions() == before, "a refused command recorded something"
    return lean, framework


def test_every_kind_of_bad_command_is_answered_as_fastapi_answers_it(api: Api) -> None:
    case = api.register()
    clerk = api.headers("township_clerk")
    integrator = api.headers("nobody", PrincipalKind.INTEGRATOR)
    good = '{"narrative": "走访", "kind": "visit"}'.encode()
    refused = {
        "malformed JSON": (ACTIONS.format(case), b'{"narrative": ', clerk),
        "malformed JSON without a key": (ACTIONS.format(case), b"{", {}),
        "bytes that are no text": (ACTIONS.format(case), b'{"narrative": "\xff\xfe"}', clerk),
        "a list, not an object": (ACTIONS.format(case), b"[1, 2]", clerk),
        "a bare string": (ACTIONS.format(case), b'"visit"', clerk),
        "no body": (ACTIONS.format(case), None, clerk),
        "no narrative": (ACTIONS.format(case), b'{"kind": "visit"}', clerk),
        "an actor field and a wrong kind": (
            ACTIONS.format(case),
            b'{"narrative": "x", "kind": 5, "actor_id": "someone"}',
            clerk,
        ),
        "a case id that is no id": (ACTIONS.format("not-a-uuid"), good, clerk),
        "an idempotency key too long": (ACTIONS.format(case), good, {**clerk, "Idempotency-Key": "k" * 201}),
        "an empty idempotency key": (ACTIONS.format(case), good, {**clerk, "Idempotency-Key": ""}),
        "an If-Match that is no version": (ACTIONS.format(case), good, {**clerk, "If-Match": "soon"}),
        "an If-Match the case is not at": (ACTIONS.format(case), good, {**clerk, "If-Match": '"999"'}),
        "every field wrong at once": (
            ACTIONS.format("nope"),
            b'{"kind": "teleport"}',
            {**clerk, "Idempotency-Key": "x" * 300},
        ),
        "no key": (ACTIONS.format(case), good, {}),
        "a key that is no key": (ACTIONS.format(case), good, {"Authorization": "Bearer dlk_nothing"}),
        "an integrator's key": (ACTIONS.format(case), good, integrator),
        "an order number that is no number": (
            f"/cases/{case}/supervision-orders/first/answer",
            b'{"narrative": "x"}',
            clerk,
        ),
        "a meeting that does not exist": (
            "/meetings/5f0c1d2e-3a4b-5c6d-8e9f-a0b1c2d3e4f5/conclude",
            b'{"narrative": "x"}',
            clerk,
        ),
    }
    for name, (path, content, headers) in refused.items():
        lean, framework = both(api, path, content, headers)
        assert lean == framework, name
        assert lean[0] >= 400, name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(
        st.sampled_from(["narrative", "kind", "occurred_at", "evidence", "correlation_id", "extra"]),
        st.recursive(
            st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
            ),
            max_leaves=4,
        ),
    )
)
def test_any_refused_body_is_refused_as_fastapi_refuses_it(api: Api, body: dict[str, Any]) -> None:
    if "narrative" in body and "kind" in body:
        body["kind"] = 0  # always refused: a valid body would be recorded by each handler in turn
    clerk = api.headers("township_clerk")
    lean, framework = both(api, ACTIONS.format(api.register()), orjson.dumps(body), clerk)
    assert lean == framework
    assert lean[0] in (400, 422)  # 400: a NUL character, refused before any route


def test_a_good_command_is_recorded_once_and_answered_with_its_version_and_position(api: Api) -> None:
    case = api.register()
    sent = api.post(ACTIONS.format(case), {"narrative": "上门走访", "kind": "visit"}, "township_clerk")
    assert sent.status_code == 200, sent.text
    assert sent.json()["position"] == api.positions()
    assert sent.headers["ETag"] == f'"{sent.json()["version"]}"'


def test_commands_run_on_no_more_threads_at_once_than_configured_and_the_rest_wait(
    world: World, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        database_url=database_url,
        rate_limit_per_second=0,
        command_threads=2,
        signing_key_path=str(tmp_path / "no-signing-key"),
    )
    running, peak, guard = 0, 0, threading.Lock()
    record_action = world.ledger.record_action

    def slowly(*arguments: Any, **keywords: Any) -> Any:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        try:
            return record_action(*arguments, **keywords)
        finally:
            with guard:
                running -= 1

    monkeypatch.setattr(world.ledger, "record_action", slowly)
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        api = Api(client, world)
        case = api.register()
        clerk = api.headers("township_clerk")
        with ThreadPoolExecutor(6) as pool:
            sent = list(
                pool.map(
                    lambda n: client.post(
                        ACTIONS.format(case), json={"narrative": f"走访{n}", "kind": "visit"}, headers=clerk
                    ),
                    range(6),
                )
            )
    assert [answer.status_code for answer in sent] == [200] * 6
    assert peak == 2
