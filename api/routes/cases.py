"""Case queries: one case (now or as of an instant), the list, the timeline, who was responsible when."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from api.commands import etag
from api.identity import IdentityStatus, IdentityStore
from api.problems import VALIDATION_FAILED, ApiProblem
from api.routes.common import READ_ERRORS, Reader, ReadScope, Views, aware
from domain.case import Case
from domain.errors import NotFound
from domain.ledger import Ledger
from projections.queries import (
    CaseFilter,
    CaseRow,
    Readable,
    Responsibility,
    TimelineRow,
    case_as_of,
    case_timeline,
    get_case,
    list_cases,
    responsibility_at,
)
from projections.store import ViewConnection

router = APIRouter(prefix="/cases", tags=["case queries"], responses=READ_ERRORS)


class CaseView(CaseRow):
    """A case as the views hold it; `petitioner_id` is withheld from a reader accused in the case."""

    petitioner_id: UUID | None  # type: ignore[assignment]
    petitioner_withheld: bool = False
    petitioner_identity: IdentityStatus | Literal["withheld"] = Field(
        description="Whether an identity is on file for the petitioner (read it at /cases/{id}/petitioner), "
        "was erased, or is withheld from this reader."
    )


class CasePage(BaseModel):
    """A page of cases; pass `next` as `after` for the following page (absent on the last)."""

    items: list[CaseView]
    next: str | None


class CaseSnapshot(BaseModel):
    """A case as a from-scratch replay of its events up to an instant gives it."""

    model_config = ConfigDict(from_attributes=True)
    case_id: UUID = Field(validation_alias=AliasChoices("case_id", "id"))
    version: int
    as_of: datetime
    axis: Literal["recorded", "occurred"]
    status: str
    unit_id: UUID | None
    responsible_cadre_id: UUID | None
    handler_id: UUID | None
    owning_leader_id: UUID | None
    first_receiver_id: UUID | None
    acceptance_notice_due: date | None
    accepted_at: datetime | None
    reply_due: date | None
    extended: bool
    replied_at: datetime | None
    reply_outcome: str | None
    rating: str | None
    review_stage: str
    closure: str | None
    closed_at: datetime | None
    ended: bool
    reopen_count: int
    action_count: int
    hearing_count: int
    leapfrog_count: int


def _today(request: Request) -> date:
    ledger: Ledger = request.app.state.ledger
    return ledger.clock.now().date()


def _visible(request: Request, views: ViewConnection, reader: ReadScope, case_id: UUID) -> CaseView:
    """The case if the reader may see it: 404 when there is none, 403 when it is outside the scope."""
    row = get_case(views, case_id, _today(request))
    if row is None:
        raise NotFound(f"no case {case_id}", kind="Case")
    reader.check_case(row)
    return _shown(request, views, [row], reader)[0]


def _shown(request: Request, views: ViewConnection, rows: list[CaseRow], reader: ReadScope) -> list[CaseView]:
    """The rows as this reader may see them: what identifies the petitioner withheld from the accused.

    That is the petitioner's id, and the link to an earlier petition of the same petitioner
    (`repeat_of`) in either direction: from a case accusing the reader, and to one.
    """
    identities: IdentityStore = request.app.state.identities
    statuses = identities.statuses(row.petitioner_id for row in rows)
    earlier = {row.repeat_of for row in rows if row.repeat_of is not None}
    accusing = {
        case_id
        for case_id in earlier
        if (found := get_case(views, case_id, _today(request))) is not None and reader.accused_in(found)
    }
    shown = []
    for row in rows:
        if reader.accused_in(row):
            hidden = {
                "petitioner_id": None,
                "petitioner_withheld": True,
                "petitioner_identity": "withheld",
                "repeat_of": None,
            }
            shown.append(CaseView.model_validate(row.model_dump() | hidden))
            continue
        seen: dict[str, object] = {"petitioner_identity": statuses[row.petitioner_id]}
        if row.repeat_of in accusing:
            seen["repeat_of"] = None
        shown.append(CaseView.model_validate(row.model_dump() | seen))
    return shown


@router.get("/{case_id}", response_model=CaseView, summary="Get a case's current state.")
def get_one(request: Request, response: Response, case_id: UUID, views: Views, reader: Reader) -> CaseView:
    """The case as the `case_state` view holds it, deadlines judged against today; `ETag` is its version."""
    case = _visible(request, views, reader, case_id)
    response.headers["ETag"] = etag(case.version)
    return case


@router.get("", response_model=CasePage, summary="List cases, filtered, a page at a time.")
def list_some(
    request: Request,
    views: Views,
    reader: Reader,
    filters: Annotated[CaseFilter, Query()],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[str | None, Query(description="The `next` cursor of the previous page.")] = None,
) -> CasePage:
    """Cases in registration order; only those this key may read (filters narrow further)."""
    for moment in (filters.registered_from, filters.registered_to):
        if moment is not None:
            aware(moment)
    readable = None if reader.everything else Readable(reader.unit_ids, reader.cadre_id)
    try:
        page = list_cases(views, filters, _today(request), limit=limit, after=after, readable=readable)
    except ValueError as error:
        raise ApiProblem(VALIDATION_FAILED, str(error)) from None
    return CasePage(items=_shown(request, views, page.items, reader), next=page.next)


@router.get("/{case_id}/timeline", response_model=list[TimelineRow], summary="Get every event of a case.")
def timeline(request: Request, case_id: UUID, views: Views, reader: Reader) -> list[TimelineRow]:
    """Every event of the case in order: who, from which unit, when it happened and was recorded, why.

    A reader the petition accuses sees neither the petitioner's id nor the petition's evidence.
    """
    case = _visible(request, views, reader, case_id)
    return [_as_shown(row, case) for row in case_timeline(views, case_id)]


def _as_shown(row: TimelineRow, case: CaseView) -> TimelineRow:
    """The row with no more of the petitioner than the case shows this reader.

    For a reader the petition accuses: no petitioner id, no link to an earlier petition, and
    no evidence attached at registration (the accusation's materials).
    """
    details = dict(row.details)
    if "repeat_of" in details:
        details["repeat_of"] = None if case.repeat_of is None else str(case.repeat_of)
    if not case.petitioner_withheld:
        return row.model_copy(update={"details": details})
    details.pop("petitioner_id", None)
    evidence = [] if row.type in ("Registered", "Escalated") else row.evidence
    return row.model_copy(update={"details": details, "evidence": evidence})


@router.get("/{case_id}/as-of", response_model=CaseSnapshot, summary="Get a case as it stood at an instant.")
def as_of(
    request: Request,
    case_id: UUID,
    views: Views,
    reader: Reader,
    at: Annotated[datetime, Query(description="The instant, with a zone offset.")],
    axis: Annotated[
        Literal["recorded", "occurred"],
        Query(description="`recorded`: what the ledger held then; `occurred`: what had happened by then."),
    ] = "recorded",
) -> CaseSnapshot:
    """The case replayed from its events up to `at`; 404 if it did not exist yet."""
    _visible(request, views, reader, case_id)
    instant = aware(at)
    case = case_as_of(request.app.state.ledger, case_id, instant, axis)
    if case is None:
        raise NotFound(f"case {case_id} did not exist at {instant.isoformat()}", kind="Case")
    return _snapshot(case, instant, axis)


def _snapshot(case: Case, instant: datetime, axis: str) -> CaseSnapshot:
    return CaseSnapshot.model_validate(
        {
            **{name: getattr(case, name) for name in CaseSnapshot.model_fields if hasattr(case, name)},
            "case_id": case.id,
            "as_of": instant,
            "axis": axis,
        }
    )


@router.get(
    "/{case_id}/responsibility", response_model=Responsibility, summary="Get who held a case at an instant."
)
def responsibility(
    request: Request,
    case_id: UUID,
    views: Views,
    reader: Reader,
    at: Annotated[datetime, Query(description="The instant of business time, with a zone offset.")],
) -> Responsibility:
    """The unit, responsible person, handler and owning leader of the case at `at` (business time)."""
    _visible(request, views, reader, case_id)
    instant = aware(at)
    found = responsibility_at(request.app.state.ledger, case_id, instant)
    if found is None:
        raise NotFound(f"case {case_id} was not registered by {instant.isoformat()}", kind="Case")
    return found
