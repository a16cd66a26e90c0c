"""Command routes answered without FastAPI's per-request dependency solving, with the same answers.

FastAPI documents a command route as it is declared (path parameters, the body model, two
headers, the key's principal as a dependency). At request time its generic handler walks the
dependency tree again, classifying callables and computing cache keys, and wraps each step for
telemetry: measured, a quarter of a command's CPU in process. A command's inputs are always
the same few, so `CommandRoute` answers them directly, in FastAPI's order and with the fields
FastAPI built for the route, so that every error reads as FastAPI's would (FastAPI's own
validation helpers, private ones included: an upgrade that moves them fails at import, and
`tests/api/test_lean.py` compares every kind of answer with FastAPI's own handler):

1. the body is read and parsed (malformed JSON: 400 before anything else);
2. the key is authenticated and must be a cadre's (401, 403);
3. the path parameters, headers and body are validated, every error listed in one 422;
4. the endpoint runs on a worker thread (it writes to the store), one of `Settings.command_threads`
   kept for commands (`app.state.command_slots`): commands queue for them in order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from typing import Any

from anyio import CapacityLimiter, to_thread
from fastapi._compat import ModelField, field_annotation_is_sequence
from fastapi.dependencies.utils import (
    _get_param_aliases,
    _validate_value_with_model_field,
    request_body_to_args,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic_core import PydanticUndefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.access import acting, bearer, principal

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class CommandRoute(APIRoute):
    """A command's route: documented by FastAPI, answered by `lean_handler`."""

    def get_route_handler(self) -> Handler:
        return lean_handler(self)


def lean_handler(route: APIRoute) -> Handler:
    """The handler of a command route: its endpoint takes the request, path parameters, headers,
    one JSON body and `actor` (the key's cadre), and returns a ready response."""
    dependant = route.dependant
    assert dependant.call is not None
    assert not dependant.query_params, "a command takes no query"
    assert not dependant.cookie_params, "a command takes no cookie"
    assert [d.call for d in dependant.dependencies] == [acting], "the one dependency is the actor"
    (body_field,) = dependant.body_params
    endpoint, embed = dependant.call, route._embed_body_fields
    paths, headers = _scalars(dependant.path_params), _scalars(dependant.header_params)

    async def handle(request: Request) -> Response:
        body = await _json_body(request)
        actor = await acting(await principal(request, await bearer(request)))
        values, errors = _validated(paths, request.path_params)
        given, header_errors = _validated(headers, request.headers)
        content, body_errors = await request_body_to_args([body_field], body, embed)
        errors += header_errors + body_errors
        if errors:
            raise RequestValidationError(errors, body=body)
        run = partial(endpoint, request, actor=actor, **values, **given, **content)
        slots: CapacityLimiter = request.app.state.command_slots
        response: Response = await to_thread.run_sync(run, limiter=slots)
        return response

    return handle


Scalar = tuple[ModelField, str, tuple[str, str]]


def _scalars(fields: list[ModelField]) -> list[Scalar]:
    """Each parameter with the key it is sent under and the location its errors name, as FastAPI has them."""
    scalars = []
    for field in fields:
        assert not field_annotation_is_sequence(field.field_info.annotation), "one value per parameter"
        _, alias = _get_param_aliases(field)[0]
        scalars.append((field, alias, (field.field_info.in_.value, alias)))  # type: ignore[attr-defined]
    return scalars


def _validated(scalars: list[Scalar], sent: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """FastAPI's `request_params_to_args` for parameters of one value each: values by name, and errors."""
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for field, alias, location in scalars:
        found = sent.get(alias)
        value, failed = _validate_value_with_model_field(
            field=field, value=PydanticUndefined if found is None else found, values=values, loc=location
        )
        if failed:
            errors += failed
        else:
            values[field.name] = value
    return values, errors


async def _json_body(request: Request) -> Any:
    """The parsed body, or `PydanticUndefined` for none, as FastAPI reads a JSON body.

    (`RequestLimits` has already refused a non-empty body that is not JSON, with 415.)
    """
    raw = await request.body()
    if not raw:
        return PydanticUndefined
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        problem = {
            "type": "json_invalid",
            "loc": ("body", error.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": error.msg},
        }
        raise RequestValidationError([problem], body=error.doc) from error
    except Exception as error:  # bytes that are no text at all: FastAPI's answer
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from error
