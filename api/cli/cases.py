"""`dutyledger case show|list`: a case's full history, or a line per case."""

from __future__ import annotations

import typer

from api.cli.common import DatabaseUrlOption, open_ledger
from api.cli.render import find_case, print_case, print_case_summaries
from domain.case import CaseStatus

app = typer.Typer(help="Read cases: full history, or a one-line summary each.", no_args_is_help=True)


@app.command("show")
def show(
    case: str = typer.Argument(..., help="Case id, or a unique prefix of at least 6 characters."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Show a case's current state and every event in its history, human readable."""
    with open_ledger(database_url) as ledger:
        print_case(ledger, find_case(ledger, case))


@app.command("list")
def list_cases(
    status: CaseStatus | None = typer.Option(None, help="Only cases in this status."),
    limit: int | None = typer.Option(None, min=1, help="Print at most this many lines."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """One line per case: id, registration date, status, unit, category, reply due, flags."""
    with open_ledger(database_url) as ledger:
        print_case_summaries(ledger, limit=limit, status=status)
