"""Petitioners' identities: filed by a cadre, read for a case (every read recorded), erased by an admin."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.access import Caller, acting_cadre, administrator
from api.commands import ERRORS, CommandAnswer, IdempotencyKey, answer_of
from api.identity import Identity, IdentityStatus, IdentityStore, erase_identity, file_identity, read_identity
from api.keys import Principal
from api.problems import FORBIDDEN, ApiProblem
from api.routes.common import READ_ERRORS, Reader, Views
from domain.errors import NotFound
from domain.ledger import CommandContext, Ledger
from projections.queries import cases_of_petitioner, get_case

router = APIRouter(tags=["petitioners"], responses=READ_ERRORS)


class FileIdentity(Identity):
    """An identity to put on file, and why."""

    narrative: str = Field(description="Why the identity is filed (never the identity itself).")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "narrative": "来访登记身份信息",
                    "name": "张三",
                    "phone": "13800000000",
                    "address": "东村3组",
                }
            ]
        }
    )


class FiledIdentity(CommandAnswer):
    """The pseudonymous id the identity is filed under: cases carry this id, never the identity."""

    petitioner_id: UUID


class PetitionerIdentity(BaseModel):
    """What is on file for a case's petitioner; `identity` only when `status` is `on_file`."""

    petitioner_id: UUID
    status: IdentityStatus
    identity: Identity | None = None


class Erasure(BaseModel):
    """Why the identity is erased."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"narrative": "信访人书面申请删除个人信息"}]})
    narrative: str


def _store(request: Request) -> IdentityStore:
    store: IdentityStore = request.app.state.identities
    return store


@router.post(
    "/petitioners",
    response_model=FiledIdentity,
    status_code=201,
    responses=ERRORS,
    summary="Put a petitioner's identity on file.",
)
def file(
    request: Request,
    response: Response,
    body: FileIdentity,
    actor: Annotated[UUID, Depends(acting_cadre)],
    key: IdempotencyKey = None,
) -> FiledIdentity:
    """File the identity outside the events; register cases with the `petitioner_id` this answers."""
    ctx = CommandContext(actor_id=actor, narrative=body.narrative, command_id=key)
    identity = Identity.model_validate(body.model_dump(exclude={"narrative"}))
    result, petitioner_id = file_identity(request.app.state.ledger, _store(request), ctx, identity)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return FiledIdentity(**answer_of(result).model_dump(), petitioner_id=petitioner_id)


@router.get(
    "/cases/{case_id}/petitioner",
    response_model=PetitionerIdentity,
    summary="Read the identity of a case's petitioner (the read is recorded).",
    responses=ERRORS,
)
def read(
    request: Request,
    case_id: UUID,
    views: Views,
    reader: Reader,
    caller: Caller,
    reason: Annotated[
        str, Query(min_length=2, max_length=500, description="Why you need it: it is recorded.")
    ],
) -> PetitionerIdentity:
    """Records `IdentityAccessed` (who, which petitioner, which case, why), then answers the identity.

    A cadre accused by this or any other petition of the same petitioner, or a cadre of such an
    accused unit, is refused (403), as is anyone outside the case's scope.
    """
    ledger: Ledger = request.app.state.ledger
    today = ledger.clock.now().date()
    case = get_case(views, case_id, today)
    if case is None:
        raise NotFound(f"no case {case_id}", kind="Case")
    reader.check_case(case)
    # Recusal follows the petitioner, this case among theirs: one accused by any of their petitions
    # may not read it through another (the id is no secret to whoever registers a case for them).
    petitions = cases_of_petitioner(views, case.petitioner_id, today)
    if caller.cadre_id is None or any(reader.accused_in(petition) for petition in [case, *petitions]):
        raise ApiProblem(
            FORBIDDEN, "the petitioner's identity is withheld from those any of their petitions accuses"
        )
    ctx = CommandContext(actor_id=caller.cadre_id, narrative=reason)
    found = read_identity(ledger, _store(request), ctx, case_id, case.petitioner_id)
    if isinstance(found, Identity):
        return PetitionerIdentity(
            petitioner_id=case.petitioner_id, status=IdentityStatus.ON_FILE, identity=found
        )
    return PetitionerIdentity(petitioner_id=case.petitioner_id, status=found)


@router.post(
    "/petitioners/{petitioner_id}/erase",
    response_model=PetitionerIdentity,
    summary="Erase a petitioner's identity (administrators).",
    responses=ERRORS,
)
def erase(
    request: Request,
    petitioner_id: UUID,
    body: Erasure,
    admin: Annotated[Principal, Depends(administrator)],
    key: IdempotencyKey = None,
) -> PetitionerIdentity:
    """Record `IdentityErased`, then delete the personal data; cases keep the pseudonymous id."""
    assert admin.cadre_id is not None
    ctx = CommandContext(actor_id=admin.cadre_id, narrative=body.narrative, command_id=key)
    erase_identity(request.app.state.ledger, _store(request), ctx, petitioner_id)
    return PetitionerIdentity(petitioner_id=petitioner_id, status=IdentityStatus.ERASED)
