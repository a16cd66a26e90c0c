"""`unit_stats`: counts per unit and month that every reported metric is a ratio of.

Each count is raised by one event and attributed to one unit and one local month (of
business time); `projections.statistics` sums them over a unit's whole subtree and any run
of months, and divides. A ratio's numerator is counted where and when its denominator was,
once per case: a case accepted in March and closed in May counts as closed in March, for
the unit that accepted it; closed again after a reopening, it is not counted again. So a
rate is the share of a month's cohort that got there (as the log stands), and never
exceeds 100% for any unit or run of months. A case's counts follow its history in business
order, corrections folded in (`projections.history`): a correction, or an event dated
before what was applied, derives the case again and adds the difference. What each count means:

| count | raised by | attributed to (unit, month) |
|---|---|---|
| registered, repeats | Case.Registered (repeats: naming an earlier case) | registering unit, then |
| notices, notices_on_time | Case.Accepted / Case.Declined (the notice) | unit holding the case, then |
| accepted | Case.Accepted | unit holding the case, then |
| replies, replies_on_time | Case.ReplyIssued | unit holding the case, then |
| rated, satisfied | Case.SatisfactionRated (or basically satisfied), once a reply | the reply's |
| closed | Case.Closed of an accepted case, once | the acceptance's |
| ended | Case.PetitionEnded (息访: resolved) | the registration's |
| owned, owned_resolved | first OwningLeaderAppointed; PetitionEnded if owned | the appointment's |
| leapfrogs | Case.LeapfrogRecorded | the unit it is attributed to, then |
| meetings, meetings_principal | Meeting.Convened (chaired by the head) | the meeting's unit, then |
| studied, studied_closed | Meeting.CaseStudied; Case.Closed of a studied case, once | the study's |
| disputes, disputes_resolved | Dispute.Recorded, Dispute.Resolved (locally) | the recording's |

The two deadline rates divide by what fell due, not by what was done: a unit that never
sends a notice must not score 100%. So `unit_deadlines` keeps each acceptance-notice and
reply deadline (one row each, by the local month its due date falls in, for the unit that
holds the case): open, met, missed, or superseded (the case forwarded before its notice; a
reply deadline extended, which opens the extended one). `projections.statistics` counts,
per month, the deadlines met or missed, and the open ones whose due date has passed by the
ledger's clock (missed, though no event says so): `notices_due` / `notices_met`,
`replies_due` / `replies_met`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from domain.aggregate import CorrectedEvent
from domain.case import Case
from domain.catalogue import event_classes
from domain.dispute import Dispute
from domain.meeting import Meeting
from domain.registry import Unit
from domain.values import Satisfaction
from projections.columns import ZONE, due_end, moment_text
from projections.history import business_history, out_of_order
from projections.memory import AggregateMemory
from projections.view import Envelope, Table, View, Writer

UNIT_COUNTS = Table(
    "unit_counts",
    "unit_id TEXT NOT NULL, month TEXT NOT NULL, metric TEXT NOT NULL, value BIGINT NOT NULL",
    key=("unit_id", "month", "metric"),
    indexes=(("month",),),
    counter="value",
)
UNIT_DEADLINES = Table(
    "unit_deadlines",
    "case_id TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, unit_id TEXT NOT NULL, "
    "due_month TEXT NOT NULL, due_end TEXT NOT NULL, state TEXT NOT NULL",
    key=("case_id", "kind", "seq"),
    indexes=(("due_month", "unit_id"),),
)
"""Acceptance-notice and reply deadlines; `state` is open, met, missed or superseded."""
DEADLINE_COLUMNS = ("case_id", "kind", "seq", "unit_id", "due_month", "due_end", "state")
NOTICE, REPLY = "acceptance_notice", "reply"

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


Cohort = tuple[str, str]
"""(unit id, month): where and when a ratio's denominator was counted."""


@dataclass
class CaseUnits:
    """What the view remembers of a case: the unit holding it, and what makes later counts apply."""

    version: int = 0
    unit_id: str = ""
    registered: Cohort = ("", "")
    accepted: Cohort | None = None
    reply: Cohort | None = None
    """The latest reply's; `reply_rated` once it has been rated."""
    reply_rated: bool = False
    owned: Cohort | None = None
    closed: bool = False
    meeting_units: dict[str, str] = field(default_factory=dict)
    """The month the case was first studied at a meeting of each unit; emptied once counted closed."""
    last_occurred: str = ""
    """The latest business time applied: an event dated before it makes the view derive the case again."""
    deadlines: dict[str, list[Any]] = field(default_factory=dict)
    """The open deadline of each kind, as its `unit_deadlines` row."""
    seq: dict[str, int] = field(default_factory=dict)


class UnitStatsView(View):
    """Monthly counts per unit, for the metrics the source reports."""

    name = "unit_stats"
    schema_version = 4
    tables = (UNIT_COUNTS, UNIT_PATHS, UNIT_DEADLINES)
    topics = frozenset(
        event.TOPIC for aggregate in (Case, Meeting, Dispute, Unit) for event in event_classes(aggregate)
    )

    def __init__(self, ledger: Any) -> None:
        super().__init__(ledger)
        self.cases: AggregateMemory[CaseUnits] = AggregateMemory(self._replayed)

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        counts: Counter[tuple[str, str, str]] = Counter()
        paths: list[tuple[str, str, str]] = []
        deadlines: dict[tuple[str, str, int], list[Any]] = {}
        for envelope in batch:
            event = envelope.event
            month = local_month(envelope.occurred_text)

            def count(metric: str, unit: UUID | str, *, month: str = month) -> None:
                counts[(str(unit), month, metric)] += 1

            if isinstance(event, Case.Event):
                memory = self.cases.before(envelope) or CaseUnits()
                if self._out_of_order(memory, envelope):
                    memory = self._redo(
                        writer, counts, deadlines, event.originator_id, event.originator_version
                    )
                else:
                    self._case_event(memory, envelope, count, deadlines)
                    memory.last_occurred = envelope.occurred_text
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
                dispute = self.ledger.cache.get(event.originator_id)
                assert isinstance(dispute, Dispute)
                assert dispute.recorded_at is not None
                recorded = local_month(moment_text(dispute.recorded_at))
                count("disputes_resolved", str(dispute.unit_id), month=recorded)
        writer.upsert(UNIT_PATHS, ("unit_id", "path", "level"), paths)
        writer.increment(UNIT_COUNTS, {key: n for key, n in counts.items() if n})
        lowered = [key for key, n in counts.items() if n < 0]  # a redo took counts back: drop what fell to 0
        writer.executemany(
            f"DELETE FROM {writer.table(UNIT_COUNTS)} "
            "WHERE unit_id = ? AND month = ? AND metric = ? AND value = 0",
            lowered,
        )
        writer.upsert(UNIT_DEADLINES, DEADLINE_COLUMNS, list(deadlines.values()))

    def forget(self) -> None:
        self.cases.forget()

    def _case_event(
        self,
        memory: CaseUnits,
        envelope: Envelope,
        count: Any,
        deadlines: dict[tuple[str, str, int], list[Any]],
    ) -> None:
        event = envelope.event
        due = _Deadlines(memory, envelope.aggregate[0], deadlines)
        now: Cohort = (memory.unit_id, local_month(envelope.occurred_text))

        def cohort(metric: str, where: Cohort) -> None:
            count(metric, where[0], month=where[1])

        match event:
            case Case.Registered():
                memory.unit_id = str(event.unit_id)
                memory.registered = (memory.unit_id, now[1])
                cohort("registered", memory.registered)
                if event.repeat_of is not None:
                    cohort("repeats", memory.registered)
                due.open(NOTICE, event.acceptance_notice_due)
            case Case.Forwarded() | Case.Assigned():
                memory.unit_id = str(event.to_unit_id)
                due.close(NOTICE, "superseded")  # the obligation moved to the receiving unit
                due.open(NOTICE, event.acceptance_notice_due)
            case Case.ResponsibilityAssigned():
                memory.unit_id = str(event.unit_id)
                due.hand_over(REPLY)
            case Case.Accepted() | Case.Declined():
                cohort("notices", now)
                if event.notice_on_time:
                    cohort("notices_on_time", now)
                due.close(NOTICE, "met" if event.notice_on_time else "missed")
                if isinstance(event, Case.Accepted):
                    memory.accepted = now
                    cohort("accepted", now)
                    due.open(REPLY, event.reply_due)
            case Case.DeadlineExtended():
                due.close(REPLY, "superseded")  # the extended deadline replaces it
                due.open(REPLY, event.reply_due)
            case Case.ReviewDecided() | Case.Reopened() if event.reply_due is not None:
                due.open(REPLY, event.reply_due)
            case Case.ReplyIssued():
                memory.reply, memory.reply_rated = now, False
                cohort("replies", now)
                if event.on_time:
                    cohort("replies_on_time", now)
                due.close(REPLY, "met" if event.on_time else "missed")
            case Case.SatisfactionRated() if memory.reply is not None and not memory.reply_rated:
                memory.reply_rated = True
                cohort("rated", memory.reply)
                if event.rating is not Satisfaction.UNSATISFIED:
                    cohort("satisfied", memory.reply)
            case Case.Closed():
                if memory.accepted is not None and not memory.closed:
                    memory.closed = True
                    cohort("closed", memory.accepted)
                for unit, month in sorted(memory.meeting_units.items()):
                    count("studied_closed", unit, month=month)
                memory.meeting_units.clear()
            case Case.PetitionEnded():
                cohort("ended", memory.registered)
                if memory.owned is not None:
                    cohort("owned_resolved", memory.owned)
            case Case.OwningLeaderAppointed() if memory.owned is None:
                memory.owned = now
                cohort("owned", now)
            case Case.StudiedAtMeeting():
                memory.meeting_units.setdefault(self._unit_of(event.meeting_id), now[1])
            case Case.LeapfrogRecorded():
                count("leapfrogs", event.attributed_unit_id)

    def _unit_of(self, aggregate_id: UUID) -> str:
        """The unit a meeting or dispute belongs to (it never changes), from the ledger's cache."""
        found = self.ledger.cache.get(aggregate_id)
        assert isinstance(found, Meeting | Dispute)
        return str(found.unit_id)

    @staticmethod
    def _out_of_order(memory: CaseUnits, envelope: Envelope) -> bool:
        return out_of_order(envelope, memory.last_occurred)

    def _redo(
        self,
        writer: Writer,
        counts: Counter[tuple[str, str, str]],
        deadlines: dict[tuple[str, str, int], list[Any]],
        case_id: UUID,
        version: int,
    ) -> CaseUnits:
        """A correction, or an event dated before what was applied: derive the case again from its
        history in business order. Its counts change by the difference from its history before the
        event; its deadline rows are written again."""
        _, before, _ = self._derived(case_id, version - 1)
        memory, after, rows = self._derived(case_id, version)
        counts.update(after)
        counts.subtract(before)
        key = str(case_id)
        for pending in [pending for pending in deadlines if pending[0] == key]:
            del deadlines[pending]
        writer.execute(f"DELETE FROM {writer.table(UNIT_DEADLINES)} WHERE case_id = ?", (key,))
        deadlines.update(rows)
        return memory

    def _derived(
        self, case_id: UUID, version: int
    ) -> tuple[CaseUnits, Counter[tuple[str, str, str]], dict[tuple[str, str, int], list[Any]]]:
        """The case's memory, counts and deadline rows from its history to `version`, in business order."""
        memory, counted = CaseUnits(), Counter[tuple[str, str, str]]()
        rows: dict[tuple[str, str, int], list[Any]] = {}
        for envelope in business_history(self.ledger, case_id, version, positions=False):

            def count(
                metric: str, unit: UUID | str, *, month: str = local_month(envelope.occurred_text)
            ) -> None:
                counted[(str(unit), month, metric)] += 1

            self._case_event(memory, envelope, count, rows)
            if not isinstance(envelope.event, CorrectedEvent):
                memory.last_occurred = max(memory.last_occurred, envelope.occurred_text)
        memory.version = version
        return memory, counted, rows

    def _replayed(self, case_id: UUID, version: int) -> CaseUnits:
        return self._derived(case_id, version)[0]


@dataclass
class _Deadlines:
    """One case's deadline rows, as one event changes them (written to `rows` by key)."""

    memory: CaseUnits
    case_id: str
    rows: dict[tuple[str, str, int], list[Any]]

    def open(self, kind: str, due: date) -> None:
        seq = self.memory.seq.get(kind, 0) + 1
        self.memory.seq[kind] = seq
        row = [self.case_id, kind, seq, self.memory.unit_id, due.isoformat()[:7], due_end(due), "open"]
        self.memory.deadlines[kind] = row
        self.rows[(self.case_id, kind, seq)] = row

    def close(self, kind: str, state: str) -> None:
        row = self.memory.deadlines.pop(kind, None)
        if row is not None:
            self._write([*row[:6], state])

    def hand_over(self, kind: str) -> None:
        """The open deadline falls to the unit now holding the case."""
        row = self.memory.deadlines.get(kind)
        if row is not None:
            self.memory.deadlines[kind] = self._write([*row[:3], self.memory.unit_id, *row[4:]])

    def _write(self, row: list[Any]) -> list[Any]:
        self.rows[(row[0], row[1], row[2])] = row
        return row
