"""Every error the API gives is an RFC 9457 problem (application/problem+json) with a stable `type`.

A problem type is `urn:problem-type:dutyledger:<code>`: absolute, stable across deployments
and versions, never resolved over the network (RFC 9457 §3.1.1 allows a non-resolvable
URI; the catalogue is `GET /problems` and docs/api.md). Clients branch on `type`, never on
`title` or `detail`. Domain refusals keep the code the domain gave them (`domain.errors`);
the API adds its own for what only HTTP can get wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import ConnectionUnavailableError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain import errors
from domain.errors import LedgerError

MEDIA_TYPE = "application/problem+json"
PREFIX = "urn:problem-type:dutyledger:"


def type_uri(code: str) -> str:
    return PREFIX + code


class Problem(BaseModel):
    """An RFC 9457 problem detail."""

    type: str = Field(examples=[type_uri("invalid-transition")])
    title: str = Field(examples=["The command does not apply in the current status"])
    status: int = Field(examples=[409])
    detail: str = Field(examples=["a case in status closed cannot be accepted"])
    instance: str | None = Field(None, description="The request path that failed.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="For a body or parameter that failed validation: each field and why."
    )
    context: dict[str, Any] | None = Field(
        None, description="Machine-readable facts about the refusal (ids, expected and actual versions…)."
    )


@dataclass(frozen=True)
class ProblemType:
    """One documented kind of problem: its code, HTTP status and title."""

    code: str
    status: int
    title: str


class ApiProblem(Exception):
    """A problem the HTTP layer itself finds (authentication, scope, media type, limits…)."""

    def __init__(self, kind: ProblemType, detail: str, headers: dict[str, str] | None = None, **context: Any):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.context = context


# What only the HTTP layer can get wrong.
UNAUTHENTICATED = ProblemType("unauthenticated", 401, "No valid API key was presented")
FORBIDDEN = ProblemType("forbidden", 403, "This key may not do this")
OUT_OF_SCOPE = ProblemType("out-of-scope", 403, "The record is outside what this key may read")
ROUTE_NOT_FOUND = ProblemType("route-not-found", 404, "No such resource")
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", 405, "The resource does not support this method")
MALFORMED_REQUEST = ProblemType("malformed-request", 400, "The request could not be read")
UNSUPPORTED_MEDIA_TYPE = ProblemType("unsupported-media-type", 415, "Send the body as application/json")
TOO_LARGE = ProblemType("request-too-large", 413, "The request body is larger than the limit")
VALIDATION_FAILED = ProblemType("validation-failed", 422, "The request does not match the operation's schema")
PRECONDITION_MALFORMED = ProblemType(
    "precondition-malformed", 400, "If-Match must be an entity tag this API gave"
)
RATE_LIMITED = ProblemType("rate-limited", 429, "Too many requests for this key; slow down")
NOT_CAUGHT_UP = ProblemType(
    "views-not-caught-up", 503, "The views have not yet reached the requested position"
)
BUSY = ProblemType("store-busy", 503, "The store is saturated; retry shortly")
UNSIGNED = ProblemType(
    "no-signing-key", 503, "This server has no signing key: it signs no checkpoints, so it proves nothing"
)
INTERNAL = ProblemType("internal-error", 500, "The server failed; nothing was recorded")

API_PROBLEMS = (
    UNAUTHENTICATED,
    FORBIDDEN,
    OUT_OF_SCOPE,
    ROUTE_NOT_FOUND,
    METHOD_NOT_ALLOWED,
    MALFORMED_REQUEST,
    UNSUPPORTED_MEDIA_TYPE,
    TOO_LARGE,
    VALIDATION_FAILED,
    PRECONDITION_MALFORMED,
    RATE_LIMITED,
    NOT_CAUGHT_UP,
    BUSY,
    UNSIGNED,
    INTERNAL,
)


def documented(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, each a problem document with its description."""
    return {
        status: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": text}
        for status, text in descriptions.items()
    }


MALFORMED_PATH = documented({400: "Malformed request (a NUL character in the path or query)"})
"""`RequestLimits` answers any operation so: every router documents it (`api.app` lists routes flat)."""


def ledger_status(error: type[LedgerError]) -> int:
    """The HTTP status of a domain refusal, by its branch of `domain.errors`."""
    if issubclass(error, errors.VersionConflict):
        return 412
    for branch, status in (
        (errors.NotFound, 404),
        (errors.NotAllowed, 403),
        (errors.Conflict, 409),
        (errors.RuleViolation, 422),
    ):
        if issubclass(error, branch):
            return status
    return 400


def _ledger_errors() -> list[type[LedgerError]]:
    found: list[type[LedgerError]] = []
    pending: list[type[LedgerError]] = [LedgerError]
    while pending:
        error = pending.pop(0)
        found.append(error)
        pending.extend(error.__subclasses__())
    return found


def catalogue() -> list[ProblemType]:
    """Every problem type the API can answer with, domain refusals first."""
    domain = [ProblemType(e.code, ledger_status(e), e.title) for e in _ledger_errors()]
    return sorted({p.code: p for p in [*domain, *API_PROBLEMS]}.values(), key=lambda p: (p.status, p.code))


def problem_response(
    request: Request,
    kind: ProblemType,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        type=type_uri(kind.code),
        title=kind.title,
        status=kind.status,
        detail=detail,
        instance=request.url.path,
        **{k: v for k, v in extra.items() if v},
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=kind.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def _validation_errors(error: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "location": [str(part) for part in item.get("loc", ())],
            "message": item.get("msg", ""),
            "kind": item.get("type", ""),
        }
        for item in error.errors()
    ]


def install(app: FastAPI) -> None:
    """Answer every error with a problem document, including the framework's own and the unexpected."""

    @app.exception_handler(LedgerError)
    async def refused(request: Request, error: LedgerError) -> JSONResponse:
        kind = ProblemType(error.code, ledger_status(type(error)), error.title)
        context = {k: v for k, v in error.context.items() if isinstance(v, str | int | float | bool)}
        return problem_response(request, kind, error.detail, context=context or None)

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, error: ApiProblem) -> JSONResponse:
        return problem_response(
            request, error.kind, error.detail, error.headers, context=error.context or None
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        found = _validation_errors(error)
        if any(item["kind"] == "json_invalid" for item in found):
            return problem_response(request, MALFORMED_REQUEST, "the body is not valid JSON", errors=found)
        if any(item["kind"] == "model_attributes_type" and item["location"] == ["body"] for item in found):
            return problem_response(
                request, MALFORMED_REQUEST, "the body must be a JSON object", errors=found
            )
        return problem_response(
            request, VALIDATION_FAILED, f"{len(found)} field(s) failed validation", errors=found
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kinds = {
            400: MALFORMED_REQUEST,
            404: ROUTE_NOT_FOUND,
            405: METHOD_NOT_ALLOWED,
            413: TOO_LARGE,
            415: UNSUPPORTED_MEDIA_TYPE,
        }
        kind = kinds.get(error.status_code) or ProblemType(
            f"http-{error.status_code}", error.status_code, str(error.detail)
        )
        return problem_response(request, kind, str(error.detail), dict(error.headers or {}))

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, error: OverflowError) -> JSONResponse:
        detail = "a time or date is beyond what can be counted from it (the calendar's range)"
        return problem_response(request, VALIDATION_FAILED, detail)

    @app.exception_handler(ConnectionUnavailableError)
    async def busy(request: Request, error: ConnectionUnavailableError) -> JSONResponse:
        detail = "every connection to the store stayed busy; nothing was recorded by this request"
        return problem_response(request, BUSY, detail, {"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return problem_response(request, INTERNAL, "an unexpected error; it was logged")
