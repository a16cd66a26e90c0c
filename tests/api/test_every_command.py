"""Each command route: 401 without a key, 422 with a bad body, its example valid; refusals write nothing."""

from __future__ import annotations

import re
from uuid import UUID

import pytest

from api.commands import ROUTES, Route
from api.keys import PrincipalKind
from tests.api.conftest import Api

MISSING = str(UUID(int=99))


def path_of(route: Route) -> str:
    return re.sub(r"{\w+}", lambda m: "1" if m.group(0).endswith("_no}") else MISSING, route.path)


@pytest.fixture(params=ROUTES, ids=lambda route: route.command)
def route(request: pytest.FixtureRequest) -> Route:
    found: Route = request.param
    return found


def test_each_command_route_refuses_cleanly_and_its_example_is_valid(api: Api, route: Route) -> None:
    before = api.positions()
    path = path_of(route)
    assert api.client.post(path, json=route.example).status_code == 401
    integrator = api.client.post(path, json=route.example, headers=api.headers("x", PrincipalKind.INTEGRATOR))
    assert integrator.status_code == 403
    empty = api.post(path, {}, "admin")
    assert empty.status_code == 422, empty.text
    assert ["body", "narrative"] in [e["location"] for e in empty.json()["errors"]]
    assert api.positions() == before
    answer = api.post(path, route.example, "admin")
    assert answer.json().get("type") != "urn:problem-type:dutyledger:validation-failed", answer.text
    assert answer.status_code < 500
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/problem+json"
        assert api.positions() == before


def test_every_domain_command_but_the_founding_has_a_route() -> None:
    from domain.ledger import Ledger

    commands = {name for name in dir(Ledger) if getattr(getattr(Ledger, name), "__wrapped__", None) and
                getattr(getattr(Ledger, name), "__signature__", None)}  # fmt: skip
    routed = {route.command for route in ROUTES} | {
        "identify_petitioner",
        "access_identity",
        "erase_identity",
        "issue_credential",  # POST /admin/keys
        "revoke_credential",  # POST /admin/keys/{key_id}/revoke
    }
    assert commands - routed == {"establish"}
