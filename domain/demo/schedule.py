"""The demo's timeline: steps in business time, run in order through the Ledger's commands."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.clock import ManualClock
from domain.demo.world import Org
from domain.errors import LedgerError
from domain.ledger import CommandContext, Ledger
from domain.rules import WorkCalendar
from domain.rules.defaults import packaged_holidays

LOCAL = ZoneInfo("Asia/Shanghai")
START = date(2025, 1, 6)
END = datetime(2026, 10, 30, 17, 0, tzinfo=LOCAL)
"""Steps after this are left for the future: those cases are still in progress."""

Arguments = Mapping[str, Any] | Callable[[Ledger], Mapping[str, Any]]


@dataclass
class Step:
    """One command, recorded at `at` by the cadre `actor` (a key of the org)."""

    at: datetime
    actor: str
    command: str
    narrative: str
    arguments: Arguments = field(default_factory=dict)
    occurred_at: datetime | None = None
    """Earlier than `at` when the cadre recorded the step late."""
    order: int = 0


class DemoFailed(RuntimeError):
    """A demo step was refused: the demo script, not the ledger, is wrong."""


class Timeline:
    """Working-day arithmetic in local time, and the list of steps being built."""

    def __init__(self, seed: int) -> None:
        self.calendar = WorkCalendar(packaged_holidays())
        self.steps: list[Step] = []
        self.seed = seed

    def add(self, step: Step) -> Step:
        step.order = len(self.steps)
        self.steps.append(step)
        return step

    def moment(self, day: date, rng: random.Random, hour: int | None = None) -> datetime:
        """A working-hours moment on the first working day on or after `day`."""
        day = self.calendar.next_working_day(day)
        start = hour if hour is not None else rng.choice((9, 10, 11, 14, 15, 16))
        return datetime.combine(day, time(start, rng.randrange(0, 50)), LOCAL)

    def later(self, moment: datetime, days: float, rng: random.Random) -> datetime:
        """A working-hours moment `days` after `moment` (never before it)."""
        target = moment + timedelta(days=days)
        candidate = self.moment(target.date(), rng)
        while candidate <= moment:
            candidate += timedelta(minutes=rng.randrange(10, 40))
        return candidate

    def run(self, ledger: Ledger, clock: ManualClock, org: Org) -> int:
        """Apply every step up to END in time order; returns how many were applied."""
        due = sorted((s for s in self.steps if s.at <= END), key=lambda s: (s.at, s.order))
        for number, step in enumerate(due, start=1):
            clock.set(max(step.at.astimezone(UTC), clock.now()))
            ctx = CommandContext(
                actor_id=org.cadre_id(step.actor),
                narrative=step.narrative,
                command_id=f"demo-{self.seed}-{number:06d}",
                occurred_at=step.occurred_at.astimezone(UTC) if step.occurred_at else None,
            )
            arguments = step.arguments(ledger) if callable(step.arguments) else step.arguments
            try:
                getattr(ledger, step.command)(ctx, **arguments)
            except LedgerError as error:
                raise DemoFailed(
                    f"demo step {number} {step.command} by {step.actor} at {step.at}: "
                    f"{type(error).__name__}: {error} {arguments}"
                ) from error
        return len(due)
