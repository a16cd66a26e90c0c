"""`dutyledger cadre accountability`: what a cadre held, did and missed over a window, with proof."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import typer
from eventsourcing.application import AggregateNotFoundError

from api.cli.common import DatabaseUrlOption, ViewsUrlOption, open_ledger, parse_id, view_store
from api.settings import get_settings
from domain.registry import Cadre
from projections import build_views
from projections.accountability import CadreAccountability, cadre_accountability
from projections.rebuild import ensure_current
from projections.runner import Runner

BEIJING = ZoneInfo("Asia/Shanghai")

app = typer.Typer(help="Read what cadres are accountable for.", no_args_is_help=True)


@app.command("accountability")
def accountability(
    cadre: str = typer.Argument(..., help="The cadre's id."),
    since: datetime = typer.Option(..., "--from", formats=["%Y-%m-%d"], help="First day (Beijing time)."),
    until: datetime = typer.Option(
        ..., "--to", formats=["%Y-%m-%d"], help="Day after the last (Beijing time)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole answer as JSON."),
    database_url: str | None = DatabaseUrlOption,
    views_url: str | None = ViewsUrlOption,
) -> None:
    """A cadre over [from, to): cases held, actions, deadlines met and missed, flags and their proof.

    The views are brought up to date with the log first. Records count as filed late after
    DUTYLEDGER_LATE_RECORD_HOURS (72 by default).
    """
    cadre_id = parse_id(cadre, "cadre id")
    start, end = (datetime.combine(day.date(), time(0), BEIJING) for day in (since, until))
    if end < start:
        raise typer.BadParameter("--to is before --from")
    with open_ledger(database_url) as ledger:
        try:
            found = ledger.cache.get(cadre_id)
        except AggregateNotFoundError:
            found = None
        if not isinstance(found, Cadre):
            raise typer.BadParameter(f"no cadre has the id {cadre_id}")
        store = view_store(ledger, views_url)
        views = build_views(ledger, ["cadre_accountability"])
        ensure_current(ledger, views, store)
        runner = Runner(ledger, views, store)
        try:
            runner.catch_up()
            late_after = timedelta(hours=get_settings().late_record_hours)
            account = cadre_accountability(runner.connection, cadre_id, start, end, late_after)
        finally:
            runner.close()
    typer.echo(account.model_dump_json(indent=2) if as_json else _summary(account, found.name, late_after))


def _summary(account: CadreAccountability, name: str, late_after: timedelta) -> str:
    held = ", ".join(f"{role} {count}" for role, count in sorted(account.cases_held.items())) or "none"
    ratings = ", ".join(f"{rating} {count}" for rating, count in account.ratings.items()) or "none"
    a = account
    lines = [
        f"{name} ({account.cadre_id}), {account.start:%Y-%m-%d} to {account.end:%Y-%m-%d} (Beijing time)",
        f"  cases received {account.cases_received}; held: {held}",
        f"  actions {a.actions}; filed over {late_after // timedelta(hours=1)} h late {a.late_records}; "
        f"passed on without action {a.passed_on}",
        f"  deadlines met {account.deadlines_met}, missed {account.deadlines_missed}",
        f"  replies issued {account.replies_issued}, overturned {account.replies_overturned}, "
        f"failed {account.replies_failed}; ratings: {ratings}",
        f"  meetings chaired {a.meetings_chaired} ({a.meetings_chaired_as_principal} as principal); "
        f"supervision issued {a.supervision_issued}, followed up {a.supervision_followed}",
        f"  findings {account.findings}, sanctions {account.sanctions}",
        f"  flags: {len(account.flags) or 'none'}",
    ]
    for flag in account.flags:
        proof = ", ".join(f"{p.aggregate_id}@v{p.version}" for p in flag.proof)
        lines.append(f"    {flag.pattern} on case {flag.case_id}: {proof}")
    return "\n".join(lines)
