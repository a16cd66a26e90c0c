"""What the event feed withholds from a reader whom petitions accuse (信访工作条例 Art. 28).

The casework views withhold an accusation from those it accuses (`api.routes.cases`). The
feed, read with an administrator's key (or by an administrator's webhook), would otherwise
hand it to an accused administrator. For such a reader it leaves out, as a filter would:

- the `Case.Registered` event of every case that accuses them, or that repeats one (its
  narrative and evidence are the accusation and its materials; it names the petitioner,
  and `repeat_of` links the two cases);
- the `Dispute.Escalated` event of a dispute that became such a case (the same account);
- every event of those cases' petitioners (`Petitioner.*`: the filing of the identity, and
  each read of it, for which case).

Accusations are read from `case_state` with its position in one snapshot, and such a reader
is shown nothing recorded past that position: an accusation the view has not applied yet
is never shown in the meantime. A page read before an accusation was recorded may hold
what is withheld afterwards, so such a reader's pages are never served as immutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from domain.case import Case
from domain.catalogue import event_classes
from domain.dispute import Dispute
from domain.petitioner import Petitioner
from projections.queries import cases_accusing
from projections.store import ViewConnection
from projections.tracking import live_track
from projections.views.case_state import CASE_STATE

PETITIONER_TOPICS = tuple(event.TOPIC for event in event_classes(Petitioner))


@dataclass(frozen=True)
class Recusal:
    """A reader petitions may accuse: their person, and every unit they serve or served in."""

    cadre_id: UUID
    served: frozenset[UUID]


@dataclass(frozen=True)
class Withheld:
    """What the reader is not shown: nothing past `position`, and none of `events` before it."""

    position: int
    events: frozenset[str]
    """Each as `<aggregate id> <topic>`."""


def withheld_from(connection: ViewConnection, recusal: Recusal) -> Withheld:
    """The events that would show this reader an accusation against them, as `case_state` knows them."""
    with connection.snapshot():
        track = live_track(connection, CASE_STATE.name)
        accusing = cases_accusing(connection, recusal.cadre_id, recusal.served)
    events = set()
    for case in accusing:
        events.add(f"{case.case_id} {Case.Registered.TOPIC}")
        if case.dispute_id is not None:
            events.add(f"{case.dispute_id} {Dispute.Escalated.TOPIC}")
        events.update(f"{case.petitioner_id} {topic}" for topic in PETITIONER_TOPICS)
    return Withheld(0 if track is None else track.position, frozenset(events))
