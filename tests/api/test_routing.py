"""Every operation is reached by its own path: no route earlier in the app shadows a later one;
routes are listed flat, and each documents what the app answers before any route runs."""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Match, Route

from api.app import create_app

SAMPLE = "5f0c1d2e-3a4b-5c6d-8e9f-a0b1c2d3e4f5"


def operations(routes: list[Any]) -> list[APIRoute]:
    """The app's operations in the order requests are matched against them."""
    return [route for route in routes if isinstance(route, APIRoute)]


def test_the_app_lists_every_route_flat_with_no_router_to_descend_into() -> None:
    routes = create_app().router.routes
    assert all(isinstance(route, Route) for route in routes), (
        "an included router is matched twice per request"
    )


def test_every_operation_documents_the_400_answered_before_any_route_runs() -> None:
    document = create_app().openapi()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert "400" in operation["responses"], f"{method.upper()} {path} does not document 400"


def test_a_request_for_each_operation_is_matched_first_by_that_operation() -> None:
    ordered = operations(create_app().router.routes)
    assert len(ordered) > 60
    for route in ordered:
        path = re.sub(r"\{[^}]+\}", SAMPLE, route.path)
        for method in route.methods:
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            first = next(r for r in ordered if r.matches(scope)[0] is Match.FULL)
            assert first is route, f"{method} {path} reaches {first.path}, not {route.path}"
