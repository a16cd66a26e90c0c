"""Webhook endpoints: integrators register receivers of the public log; administrators see them all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

import httpx
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.access import Caller, administrator
from api.keys import Principal, PrincipalKind
from api.problems import FORBIDDEN, MALFORMED_PATH, VALIDATION_FAILED, ApiProblem, documented
from api.routes.common import LOG_INDEX_MAX
from api.routes.events import Log
from api.settings import Settings
from api.webhooks.addresses import not_http, refused_literal
from api.webhooks.store import Delivery, Endpoint, EndpointGone, TooManySecrets, WebhookStore
from api.webhooks.worker import Worker
from domain.catalogue import topics_of
from domain.errors import Conflict, NotFound
from domain.ledger import Ledger
from domain.registry import Unit

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=MALFORMED_PATH)

ERRORS = documented(
    {
        400: "The body could not be read",
        401: "No valid API key",
        403: "Webhooks are registered with an integrator's or administrator's key",
        404: "No such endpoint (or not this key's), or no such unit",
        409: "The endpoint is disabled, or has as many live secrets as it may",
        413: "The body is larger than the limit",
        415: "The body is not application/json",
        422: "The body or a parameter is malformed, or names no event type",
        429: "Too many requests for this key",
        503: "The sequencer has not started yet (see Retry-After)",
    }
)
DAY = 86_400
MAX_GRACE = 30 * DAY


def owner(request: Request, caller: Caller) -> Principal:
    """An integrator's key (it owns what it registers) or an administrator's (it sees every endpoint)."""
    if caller.kind is PrincipalKind.ADMINISTRATOR:
        return administrator(request, caller)
    if caller.kind is not PrincipalKind.INTEGRATOR:
        raise ApiProblem(FORBIDDEN, "webhooks are registered with an integrator's or administrator's key")
    return caller


Owner = Annotated[Principal, Depends(owner)]


def _store(request: Request) -> WebhookStore:
    store: WebhookStore = request.app.state.webhooks
    return store


def _wake(request: Request) -> None:
    worker: Worker | None = request.app.state.webhook_worker
    if worker is not None:
        worker.wake()


def _own(request: Request, caller: Principal, endpoint_id: str) -> Endpoint:
    """The endpoint, if the caller may see it: its owner key's, or any for an administrator."""
    found = _store(request).get(endpoint_id)
    mine = found is not None and (
        caller.kind is PrincipalKind.ADMINISTRATOR or found.owner_key_id == caller.key_id
    )
    if found is None or not mine:
        raise NotFound(f"no webhook endpoint {endpoint_id}", kind="WebhookEndpoint")
    return found


class EndpointCreate(BaseModel):
    """A receiver to register: where to post, and which events it wants."""

    url: str = Field(max_length=2000, description="An http or https URL that answers POST with a 2xx.")
    types: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Only these event types (exact, or with `*`: `cn.petition.case.*`); none: every type.",
    )
    units: list[UUID] = Field(
        default_factory=list,
        max_length=100,
        description="Only events whose actor served in one of these units or below; none: every unit.",
    )
    after: int | None = Field(
        None,
        ge=-1,
        le=LOG_INDEX_MAX,
        description="Deliver the events after this log index (-1: the whole log); default: only new events.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hotline.example.org/dutyledger/events",
                    "types": ["cn.petition.case.*"],
                    "units": ["3e7d2c1b-9a8f-5e4d-a3c2-b1f0e9d8c7b6"],
                }
            ]
        }
    )

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        problem = not_http(url)
        if problem is not None:
            raise ValueError(problem)
        if httpx.URL(url).userinfo:
            raise ValueError(
                "no user or password in the URL: it would be listed back; the signature proves the sender"
            )
        return url


class Rotation(BaseModel):
    """How long the secrets in use keep signing beside the new one."""

    grace_seconds: int = Field(
        DAY, ge=0, le=MAX_GRACE, description="0: the old secrets stop signing at once; default one day."
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"grace_seconds": 86400}]})


ONE_DAY = Rotation()
"""No body: the old secrets sign for a day more."""


class SecretInfo(BaseModel):
    """A signing secret of an endpoint, without the secret."""

    created_at: datetime
    expires_at: datetime | None = Field(description="When a rotated-out secret stops signing.")


class EndpointInfo(BaseModel):
    """A webhook endpoint: its filter, where it has got to, and whether it is waiting to retry."""

    id: str
    owner_key_id: str
    url: str
    types: list[str]
    units: list[UUID]
    position: int = Field(description="The last log index delivered or passed over (-1: none yet).")
    attempts: int = Field(description="Failed attempts at the next event so far.")
    next_attempt_at: datetime | None = Field(description="While backing off: when the next attempt is due.")
    deliveries: int = Field(description="Attempts made so far (the delivery log keeps the latest 1,000).")
    secrets: list[SecretInfo]
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, endpoint: Endpoint, now: datetime | None = None) -> EndpointInfo:
        live = [s for s in endpoint.signing_secrets if now is None or s.live_at(now)]
        return cls(
            id=endpoint.endpoint_id,
            owner_key_id=endpoint.owner_key_id,
            url=endpoint.url,
            types=list(endpoint.event_types),
            units=list(endpoint.unit_ids),
            position=endpoint.position,
            attempts=endpoint.attempts,
            next_attempt_at=endpoint.next_attempt_at,
            deliveries=endpoint.sent,
            secrets=[SecretInfo(created_at=s.created_at, expires_at=s.expires_at) for s in live],
            created_at=endpoint.created_at,
            disabled_at=endpoint.disabled_at,
        )


class EndpointWithSecret(EndpointInfo):
    """An endpoint and its new signing secret (`whsec_…`): shown this once, keep it safe."""

    secret: str


class DeliveryInfo(BaseModel):
    """One attempt to deliver one event."""

    log_index: int
    webhook_id: str = Field(description="The event's CloudEvents id: the same on every attempt.")
    attempt: int = Field(description="1 for the first attempt at this event, 2 for the first retry…")
    attempted_at: datetime
    status: int | None = Field(description="The receiver's HTTP status; null if it gave none.")
    error: str | None
    duration_ms: int
    succeeded: bool

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryInfo:
        return cls(
            log_index=delivery.log_index,
            webhook_id=delivery.webhook_id,
            attempt=delivery.attempt,
            attempted_at=delivery.attempted_at,
            status=delivery.status,
            error=delivery.error,
            duration_ms=delivery.duration_ms,
            succeeded=delivery.succeeded,
        )


@router.post(
    "",
    response_model=EndpointWithSecret,
    status_code=201,
    summary="Register a webhook endpoint.",
    responses=ERRORS,
)
def register(request: Request, body: EndpointCreate, caller: Owner, log: Log) -> EndpointWithSecret:
    """Register a receiver of events; the answer holds its signing secret, which is never shown again.

    Events reach it as the event feed shows them to this key: the endpoint's filter is narrowed
    by the key's own (checked again at every delivery).
    """
    topics_of(body.types)
    settings: Settings = request.app.state.settings
    refused = refused_literal(httpx.URL(body.url).raw_host.decode("ascii"))
    if refused is not None and not settings.webhook_private_networks:
        raise ApiProblem(
            VALIDATION_FAILED,
            f"webhook receivers must be public addresses: {refused} (see docs/webhooks.md)",
            url=body.url,
        )
    ledger: Ledger = request.app.state.ledger
    for unit_id in body.units:
        ledger.peek(Unit, unit_id)
    last = log.length() - 1
    if body.after is not None and body.after > last:
        raise ApiProblem(VALIDATION_FAILED, f"the log's last index is {last}: `after` cannot be beyond it")
    endpoint, secret = _store(request).create(
        caller.key_id, body.url, body.types, body.units, last if body.after is None else body.after
    )
    _wake(request)
    return EndpointWithSecret(**EndpointInfo.of(endpoint).model_dump(), secret=secret)


@router.get("", response_model=list[EndpointInfo], summary="List webhook endpoints.", responses=ERRORS)
def list_endpoints(request: Request, caller: Owner) -> list[EndpointInfo]:
    """This key's endpoints (an administrator: every one), disabled ones too, oldest first."""
    mine = None if caller.kind is PrincipalKind.ADMINISTRATOR else caller.key_id
    now = _now()
    return [EndpointInfo.of(e, now) for e in _store(request).endpoints(mine)]


@router.get(
    "/{endpoint_id}", response_model=EndpointInfo, summary="Read a webhook endpoint.", responses=ERRORS
)
def read_endpoint(request: Request, endpoint_id: str, caller: Owner) -> EndpointInfo:
    """One endpoint: its filter, position and back-off (never its secrets)."""
    return EndpointInfo.of(_own(request, caller, endpoint_id), _now())


@router.delete(
    "/{endpoint_id}", response_model=EndpointInfo, summary="Disable a webhook endpoint.", responses=ERRORS
)
def disable(request: Request, endpoint_id: str, caller: Owner) -> EndpointInfo:
    """Stop delivering to an endpoint, for good; it stays listed with its delivery log."""
    _own(request, caller, endpoint_id)
    _store(request).disable(endpoint_id)
    return read_endpoint(request, endpoint_id, caller)


@router.post(
    "/{endpoint_id}/secret",
    response_model=EndpointWithSecret,
    summary="Rotate a webhook endpoint's signing secret.",
    responses=ERRORS,
)
def rotate(
    request: Request, endpoint_id: str, caller: Owner, body: Annotated[Rotation, Body()] = ONE_DAY
) -> EndpointWithSecret:
    """A new secret signs every delivery from now; the old ones sign beside it for `grace_seconds`."""
    _own(request, caller, endpoint_id)
    grace = body.grace_seconds
    try:
        endpoint, secret = _store(request).rotate(endpoint_id, timedelta(seconds=grace))
    except EndpointGone:
        raise Conflict(f"webhook endpoint {endpoint_id} is disabled") from None
    except TooManySecrets as error:
        raise Conflict(f"{error}: rotate again once older ones have lapsed") from None
    return EndpointWithSecret(**EndpointInfo.of(endpoint, _now()).model_dump(), secret=secret)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=list[DeliveryInfo],
    summary="Read a webhook endpoint's delivery log.",
    responses=ERRORS,
)
def deliveries(
    request: Request,
    endpoint_id: str,
    caller: Owner,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many attempts.")] = 100,
) -> list[DeliveryInfo]:
    """Every attempt to deliver, newest first: the event, the receiver's status or error, how long it took."""
    _own(request, caller, endpoint_id)
    return [DeliveryInfo.of(d) for d in _store(request).deliveries(endpoint_id, limit)]


@router.post(
    "/{endpoint_id}/retry",
    response_model=EndpointInfo,
    status_code=202,
    summary="Retry a webhook endpoint now.",
    responses=ERRORS,
)
def retry(request: Request, endpoint_id: str, caller: Owner) -> EndpointInfo:
    """End the back-off wait: the next event is tried again at once (the receiver was fixed)."""
    _own(request, caller, endpoint_id)
    if not _store(request).retry_now(endpoint_id):
        raise Conflict(f"webhook endpoint {endpoint_id} is disabled")
    _wake(request)
    return read_endpoint(request, endpoint_id, caller)


def _now() -> datetime:
    return datetime.now(UTC)
