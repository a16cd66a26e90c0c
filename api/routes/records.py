"""Meeting, dispute and inquiry queries: each record's current state, within the caller's scope."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from api.access import Caller
from api.keys import PrincipalKind
from api.problems import FORBIDDEN, OUT_OF_SCOPE, ApiProblem
from api.routes.common import READ_ERRORS, Reader
from domain.aggregate import LedgerAggregate
from domain.case import Case
from domain.dispute import Dispute
from domain.inquiry import Inquiry
from domain.ledger import Ledger
from domain.meeting import Meeting
from domain.registry import Cadre, Unit

router = APIRouter(responses=READ_ERRORS)
A = TypeVar("A", bound=LedgerAggregate)


class Record(BaseModel):
    """What every record view carries: its id and version (send the version back as If-Match)."""

    model_config = ConfigDict(from_attributes=True)
    id: UUID = Field(validation_alias=AliasChoices("id"))
    version: int


class MeetingView(Record):
    """A joint meeting (联席例会): where, who chaired and attended, which cases it studied."""

    unit_id: UUID | None
    level: str
    chair_id: UUID | None
    chaired_by_principal: bool
    attendee_ids: list[UUID]
    case_ids: list[UUID]
    concluded: bool
    convened_at: datetime | None


class DisputeView(Record):
    """A dispute found at the grassroots: open, resolved there, or escalated into a case."""

    status: str
    unit_id: UUID | None
    category: str
    recorded_at: datetime | None
    mediations: int
    case_id: UUID | None


class InquiryView(Record):
    """An inspector's inquiry: the cases and cadres it looks into, its findings and sanctions."""

    case_ids: list[UUID]
    cadre_ids: list[UUID]
    findings: int
    sanctions: int
    closed: bool
    opened_at: datetime | None


def _record(request: Request, cls: type[A], record_id: UUID) -> A:
    ledger: Ledger = request.app.state.ledger
    ledger.cache.refresh()
    return ledger.peek(cls, record_id)


def _unit_path(request: Request, unit_id: UUID | None) -> tuple[UUID, ...]:
    return () if unit_id is None else _record(request, Unit, unit_id).path


@router.get(
    "/meetings/{meeting_id}", response_model=MeetingView, tags=["meeting queries"], summary="Get a meeting."
)
def meeting(request: Request, meeting_id: UUID, reader: Reader) -> MeetingView:
    """The meeting as recorded so far; readable within the scope of the territory that convened it."""
    found = _record(request, Meeting, meeting_id)
    reader.check_unit(_unit_path(request, found.unit_id))
    return MeetingView.model_validate(
        {**vars(found), "id": found.id, "version": found.version, "attendee_ids": sorted(found.attendee_ids)}
    )


@router.get(
    "/disputes/{dispute_id}", response_model=DisputeView, tags=["dispute queries"], summary="Get a dispute."
)
def dispute(request: Request, dispute_id: UUID, reader: Reader) -> DisputeView:
    """The dispute as recorded so far; readable within the scope of the unit that recorded it."""
    found = _record(request, Dispute, dispute_id)
    reader.check_unit(_unit_path(request, found.unit_id))
    return DisputeView.model_validate({**vars(found), "id": found.id, "version": found.version})


@router.get(
    "/inquiries/{inquiry_id}", response_model=InquiryView, tags=["inquiry queries"], summary="Get an inquiry."
)
def inquiry(request: Request, inquiry_id: UUID, caller: Caller, reader: Reader) -> InquiryView:
    """The inquiry as recorded so far: administrators', and inspectors' whose units it looks into
    (an inspector sees only the cases and cadres within its units)."""
    if caller.kind not in (PrincipalKind.INSPECTOR, PrincipalKind.ADMINISTRATOR):
        raise ApiProblem(FORBIDDEN, "inquiries are read by inspectors and administrators")
    found = _record(request, Inquiry, inquiry_id)
    case_ids, cadre_ids = sorted(found.case_ids), sorted(found.cadre_ids)
    if caller.kind is PrincipalKind.INSPECTOR:  # it sees the part of the inquiry within its units

        def within(unit_id: UUID | None) -> bool:
            return reader.covers(_unit_path(request, unit_id))

        case_ids = [c for c in case_ids if within(_record(request, Case, c).unit_id)]
        cadre_ids = [c for c in cadre_ids if within(_record(request, Cadre, c).posting.unit_id)]
        if not case_ids and not cadre_ids:
            raise ApiProblem(OUT_OF_SCOPE, "the inquiry looks into nothing within this key's units")
    return InquiryView.model_validate(
        {
            "id": found.id,
            "version": found.version,
            "case_ids": case_ids,
            "cadre_ids": cadre_ids,
            "findings": len(found.findings),
            "sanctions": found.sanctions,
            "closed": found.closed,
            "opened_at": found.opened_at,
        }
    )
