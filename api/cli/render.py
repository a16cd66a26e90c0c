"""Human-readable text for cases and events, in Beijing time, with names instead of ids."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import typer
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Notification

from domain.case import Case, CaseStatus
from domain.events import LedgerEvent
from domain.ledger import Ledger
from domain.registry import Cadre, Unit

LOCAL = ZoneInfo("Asia/Shanghai")
COMMON = set(LedgerEvent.model_fields) | {"originator_topic"}
REGISTERED = Case.Registered.TOPIC


def local(moment: datetime) -> str:
    return moment.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M")


class Names:
    """Resolves unit and cadre ids to names, remembering what it looked up."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.known: dict[UUID, str] = {}

    def __call__(self, value: UUID | None) -> str:
        if value is None:
            return "—"
        if value not in self.known:
            try:
                found = self.ledger.cache.get(value)
            except AggregateNotFoundError:
                found = None
            self.known[value] = found.name if isinstance(found, Unit | Cadre) else str(value)[:8]
        return self.known[value]

    def cadre(self, cadre_id: UUID, unit_id: UUID) -> str:
        return f"{self(cadre_id)} ({self(unit_id)})"


def case_ids(ledger: Ledger) -> Iterator[UUID]:
    """Every registered case, in registration order (a scan of the log until issue 3's views exist)."""
    start = 0
    while True:
        page = ledger.recorder.select_notifications(
            start=start, limit=500, topics=[REGISTERED], inclusive_of_start=False
        )
        for notification in page:
            yield UUID(str(notification.originator_id))
        if len(page) < 500:
            return
        start = page[-1].id


def find_case(ledger: Ledger, text: str) -> UUID:
    """A case by full id or by a unique prefix of at least 6 characters."""
    text = text.strip().lower()
    try:
        return UUID(text)
    except ValueError:
        pass
    if len(text) < 6:
        raise typer.BadParameter("give a case id or at least its first 6 characters")
    matches = [case_id for case_id in case_ids(ledger) if str(case_id).startswith(text)]
    if len(matches) != 1:
        raise typer.BadParameter(f"{len(matches)} cases start with {text!r}")
    return matches[0]


def summary_line(case: Case, names: Names, today: date) -> str:
    flags = []
    if case.reply_due and case.status is CaseStatus.ACCEPTED and case.reply_due < today:
        flags.append("OVERDUE")
    if case.is_final:
        flags.append("final")
    if case.ended:
        flags.append("ended")
    if case.reopen_count:
        flags.append(f"reopened×{case.reopen_count}")
    if case.leapfrog_count:
        flags.append(f"leapfrog×{case.leapfrog_count}")
    due = case.reply_due.isoformat() if case.reply_due else "—"
    return (
        f"{str(case.id)[:8]}  {local(case.registered_at)[:10]}  {case.status.value:<10} "
        f"{names(case.unit_id):<12} {case.intake.category:<24} reply due {due:<10}  {' '.join(flags)}"
    )


def print_case_summaries(ledger: Ledger, limit: int | None = None, status: CaseStatus | None = None) -> None:
    names = Names(ledger)
    today = ledger.clock.now().astimezone(LOCAL).date()
    counts: dict[str, int] = {}
    shown = 0
    for case_id in case_ids(ledger):
        case = ledger.cache.get(case_id)
        assert isinstance(case, Case)
        counts[case.status.value] = counts.get(case.status.value, 0) + 1
        if status is not None and case.status is not status:
            continue
        if limit is None or shown < limit:
            typer.echo(summary_line(case, names, today))
            shown += 1
    totals = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    typer.echo(f"{sum(counts.values())} cases: {totals}")


def print_case(ledger: Ledger, case_id: UUID) -> None:
    try:
        case = ledger.cache.get(case_id)
    except AggregateNotFoundError:
        raise typer.BadParameter(f"no case {case_id}") from None
    if not isinstance(case, Case):
        raise typer.BadParameter(f"{case_id} is not a case")
    names = Names(ledger)
    intake = case.intake
    echo = typer.echo
    echo(f"Case {case.id}")
    echo(
        f"  status        {case.status.value}"
        + (f" ({case.closure.value})" if case.closure else "")
        + (" · petition ended" if case.ended else "")
        + (" · final" if case.is_final else "")
    )
    echo(
        f"  received      {local(case.registered_at)} by {names(case.first_receiver_id)} "
        f"via {intake.channel.value}" + (f" ({intake.reception.value} reception)" if intake.reception else "")
    )
    echo(f"  matter        {intake.category}; {_campaign(case)}; petitioners: {intake.headcount}")
    echo(
        f"  held by       {names(case.unit_id)}; responsible {names(case.responsible_cadre_id)}; "
        f"handler {names(case.handler_id)}; owning leader {names(case.owning_leader_id)}"
    )
    echo(
        f"  deadlines     acceptance notice {case.acceptance_notice_due}; reply {case.reply_due or '—'}"
        + (" (extended)" if case.extended else "")
        + f"; rules {case.rules or '—'}"
    )
    echo(
        f"  review        {case.review_stage.value}; reopened {case.reopen_count}×; "
        f"supervision orders {len(case.supervision)}; leapfrog {case.leapfrog_count}×"
    )
    events = list(ledger.events.get(case_id))
    echo(f"History ({len(events)} events, Beijing time)")
    for event in events:
        assert isinstance(event, LedgerEvent)
        late = (
            " (recorded " + local(event.timestamp) + ")"
            if local(event.timestamp) != local(event.occurred_at)
            else ""
        )
        echo(
            f"  v{event.originator_version:<3} {local(event.occurred_at)}  {type(event).__name__:<22} "
            f"{names.cadre(event.actor_id, event.actor_unit_id)}{late}"
        )
        echo(f"       {event.narrative}")
        details = _details(event, names)
        if details:
            echo(f"       {details}")
        for item in event.evidence:
            echo(f"       evidence: {item.name} ({item.media_type}) sha256:{item.sha256[:16]}…")


def print_notifications(ledger: Ledger, notifications: Iterable[Notification]) -> None:
    names = Names(ledger)
    for notification in notifications:
        event = ledger.mapper.to_domain_event(notification)
        assert isinstance(event, LedgerEvent)
        topic = notification.topic.removeprefix("dutyledger:")
        typer.echo(
            f"{notification.id:>8}  {local(event.timestamp)}  {topic:<32} {str(event.originator_id)[:8]} "
            f"v{event.originator_version:<3} {names(event.actor_id):<8} {event.narrative[:40]}"
        )


def _campaign(case: Case) -> str:
    campaign = case.intake.campaign
    flags = [f"key area {campaign.key_area.value}"] if campaign.key_area else []
    flags += [name for name in ("key_group", "key_issue", "key_person") if getattr(campaign, name)]
    source = case.intake.source
    if source.assigned_by:
        flags.append(
            f"assigned by {source.assigned_by.value} bureau {source.reference or ''} due {source.due}"
        )
    return ", ".join(flags) or "no campaign flags"


def _details(event: LedgerEvent, names: Names) -> str:
    parts = []
    for field, value in event:
        if field in COMMON or value in (None, (), []):
            continue
        parts.append(f"{field}={_show(value, names)}")
    return " ".join(parts)


def _show(value: Any, names: Names) -> str:
    if isinstance(value, UUID):
        return names(value)
    if isinstance(value, tuple | list | frozenset):
        return "[" + ", ".join(_show(v, names) for v in value) + "]"
    if hasattr(value, "value"):
        return str(value.value)
    if hasattr(value, "model_dump"):
        return ",".join(f"{k}:{v}" for k, v in value.model_dump(mode="json", exclude_defaults=True).items())
    return str(value)
