"""The metrics people report, for a unit and its subtree, over months, beside the same months a year before.

Definitions (domain.md), as ratios of the counts `unit_stats` keeps:

| metric | ratio |
|---|---|
| timely acceptance rate 及时受理率 | notices_met / notices_due |
| on-time closure rate 按期办结率 | replies_met / replies_due |
| closure rate 办结率 (cases) | closed / accepted |
| closure rate 办结率 (meetings) | studied_closed / studied |
| resolution rate 化解率 | ended / registered |
| rating participation 参评率 | rated / replies |
| satisfaction 满意率 | satisfied / rated |
| repeat petition rate 重复访率 | repeats / registered |
| principal-leader share | meetings_principal / meetings |
| leader-owned resolution 领导包案化解率 | owned_resolved / owned |
| locally resolved share | disputes_resolved / disputes |
| leapfrog petitions 越级访 | leapfrogs, and the change against the same months a year before (同比) |

The two deadline rates count by the month a deadline falls due: every acceptance notice or
reply that was due (met, missed, or still open past its due date by the ledger's clock),
against those met in time (see `projections.views.unit_stats`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, computed_field

from projections.columns import moment_text
from projections.store import ViewConnection

RATIOS: dict[str, tuple[str, str]] = {
    "timely_acceptance": ("notices_met", "notices_due"),
    "on_time_closure": ("replies_met", "replies_due"),
    "case_closure": ("closed", "accepted"),
    "meeting_closure": ("studied_closed", "studied"),
    "resolution": ("ended", "registered"),
    "rating_participation": ("rated", "replies"),
    "satisfaction": ("satisfied", "rated"),
    "repeat_petitions": ("repeats", "registered"),
    "principal_leader_share": ("meetings_principal", "meetings"),
    "leader_owned_resolution": ("owned_resolved", "owned"),
    "locally_resolved": ("disputes_resolved", "disputes"),
}


class Rate(BaseModel):
    """A ratio with its parts; `percent` is shown to one decimal, as the source reports (99.7%)."""

    model_config = ConfigDict(frozen=True)
    numerator: int
    denominator: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def percent(self) -> str | None:
        """Rounded half up (四舍五入), from the exact ratio: 1/16 is 6.3%, where a float would give 6.2%."""
        if not self.denominator:
            return None
        exact = Decimal(self.numerator * 100) / Decimal(self.denominator)
        return f"{exact.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


class Period(BaseModel):
    """Counts and rates over a run of months."""

    model_config = ConfigDict(frozen=True)
    first_month: str
    last_month: str
    counts: dict[str, int]
    rates: dict[str, Rate]


class UnitStats(BaseModel):
    """A unit's metrics over its whole subtree: per month, for the period, and a year before."""

    model_config = ConfigDict(frozen=True)
    unit_id: UUID
    months: dict[str, dict[str, int]]
    period: Period
    last_year: Period
    leapfrog_change: float | None
    """(leapfrogs − leapfrogs a year before) / leapfrogs a year before; None without a base."""
    leapfrog_change_percent: str | None
    """The same change as reports show it, rounded half up: "-65.7%" is 下降65.7% (同比)."""


def unit_stats(
    connection: ViewConnection, unit_id: UUID, first_month: str, last_month: str, now: datetime
) -> UnitStats:
    """Metrics for `unit_id` and every unit below it, months `first_month`..`last_month` (YYYY-MM),
    as they stand at `now` (the ledger's clock: a deadline still open past it was missed)."""
    months = _monthly(connection, unit_id, first_month, last_month, now)
    period = _period(months, first_month, last_month)
    before = (_year_before(first_month), _year_before(last_month))
    last_year = _period(_monthly(connection, unit_id, *before, now), *before)
    leapfrogs = change(period.counts.get("leapfrogs", 0), last_year.counts.get("leapfrogs", 0))
    return UnitStats(
        unit_id=unit_id,
        months=months,
        period=period,
        last_year=last_year,
        leapfrog_change=leapfrogs.value,
        leapfrog_change_percent=leapfrogs.percent,
    )


def change(now: int, before: int) -> Rate:
    """A count's change against a base (同比): (now − before) / before, unknown without a base."""
    return Rate(numerator=now - before, denominator=before)


def rates(counts: dict[str, int]) -> dict[str, Rate]:
    return {
        name: Rate(numerator=counts.get(top, 0), denominator=counts.get(bottom, 0))
        for name, (top, bottom) in RATIOS.items()
    }


DEADLINE_COUNTS = {
    "acceptance_notice": ("notices_due", "notices_met"),
    "reply": ("replies_due", "replies_met"),
}


def _monthly(
    connection: ViewConnection, unit_id: UUID, first: str, last: str, now: datetime
) -> dict[str, dict[str, int]]:
    subtree = f"%/{unit_id}/%"
    rows = connection.execute(
        "SELECT c.month, c.metric, SUM(c.value) FROM unit_counts c "
        "JOIN unit_paths p ON p.unit_id = c.unit_id WHERE p.path LIKE ? AND c.month >= ? AND c.month <= ? "
        "GROUP BY c.month, c.metric ORDER BY c.month",
        (subtree, first, last),
    )
    months: dict[str, dict[str, int]] = defaultdict(dict)
    for month, metric, value in rows:
        months[month][metric] = int(value)
    due = connection.execute(
        "SELECT d.due_month, d.kind, COUNT(*), SUM(CASE WHEN d.state = 'met' THEN 1 ELSE 0 END) "
        "FROM unit_deadlines d JOIN unit_paths p ON p.unit_id = d.unit_id "
        "WHERE p.path LIKE ? AND d.due_month >= ? AND d.due_month <= ? "
        "AND (d.state IN ('met', 'missed') OR (d.state = 'open' AND d.due_end <= ?)) "
        "GROUP BY d.due_month, d.kind",
        (subtree, first, last, moment_text(now)),
    )
    for month, kind, fell_due, met in due:
        total, in_time = DEADLINE_COUNTS[kind]
        months[month][total] = int(fell_due)
        months[month][in_time] = int(met)
    return dict(sorted(months.items()))


def _period(months: dict[str, dict[str, int]], first: str, last: str) -> Period:
    totals: dict[str, int] = defaultdict(int)
    for counts in months.values():
        for metric, value in counts.items():
            totals[metric] += value
    return Period(first_month=first, last_month=last, counts=dict(totals), rates=rates(totals))


def _year_before(month: str) -> str:
    year, number = month.split("-")
    return f"{int(year) - 1}-{number}"
