"""Read models built from the ledger's notification log: views, their runner, queries."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from projections.view import View
from projections.views.cadre_accountability import CadreAccountabilityView
from projections.views.case_state import CaseStateView
from projections.views.case_timeline import CaseTimelineView
from projections.views.event_log import EventLogView
from projections.views.merkle_log import MerkleLogView
from projections.views.unit_stats import UnitStatsView

if TYPE_CHECKING:
    from domain.ledger import Ledger

VIEWS: dict[str, type[View]] = {
    view.name: view
    for view in (
        CaseStateView,
        CaseTimelineView,
        CadreAccountabilityView,
        UnitStatsView,
        EventLogView,
        MerkleLogView,
    )
}
"""Every view, by name, in the order they are built."""


def build_views(ledger: Ledger, names: Iterable[str] | None = None) -> list[View]:
    """Fresh instances of the named views (all by default); unknown names raise KeyError."""
    chosen = list(names) if names else list(VIEWS)
    unknown = [name for name in chosen if name not in VIEWS]
    if unknown:
        raise KeyError(f"no view named {', '.join(unknown)}; views: {', '.join(VIEWS)}")
    return [VIEWS[name](ledger) for name in chosen]
