"""A case's history in business order, corrections folded in: what views derive a case from again."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from domain.aggregate import CorrectedEvent, as_corrected
from domain.events import LedgerEvent
from projections.view import Envelope

if TYPE_CHECKING:
    from domain.ledger import Ledger


def business_history(ledger: Ledger, case_id: UUID, version: int, *, positions: bool) -> list[Envelope]:
    """The case's events to `version` in business order, corrections folded in (and kept, unapplied).

    Each keeps its own log position when `positions` is asked (facts cite it); else 0.
    """
    stored = [e for e in ledger.events.get(case_id, lte=version) if isinstance(e, LedgerEvent)]
    steps = [*as_corrected(stored), *(e for e in stored if isinstance(e, CorrectedEvent))]
    steps.sort(key=lambda e: (e.occurred_at, e.originator_version))
    at = dict.fromkeys((e.originator_version for e in steps), 0)
    if positions:
        versions = list(at)
        found = ledger.command_log.positions_of([(case_id, v) for v in versions])
        at = dict(zip(versions, found, strict=True))
    return [Envelope(at[e.originator_version], e.TOPIC, e) for e in steps]


def out_of_order(envelope: Envelope, last_occurred: str) -> bool:
    """Whether the event cannot simply follow what was applied: a correction, or dated earlier."""
    return isinstance(envelope.event, CorrectedEvent) or envelope.occurred_text < last_occurred
