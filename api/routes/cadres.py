"""Cadre queries: a cadre's accountability over a window of business time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request

from api.problems import VALIDATION_FAILED, ApiProblem
from api.routes.common import READ_ERRORS, Reader, Views, aware, read_route
from api.settings import Settings
from domain.ledger import Ledger
from domain.registry import Cadre, Unit
from projections.accountability import CadreAccountability, cadre_accountability

router = APIRouter(prefix="/cadres", tags=["cadre queries"], responses=READ_ERRORS)


@router.get(
    "/{cadre_id}/accountability",
    response_model=CadreAccountability,
    summary="Get a cadre's accountability over a window, with failure patterns and their proof.",
)
@read_route
def accountability(
    request: Request,
    cadre_id: UUID,
    views: Views,
    reader: Reader,
    start: Annotated[
        datetime, Query(alias="from", description="Window start (inclusive), with a zone offset.")
    ],
    end: Annotated[datetime, Query(alias="to", description="Window end (exclusive), with a zone offset.")],
) -> CadreAccountability:
    """Cases held by role, actions, deadlines met and missed, late records; each flag with its proof."""
    ledger: Ledger = request.app.state.ledger
    cadre = ledger.peek(Cadre, cadre_id)
    if cadre_id != reader.cadre_id:
        reader.check_unit(ledger.peek(Unit, cadre.posting.unit_id).path)
    start, end = aware(start), aware(end)
    if end < start:
        raise ApiProblem(VALIDATION_FAILED, "the window ends before it starts")
    settings: Settings = request.app.state.settings
    late_after = timedelta(hours=settings.late_record_hours)
    return cadre_accountability(views, cadre_id, start, end, late_after=late_after)
