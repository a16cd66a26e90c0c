"""`unit_stats`: counts per unit and month that every reported metric is a ratio of.

Each count is raised by one event, attributed to one unit and to the local month of the
event's business time; `projections.statistics` sums them over a unit's whole subtree
and any run of months, and divides. What each count means:

| count | raised by | attributed to |
|---|---|---|
| registered, repeats | Case.Registered (repeats: naming an earlier case) | registering unit |
| notices, notices_on_time | Case.Accepted / Case.Declined (the notice) | unit holding the case |
| accepted | Case.Accepted | unit holding the case |
| replies, replies_on_time | Case.ReplyIssued | unit holding the case |
| rated, satisfied | Case.SatisfactionRated (or basically satisfied) | unit holding the case |
| closed, ended | Case.Closed, Case.PetitionEnded (息访: resolved) | unit holding the case |
| owned, owned_resolved | first OwningLeaderAppointed; PetitionEnded if owned | unit holding the case |
| leapfrogs | Case.LeapfrogRecorded | the unit it is attributed to |
| meetings, meetings_principal | Meeting.Convened (chaired by the head) | the meeting's unit |
| studied, studied_closed | Meeting.CaseStudied; Case.Closed of a studied case | the meeting's unit |
| disputes, disputes_resolved | Dispute.Recorded, Dispute.Resolved (locally) | the dispute's unit |
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.case import Case
from domain.catalogue import event_classes
from domain.dispute import Dispute
from domain.events import LedgerEvent
from domain.meeting import Meeting
from domain.registry import Unit
from domain.values import Satisfaction
from projections.memory import AggregateMemory
from projections.view import Envelope, Table, View, Writer

ZONE = ZoneInfo("Asia/Shanghai")

UNIT_COUNTS = Table(
    "unit_counts",
    "unit_id TEXT NOT NULL, month TEXT NOT NULL, metric TEXT NOT NULL, value BIGINT NOT NULL",
    key=("unit_id", "month", "metric"),
    indexes=(("month",),),
    counter="value",
)
UNIT_PATHS = Table(
    "unit_paths", "unit_id TEXT NOT NULL, path TEXT NOT NULL, level TEXT NOT NULL", key=("unit_id",)
)


def local_month(utc: str) -> str:
    """The Beijing month (`YYYY-MM`) of a moment given as UTC text."""
    return _month_of_hour(utc[:13])


@lru_cache(maxsize=1024)
def _month_of_hour(hour: str) -> str:
    """The local month of a UTC hour (`YYYY-MM-DDTHH`): the zone's offsets are whole hours since 1901."""
    return datetime.fromisoformat(f"{hour}:00+00:00").astimezone(ZONE).strftime("%Y-%m")


@dataclass
class CaseUnits:
    """What the view remembers of a case: the unit holding it, and what makes later counts apply."""

    version: int = 0
    unit_id: str = ""
    owned: bool = False
    meeting_units: set[str] = field(default_factory=set)


class UnitStatsView(View):
    """Monthly counts per unit, for the metrics the source reports."""

    name = "unit_stats"
    schema_version = 1
    tables = (UNIT_COUNTS, UNIT_PATHS)
    topics = frozenset(
        event.TOPIC for aggregate in (Case, Meeting, Dispute, Unit) for event in event_classes(aggregate)
    )

    def __init__(self, ledger: Any) -> None:
        super().__init__(ledger)
        self.cases: AggregateMemory[CaseUnits] = AggregateMemory(self._replayed)

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        counts: Counter[tuple[str, str, str]] = Counter()
        paths: list[tuple[str, str, str]] = []
        for envelope in batch:
            event = envelope.event
            month = local_month(envelope.occurred_text)

            def count(metric: str, unit: UUID | str, *, month: str = month) -> None:
                counts[(str(unit), month, metric)] += 1

            if isinstance(event, Case.Event):
                memory = self.cases.before(envelope) or CaseUnits()
                self._case_event(memory, event, count)
                memory.version = event.originator_version
                self.cases.keep(envelope, memory)
            elif isinstance(event, Unit.Registered):
                path = "/" + "/".join(str(u) for u in (*event.ancestors, event.originator_id)) + "/"
                paths.append((str(event.originator_id), path, event.level.value))
            elif isinstance(event, Meeting.Convened):
                count("meetings", event.unit_id)
                if event.chaired_by_principal:
                    count("meetings_principal", event.unit_id)
            elif isinstance(event, Meeting.CaseStudied):
                count("studied", self._unit_of(event.originator_id))
            elif isinstance(event, Dispute.Recorded):
                count("disputes", event.unit_id)
            elif isinstance(event, Dispute.Resolved):
                count("disputes_resolved", self._unit_of(event.originator_id))
        writer.upsert(UNIT_PATHS, ("unit_id", "path", "level"), paths)
        writer.increment(UNIT_COUNTS, counts)

    def forget(self) -> None:
        self.cases.forget()

    def _case_event(self, memory: CaseUnits, event: LedgerEvent, count: Any) -> None:
        match event:
            case Case.Registered():
                memory.unit_id = str(event.unit_id)
                count("registered", event.unit_id)
                if event.repeat_of is not None:
                    count("repeats", event.unit_id)
            case Case.Forwarded() | Case.Assigned():
                memory.unit_id = str(event.to_unit_id)
            case Case.ResponsibilityAssigned():
                memory.unit_id = str(event.unit_id)
            case Case.Accepted() | Case.Declined():
                count("notices", memory.unit_id)
                if event.notice_on_time:
                    count("notices_on_time", memory.unit_id)
                if isinstance(event, Case.Accepted):
                    count("accepted", memory.unit_id)
            case Case.ReplyIssued():
                count("replies", memory.unit_id)
                if event.on_time:
                    count("replies_on_time", memory.unit_id)
            case Case.SatisfactionRated():
                count("rated", memory.unit_id)
                if event.rating is not Satisfaction.UNSATISFIED:
                    count("satisfied", memory.unit_id)
            case Case.Closed():
                count("closed", memory.unit_id)
                for unit in sorted(memory.meeting_units):
                    count("studied_closed", unit)
            case Case.PetitionEnded():
                count("ended", memory.unit_id)
                if memory.owned:
                    count("owned_resolved", memory.unit_id)
            case Case.OwningLeaderAppointed() if not memory.owned:
                memory.owned = True
                count("owned", memory.unit_id)
            case Case.StudiedAtMeeting():
                memory.meeting_units.add(self._unit_of(event.meeting_id))
            case Case.LeapfrogRecorded():
                count("leapfrogs", event.attributed_unit_id)

    def _unit_of(self, aggregate_id: UUID) -> str:
        """The unit a meeting or dispute belongs to (it never changes), from the ledger's cache."""
        found = self.ledger.cache.get(aggregate_id)
        assert isinstance(found, Meeting | Dispute)
        return str(found.unit_id)

    def _replayed(self, case_id: UUID, version: int) -> CaseUnits:
        memory = CaseUnits()
        for event in self.ledger.events.get(case_id, lte=version):
            assert isinstance(event, LedgerEvent)
            self._case_event(memory, event, lambda *_args, **_kwargs: None)
            memory.version = event.originator_version
        return memory
