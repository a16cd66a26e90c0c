"""`dutyledger petitioners erase`: delete a petitioner's identity for good, recorded as an administrator."""

from __future__ import annotations

import typer

from api.cli.common import DatabaseUrlOption, open_ledger, parse_id
from api.identity import IdentityStore, erase_identity
from api.settings import get_settings
from domain.ledger import CommandContext

app = typer.Typer(help="Petitioners' identities (kept outside the events).", no_args_is_help=True)


@app.command("erase")
def erase(
    petitioner: str = typer.Argument(..., help="The petitioner's pseudonymous id."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded as the narrative of IdentityErased)."),
    admin: str = typer.Option(..., "--admin", help="The administrator's cadre id: the actor recorded."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Record IdentityErased, then delete the name, phone, ID number and address; cases keep the id."""
    petitioner_id = parse_id(petitioner, "petitioner id")
    ctx = CommandContext(actor_id=parse_id(admin, "cadre id"), narrative=reason)
    with open_ledger(database_url) as ledger:
        store = IdentityStore(get_settings().identity_url or ledger.database_url)
        try:
            recorded = erase_identity(ledger, store, ctx, petitioner_id)
        finally:
            store.close()
    typer.echo(
        f"erased the identity of petitioner {petitioner_id}" + ("" if recorded else " (recorded earlier)")
    )
