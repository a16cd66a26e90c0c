"""Administration of API keys: create, list, revoke (an administrator's key only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.access import administrator
from api.commands import ERRORS
from api.keys import ApiKey, KeyRefused, KeyStore, Principal, PrincipalKind, issue_key, revoke_key
from api.routes.common import READ_ERRORS
from domain.errors import Conflict, InvalidArgument

router = APIRouter(prefix="/admin/keys", tags=["administration"], responses=READ_ERRORS)
Admin = Annotated[Principal, Depends(administrator)]


class KeyRequest(BaseModel):
    """A key to create: what it is for, whom it acts as, what it reads, until when."""

    kind: PrincipalKind
    cadre_id: UUID | None = Field(None, description="The cadre it records as (not for integrators).")
    scope_unit_ids: list[UUID] = Field(
        default_factory=list, description="Inspector, integrator: units it reads."
    )
    event_types: list[str] = Field(
        default_factory=list,
        description="Integrator: the event types it reads (exact, or with `*`: `cn.petition.case.*`); "
        "none: every type.",
    )
    label: str = Field("", max_length=200)
    reason: str = Field(
        "", max_length=2000, description="Why the key is issued: the narrative of `Credential.Issued`."
    )
    expires_at: datetime | None = Field(None, description="With a zone offset; never, if absent.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"kind": "cadre", "cadre_id": "3e7d2c1b-9a8f-5e4d-a3c2-b1f0e9d8c7b6", "label": "李明 laptop"}
            ]
        }
    )


class KeyInfo(BaseModel):
    """A key as listed: never its secret."""

    key_id: str
    kind: PrincipalKind
    cadre_id: UUID | None
    scope_unit_ids: list[UUID]
    event_types: list[str]
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(
            **{
                **key.__dict__,
                "scope_unit_ids": sorted(key.scope_unit_ids, key=str),
                "event_types": sorted(key.event_types),
            }
        )


class CreatedKey(KeyInfo):
    """A new key and its token: shown this once, never stored."""

    token: str


def _keys(request: Request) -> KeyStore:
    store: KeyStore = request.app.state.keys
    return store


@router.post("", response_model=CreatedKey, status_code=201, summary="Create an API key.", responses=ERRORS)
def create(request: Request, body: KeyRequest, admin: Admin) -> CreatedKey:
    """Create a key bound to a principal, recorded as `Credential.Issued` by this administrator;
    the answer holds its token, which is never shown again."""
    try:
        key, token = issue_key(
            request.app.state.ledger,
            _keys(request),
            _cadre(admin),
            body.kind,
            cadre_id=body.cadre_id,
            scope_unit_ids=body.scope_unit_ids,
            event_types=body.event_types,
            label=body.label,
            expires_at=body.expires_at,
            reason=body.reason,
        )
    except KeyRefused as error:
        raise InvalidArgument(str(error)) from None
    return CreatedKey(**KeyInfo.of(key).model_dump(), token=token)


@router.get("", response_model=list[KeyInfo], summary="List API keys.")
def list_all(request: Request, admin: Admin) -> list[KeyInfo]:
    """Every key, live, expired or revoked, oldest first; never a secret."""
    return [KeyInfo.of(key) for key in _keys(request).list()]


@router.post("/{key_id}/revoke", response_model=KeyInfo, summary="Revoke an API key.", responses=ERRORS)
def revoke(request: Request, key_id: str, admin: Admin) -> KeyInfo:
    """Revoke a key, recorded as `Credential.Revoked`: it stops working at once here, and within
    seconds in other server processes."""
    try:
        return KeyInfo.of(revoke_key(request.app.state.ledger, _keys(request), _cadre(admin), key_id))
    except KeyRefused as error:
        raise Conflict(str(error)) from None


def _cadre(admin: Principal) -> UUID:
    assert admin.cadre_id is not None  # `administrator` admits only keys with a cadre
    return admin.cadre_id
