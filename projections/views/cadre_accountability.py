"""`cadre_accountability`: what each cadre held, did, missed and was found to have failed, over time.

Three tables, all in business time (`occurred_at`), so any window `[from, to)` can be
asked of them (`projections.accountability`):

- `cadre_roles`: who held each case as handler, responsible person or owning leader,
  from when until when (a role ends when replaced, or when the case is closed or
  declined; a reopening starts it again; a role still held ends at `STILL_HELD`);
- `case_deadlines`: every deadline a case was set (acceptance notice, reply, review
  answer, supervision report, meeting deadline), when it was met, and whether on time;
  an extension supersedes the open row (on_time NULL) and opens a new one, so what was
  due at any past moment is still on record;
- `cadre_facts`: one row per thing a cadre did or had attributed to them (received a
  petition, recorded an action or a late record, replied, had a reply fail, assigned,
  supervised, chaired, was found or sanctioned), each pointing at the event proving it.

A case's rows follow its history in business time, as known today: events in the order
they happened, each with its corrections folded in. Events mostly arrive in that order; one
recorded late but dated before another already applied (a leapfrog entered after the reply
it preceded), or a correction, makes the view derive the case's rows again from its whole
history, so the order events were recorded in never changes who is held to account.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from domain.aggregate import CorrectedEvent
from domain.case import Case
from domain.catalogue import event_classes
from domain.events import LedgerEvent
from domain.inquiry import Inquiry
from domain.meeting import Meeting
from domain.registry import Unit
from domain.storage.commands import CommandRecord
from domain.values import ReviewOutcome, Satisfaction, UnitKind
from projections.columns import as_json, due_end
from projections.history import business_history, out_of_order
from projections.memory import MEMORY, AggregateMemory
from projections.view import Envelope, Table, View, Writer

LATE_RECORD_FLOOR = timedelta(hours=24)
"""Every record made more than this after the fact is a `late_record` fact, tagged with the whole
hours it was late (rounded up). Which of them count as filed late is the reader's threshold, a
setting (`projections.accountability`), so changing it needs no rebuild."""

ROLES = ("handler", "responsible", "owning_leader")
STILL_HELD = "9999-12-31T23:59:59.999999Z"
"""`ended_at` of a role not yet ended: later than any moment, so a window query is one index range."""

CADRE_ROLES = Table(
    "cadre_roles",
    "case_id TEXT NOT NULL, role TEXT NOT NULL, seq INTEGER NOT NULL, cadre_id TEXT NOT NULL, "
    "started_at TEXT NOT NULL, ended_at TEXT NOT NULL, started_version BIGINT NOT NULL, ended_version BIGINT",
    key=("case_id", "role", "seq"),
    indexes=(("cadre_id", "ended_at", "started_at"),),
)
CASE_DEADLINES = Table(
    "case_deadlines",
    "case_id TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL, due TEXT NOT NULL, "
    "due_end TEXT NOT NULL, set_at TEXT NOT NULL, set_version BIGINT NOT NULL, resolved_at TEXT, "
    "resolved_version BIGINT, on_time INTEGER",
    key=("case_id", "kind", "seq"),
    indexes=(("due_end",),),
)
CADRE_FACTS = Table(
    "cadre_facts",
    "cadre_id TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL, recorded_at TEXT NOT NULL, "
    "aggregate_id TEXT NOT NULL, version BIGINT NOT NULL, position BIGINT NOT NULL, case_id TEXT, "
    "tag TEXT, detail TEXT NOT NULL",
    key=("aggregate_id", "version", "kind", "cadre_id"),
    indexes=(("cadre_id", "kind", "at"), ("cadre_id", "at"), ("case_id", "kind")),
)
CADRE_DAYS = Table(
    "cadre_days",
    "cadre_id TEXT NOT NULL, day TEXT NOT NULL, kind TEXT NOT NULL, tag TEXT NOT NULL, count BIGINT NOT NULL",
    key=("cadre_id", "day", "kind", "tag"),
    counter="count",
)
"""Facts counted per cadre, UTC day, kind and tag: a long window sums days instead of facts."""
TAGS = {
    "late_record": "hours",
    "reply_rated": "rating",
    "meeting_chaired": "principal",
    "finding": "obligation",
    "sanction": "sanction",
}
"""Which detail of a fact is copied to `tag`, so windows are counted by an index alone."""
ROLE_COLUMNS = (
    "case_id",
    "role",
    "seq",
    "cadre_id",
    "started_at",
    "ended_at",
    "started_version",
    "ended_version",
)
DEADLINE_COLUMNS = (
    "case_id",
    "kind",
    "seq",
    "due",
    "due_end",
    "set_at",
    "set_version",
    "resolved_at",
    "resolved_version",
    "on_time",
)
FACT_COLUMNS = (
    "cadre_id",
    "kind",
    "at",
    "recorded_at",
    "aggregate_id",
    "version",
    "position",
    "case_id",
    "tag",
    "detail",
)


@dataclass
class CaseMemory:
    """What the view must remember of a case to turn its next event into rows."""

    version: int = 0
    holders: dict[str, str] = field(default_factory=dict)
    """Current holder of each role (also kept while the case is closed, to reopen with)."""
    open_roles: dict[str, list[Any]] = field(default_factory=dict)
    role_seq: dict[str, int] = field(default_factory=dict)
    open_deadlines: dict[str, list[Any]] = field(default_factory=dict)
    deadline_seq: dict[str, int] = field(default_factory=dict)
    last_reply: tuple[str, int] | None = None
    """(cadre, version) of the latest reply."""
    acted_units: set[str] = field(default_factory=set)
    order_issuers: dict[int, str] = field(default_factory=dict)
    last_occurred: str = ""
    """The latest business time applied: an event dated before it arrived out of order."""
    ended: bool = False
    """Closed or declined (until reopened): no role starts, though a holder named is remembered."""


class Rows:
    """The rows a batch writes, keyed so the last write of a row wins."""

    def __init__(self) -> None:
        self.roles: dict[tuple[Any, ...], list[Any]] = {}
        self.deadlines: dict[tuple[Any, ...], list[Any]] = {}
        self.facts: dict[tuple[Any, ...], list[Any]] = {}

    def forget_case(self, case_id: str) -> None:
        """Drop the rows of a case's own events not written yet (an inquiry's facts about it stay)."""
        for kept in (self.roles, self.deadlines, self.facts):
            for key in [key for key in kept if key[0] == case_id]:
                del kept[key]


class CadreAccountabilityView(View):
    """Roles held, deadlines met and missed, and facts, for every cadre."""

    name = "cadre_accountability"
    schema_version = 8
    # 6: cadre_days counted by tag; 7: cases in business order, corrections applied;
    # 8: late records from LATE_RECORD_FLOOR on, tagged with their hours, one per command
    tables = (CADRE_ROLES, CASE_DEADLINES, CADRE_FACTS, CADRE_DAYS)
    topics = frozenset(
        event.TOPIC for aggregate in (Case, Meeting, Inquiry) for event in event_classes(aggregate)
    )

    def __init__(self, ledger: Any) -> None:
        super().__init__(ledger)
        self.cases: AggregateMemory[CaseMemory] = AggregateMemory(self._replayed)
        self.kinds: dict[UUID, UnitKind] = {}
        self.commands: dict[str, CommandRecord | None] = {}
        """Command records looked up for late events (a command's events come together)."""

    def apply(self, writer: Writer, batch: Sequence[Envelope]) -> None:
        rows = Rows()
        for envelope in batch:
            event = envelope.event
            detail: dict[str, Any]
            if isinstance(event, Case.Event):
                memory = self.cases.before(envelope) or CaseMemory()
                if self._out_of_order(memory, envelope):
                    memory = self._redo_case(writer, rows, event.originator_id, event.originator_version)
                else:
                    self._case_step(memory, envelope, rows)
                memory.version = event.originator_version
                self.cases.keep(envelope, memory)
                continue
            self._late_record(rows, envelope)
            if isinstance(event, Meeting.Convened):
                detail = {"principal": event.chaired_by_principal}
                self._fact(rows, envelope, "meeting_chaired", event.chair_id, None, detail)
            elif isinstance(event, Inquiry.FindingRecorded):
                proof = [ref.model_dump(mode="json") for ref in event.proof]
                detail = {
                    "obligation": event.obligation.value,
                    "proof": proof,
                    "finding_no": event.finding_no,
                }
                self._fact(rows, envelope, "finding", event.cadre_id, event.case_id, detail)
            elif isinstance(event, Inquiry.SanctionRecorded):
                detail = {"sanction": event.kind.value, "finding_no": event.finding_no}
                self._fact(rows, envelope, "sanction", event.cadre_id, None, detail)
        writer.upsert(CADRE_ROLES, ROLE_COLUMNS, list(rows.roles.values()))
        writer.upsert(CASE_DEADLINES, DEADLINE_COLUMNS, list(rows.deadlines.values()))
        writer.upsert(CADRE_FACTS, FACT_COLUMNS, list(rows.facts.values()))
        days = Counter((row[0], row[2][:10], row[1], row[8] or "") for row in rows.facts.values())
        writer.increment(CADRE_DAYS, days)

    def forget(self) -> None:
        self.cases.forget()

    # --- cases --------------------------------------------------------------------------------

    @staticmethod
    def _out_of_order(memory: CaseMemory, envelope: Envelope) -> bool:
        return out_of_order(envelope, memory.last_occurred)

    def _case_step(self, memory: CaseMemory, envelope: Envelope, rows: Rows) -> None:
        """Apply one case event, the next in business time, to the case's memory and rows."""
        self._late_record(rows, envelope)
        self._follow(memory, envelope, rows)

    def _follow(self, memory: CaseMemory, envelope: Envelope, rows: Rows) -> None:
        """The case's own rows and memory after the event (a late record is not the case's to remember)."""
        self._case_event(memory, envelope, rows)
        if not isinstance(envelope.event, CorrectedEvent):
            memory.last_occurred = max(memory.last_occurred, envelope.occurred_text)

    def _redo_case(self, writer: Writer, rows: Rows, case_id: UUID, version: int) -> CaseMemory:
        """Replace every row of the case's own events with rows derived from its history to `version`."""
        key = str(case_id)
        rows.forget_case(key)
        self._unwrite_case(writer, key)
        memory = CaseMemory()
        for envelope in business_history(self.ledger, case_id, version, positions=True):
            self._case_step(memory, envelope, rows)
        return memory

    def _unwrite_case(self, writer: Writer, case_id: str) -> None:
        """Delete the rows written for the case's own events, and take their facts out of the day counts."""
        facts = writer.table(CADRE_FACTS)
        counted = writer.execute(
            f"SELECT cadre_id, substr(at, 1, 10), kind, COALESCE(tag, ''), COUNT(*) FROM {facts} "
            "WHERE aggregate_id = ? GROUP BY 1, 2, 3, 4",
            (case_id,),
        )
        if counted:
            writer.increment(CADRE_DAYS, {tuple(row[:4]): -int(row[4]) for row in counted})
            writer.executemany(
                f"DELETE FROM {writer.table(CADRE_DAYS)} "
                "WHERE cadre_id = ? AND day = ? AND kind = ? AND tag = ? AND count = 0",
                [tuple(row[:4]) for row in counted],
            )
        writer.execute(f"DELETE FROM {facts} WHERE aggregate_id = ?", (case_id,))
        for table in (CADRE_ROLES, CASE_DEADLINES):
            writer.execute(f"DELETE FROM {writer.table(table)} WHERE case_id = ?", (case_id,))

    def _case_event(self, memory: CaseMemory, envelope: Envelope, rows: Rows) -> None:
        """Turn one case event into role, deadline and fact rows; keep what the next event needs."""
        event = envelope.event
        actor = envelope.fields["actor_id"]

        def fact(kind: str, cadre: UUID | str, detail: Any = None) -> None:
            self._fact(rows, envelope, kind, cadre, event.originator_id, detail or {})

        match event:
            case Case.Registered():
                fact("received", actor)
                self._open_deadline(memory, rows, envelope, "acceptance_notice", event.acceptance_notice_due)
            case Case.Forwarded() | Case.Assigned():
                self._resolve(memory, rows, envelope, "acceptance_notice", on_time=None)
                for role in ("handler", "responsible"):
                    self._end_role(memory, rows, envelope, role)
                    memory.holders.pop(role, None)
                if (
                    self._unit_kind(event.actor_unit_id) is not UnitKind.PETITION_BUREAU
                    and str(event.actor_unit_id) not in memory.acted_units
                ):
                    fact("passed_on", actor, {"to_unit_id": str(event.to_unit_id)})
                if isinstance(event, Case.Assigned):
                    fact("assigned", actor, {"to_unit_id": str(event.to_unit_id)})
                self._open_deadline(memory, rows, envelope, "acceptance_notice", event.acceptance_notice_due)
            case Case.Accepted():
                self._resolve(memory, rows, envelope, "acceptance_notice", on_time=event.notice_on_time)
                self._open_deadline(memory, rows, envelope, "reply", event.reply_due)
            case Case.Declined():
                self._resolve(memory, rows, envelope, "acceptance_notice", on_time=event.notice_on_time)
                self._discharge(memory, rows, envelope)
            case Case.HandlerAssigned():
                self._hand_over(memory, rows, envelope, "handler", event.handler_id)
            case Case.ResponsibilityAssigned():
                self._hand_over(memory, rows, envelope, "responsible", event.cadre_id)
            case Case.OwningLeaderAppointed():
                self._hand_over(memory, rows, envelope, "owning_leader", event.leader_id)
            case Case.StudiedAtMeeting():
                self._open_deadline(memory, rows, envelope, "meeting", event.due)
            case Case.ActionRecorded():
                memory.acted_units.add(str(event.actor_unit_id))
                fact("action", actor, {"kind": event.kind})
            case Case.DeadlineExtended():
                self._move_deadline(memory, rows, envelope, "reply", event.reply_due)
            case Case.HearingHeld() if event.review_answer_due is not None:
                self._move_deadline(memory, rows, envelope, "review_answer", event.review_answer_due)
            case Case.ReplyIssued():
                self._resolve(memory, rows, envelope, "reply", on_time=event.on_time)
                memory.last_reply = (actor, event.originator_version)
                fact("reply_issued", actor, {"outcome": event.outcome.value, "on_time": event.on_time})
            case Case.SatisfactionRated():
                self._reply_fact(memory, fact, "reply_rated", {"rating": event.rating.value})
                if event.rating is Satisfaction.UNSATISFIED:
                    self._reply_fact(memory, fact, "reply_failed", {"because": "unsatisfied"})
            case Case.ReviewRequested():
                self._open_deadline(memory, rows, envelope, "review_answer", event.answer_due)
            case Case.ReviewDecided():
                self._resolve(memory, rows, envelope, "review_answer", on_time=event.on_time)
                if event.outcome is not ReviewOutcome.UPHELD:
                    self._reply_fact(memory, fact, "reply_overturned", {"outcome": event.outcome.value})
                    self._reply_fact(
                        memory, fact, "reply_failed", {"because": f"review {event.outcome.value}"}
                    )
                if event.reply_due is not None:
                    self._reopen_roles(memory, rows, envelope)
                    self._open_deadline(memory, rows, envelope, "reply", event.reply_due)
            case Case.Closed():
                self._resolve(memory, rows, envelope, "meeting", on_time=None)
                self._discharge(memory, rows, envelope)
            case Case.Reopened():
                self._reply_fact(memory, fact, "reply_failed", {"because": "reopened"})
                self._reopen_roles(memory, rows, envelope)
                self._open_deadline(memory, rows, envelope, "reply", event.reply_due)
            case Case.LeapfrogRecorded():
                self._reply_fact(memory, fact, "reply_failed", {"because": "leapfrog"})
            case Case.SupervisionIssued():
                memory.order_issuers[event.order_no] = actor
                fact("supervision_issued", actor, {"order_no": event.order_no})
                if event.due is not None:
                    self._open_deadline(memory, rows, envelope, f"supervision_{event.order_no}", event.due)
            case Case.SupervisionAnswered():
                self._resolve(memory, rows, envelope, f"supervision_{event.order_no}", on_time=event.on_time)
                issuer = memory.order_issuers.get(event.order_no)
                if issuer:
                    fact(
                        "supervision_followed", issuer, {"order_no": event.order_no, "on_time": event.on_time}
                    )
            case CorrectedEvent():
                pass

    def _reply_fact(
        self, memory: CaseMemory, fact: Callable[[str, str, Any], None], kind: str, detail: dict[str, Any]
    ) -> None:
        """A fact about the latest reply, attributed to the cadre who issued it."""
        if memory.last_reply is not None:
            cadre, version = memory.last_reply
            fact(kind, cadre, detail | {"reply_version": version})

    # --- roles ----------------------------------------------------------------------------------

    def _hand_over(self, memory: CaseMemory, rows: Rows, envelope: Envelope, role: str, cadre: UUID) -> None:
        """A new holder of `role`; on an ended case (a closure dated earlier) only from its reopening."""
        self._end_role(memory, rows, envelope, role)
        memory.holders[role] = str(cadre)
        if not memory.ended:
            self._start_role(memory, rows, envelope, role)

    def _start_role(self, memory: CaseMemory, rows: Rows, envelope: Envelope, role: str) -> None:
        seq = memory.role_seq.get(role, 0) + 1
        memory.role_seq[role] = seq
        case_id, version = envelope.aggregate
        row = [case_id, role, seq, memory.holders[role], envelope.occurred_text, STILL_HELD, version, None]
        memory.open_roles[role] = row
        rows.roles[tuple(row[:3])] = row

    def _end_role(self, memory: CaseMemory, rows: Rows, envelope: Envelope, role: str) -> None:
        row = memory.open_roles.pop(role, None)
        if row is not None:
            row = [*row[:5], envelope.occurred_text, row[6], envelope.aggregate[1]]
            rows.roles[tuple(row[:3])] = row

    def _discharge(self, memory: CaseMemory, rows: Rows, envelope: Envelope) -> None:
        """The case is closed or declined: every role ends (holders are kept for a reopening)."""
        memory.ended = True
        for role in list(memory.open_roles):
            self._end_role(memory, rows, envelope, role)

    def _reopen_roles(self, memory: CaseMemory, rows: Rows, envelope: Envelope) -> None:
        memory.ended = False
        for role in ROLES:
            if role in memory.holders and role not in memory.open_roles:
                self._start_role(memory, rows, envelope, role)

    # --- deadlines ------------------------------------------------------------------------------

    def _open_deadline(
        self, memory: CaseMemory, rows: Rows, envelope: Envelope, kind: str, due: date
    ) -> None:
        seq = memory.deadline_seq.get(kind, 0) + 1
        memory.deadline_seq[kind] = seq
        case_id, version = envelope.aggregate
        row = [
            case_id,
            kind,
            seq,
            due.isoformat(),
            due_end(due),
            envelope.occurred_text,
            version,
            None,
            None,
            None,
        ]
        memory.open_deadlines[kind] = row
        rows.deadlines[tuple(row[:3])] = row

    def _move_deadline(
        self, memory: CaseMemory, rows: Rows, envelope: Envelope, kind: str, due: date
    ) -> None:
        """A new due date supersedes the open one from now on; the old row keeps what was due before."""
        if kind in memory.open_deadlines:
            self._resolve(memory, rows, envelope, kind, on_time=None, superseded=True)
            self._open_deadline(memory, rows, envelope, kind, due)

    def _resolve(
        self,
        memory: CaseMemory,
        rows: Rows,
        envelope: Envelope,
        kind: str,
        on_time: bool | None,
        superseded: bool = False,
    ) -> None:
        """Close the open deadline: met or missed (judged now if the event did not say), or superseded."""
        row = memory.open_deadlines.pop(kind, None)
        if row is None:
            return
        resolved_at = envelope.occurred_text
        if on_time is None and not superseded:
            on_time = resolved_at < row[4]  # row[4] is the instant the due date ends
        row = [*row[:7], resolved_at, envelope.aggregate[1], None if superseded else int(bool(on_time))]
        rows.deadlines[tuple(row[:3])] = row

    # --- facts ----------------------------------------------------------------------------------

    def _fact(
        self,
        rows: Rows,
        envelope: Envelope,
        kind: str,
        cadre: UUID | str,
        case_id: UUID | None,
        detail: dict[str, Any],
    ) -> None:
        aggregate_id, version = envelope.aggregate
        row = [
            str(cadre),
            kind,
            envelope.occurred_text,
            envelope.recorded_text,
            aggregate_id,
            version,
            envelope.position,
            str(case_id) if case_id else None,
            str(detail[TAGS[kind]]) if kind in TAGS else None,
            as_json(detail),
        ]
        rows.facts[(row[4], row[5], kind, row[0])] = row

    def _late_record(self, rows: Rows, envelope: Envelope) -> None:
        event = envelope.event
        lateness = event.timestamp - event.occurred_at
        if lateness > LATE_RECORD_FLOOR and self._first_of_its_command(event):
            case_id = event.originator_id if isinstance(event, Case.Event) else None
            whole_hours = -(-lateness // timedelta(hours=1))  # rounded up: late by more than N ⟺ > N
            hours = round(lateness.total_seconds() / 3600, 1)
            detail = {"hours": whole_hours, "hours_late": hours, "event": type(event).__name__}
            self._fact(rows, envelope, "late_record", event.actor_id, case_id, detail)

    def _first_of_its_command(self, event: LedgerEvent) -> bool:
        """Whether the event is the first its command wrote: a command filed late is one late record,
        however many events it wrote (events saved without a command record count each)."""
        if event.command_id not in self.commands:
            if len(self.commands) >= MEMORY:
                self.commands.clear()
            self.commands[event.command_id] = self.ledger.command_log.select_command(event.command_id)
        record = self.commands[event.command_id]
        return record is None or record.events[0] == (event.originator_id, event.originator_version)

    def _unit_kind(self, unit_id: UUID) -> UnitKind:
        if unit_id not in self.kinds:
            unit = self.ledger.cache.get(unit_id)
            assert isinstance(unit, Unit)
            self.kinds[unit_id] = unit.kind
        return self.kinds[unit_id]

    def _replayed(self, case_id: UUID, version: int) -> CaseMemory:
        """A case's memory rebuilt from its stored events up to `version` (the rows are discarded)."""
        memory = CaseMemory()
        for envelope in business_history(self.ledger, case_id, version, positions=False):
            self._follow(memory, envelope, Rows())  # no late records: no command lookups for rows discarded
        memory.version = version
        return memory
