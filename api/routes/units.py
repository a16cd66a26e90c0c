"""Unit queries: every metric per month over a unit's subtree, with the same months a year before."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request

from api.problems import VALIDATION_FAILED, ApiProblem
from api.routes.common import READ_ERRORS, Reader, Views, read_route
from domain.ledger import Ledger
from domain.registry import Unit
from projections.statistics import UnitStats, unit_stats

router = APIRouter(prefix="/units", tags=["unit queries"], responses=READ_ERRORS)

Month = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="A month, as 2026-03.")]


@router.get(
    "/{unit_id}/statistics", response_model=UnitStats, summary="Get a unit's metrics, rolled up its subtree."
)
@read_route
def statistics(
    request: Request, unit_id: UUID, views: Views, reader: Reader, first_month: Month, last_month: Month
) -> UnitStats:
    """Counts and rates per month for the unit and every unit below it, and the same months a year before."""
    ledger: Ledger = request.app.state.ledger
    reader.check_unit(ledger.peek(Unit, unit_id).path)
    if last_month < first_month:
        raise ApiProblem(VALIDATION_FAILED, "last_month is before first_month")
    return unit_stats(views, unit_id, first_month, last_month, ledger.clock.now())
