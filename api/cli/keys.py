"""`dutyledger keys create|list|revoke`: the API keys, managed from the server's own machine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import typer

from api.cli.common import DatabaseUrlOption, open_ledger, parse_id
from api.keys import ApiKey, KeyRefused, KeyStore, PrincipalKind, issue_key, revoke_key
from domain.ledger import Ledger

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

ADMIN = typer.Option(
    ..., "--admin", help="The administrator's cadre id: the actor the ledger records for this key."
)


@contextmanager
def open_keys(database_url: str | None) -> Iterator[tuple[Ledger, KeyStore]]:
    """The configured ledger and its key table, both closed afterwards."""
    with open_ledger(database_url) as ledger:
        keys = KeyStore(ledger.database_url)
        try:
            yield ledger, keys
        finally:
            keys.close()


def _record(key: ApiKey) -> dict[str, object]:
    return {
        "key_id": key.key_id,
        "kind": key.kind.value,
        "cadre_id": str(key.cadre_id) if key.cadre_id else None,
        "scope_unit_ids": sorted(str(u) for u in key.scope_unit_ids),
        "event_types": sorted(key.event_types),
        "label": key.label,
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@app.command("create")
def create(
    kind: PrincipalKind = typer.Option(..., "--kind", help="cadre, inspector, integrator or administrator."),
    cadre: str | None = typer.Option(
        None, "--cadre", help="The cadre it records as (all kinds but integrator)."
    ),
    scope: list[str] = typer.Option([], "--scope", help="A unit it reads, with all below (repeatable)."),
    event_type: list[str] = typer.Option(
        [], "--type", help="Integrator: an event type it reads, `*` allowed (repeatable; none: all)."
    ),
    label: str = typer.Option("", "--label", help="What it is for, for the list."),
    expires: datetime | None = typer.Option(
        None, "--expires", help="When it stops working (ISO 8601, with offset)."
    ),
    admin: str = ADMIN,
    reason: str = typer.Option("", "--reason", help="Why (the narrative of Credential.Issued)."),
    as_json: bool = typer.Option(False, "--json", help="Print an object holding the token, for scripts."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Create a key, recorded as Credential.Issued by --admin; its token is printed once and never
    stored (only its hash is)."""
    cadre_id = parse_id(cadre, "cadre id") if cadre else None
    units = [parse_id(unit, "unit id") for unit in scope]
    admin_id = parse_id(admin, "cadre id")
    with open_keys(database_url) as (ledger, keys):
        try:
            key, token = issue_key(
                ledger,
                keys,
                admin_id,
                kind,
                cadre_id=cadre_id,
                scope_unit_ids=units,
                event_types=event_type,
                label=label,
                expires_at=expires,
                reason=reason,
            )
        except KeyRefused as error:
            raise typer.BadParameter(str(error)) from None
    if as_json:
        typer.echo(json.dumps(_record(key) | {"token": token}))
    else:
        typer.echo(f"created {key.kind} key {key.key_id}; its token (shown this once):\n{token}")


@app.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Every key, live, expired or revoked; never a secret."""
    with open_keys(database_url) as (_, keys):
        found = keys.list()
    if as_json:
        typer.echo(json.dumps([_record(key) for key in found]))
        return
    for key in found:
        state = (
            "revoked"
            if key.revoked_at
            else ("expires " + key.expires_at.isoformat() if key.expires_at else "live")
        )
        typer.echo(f"{key.key_id}  {key.kind:<13} {key.cadre_id or '-'}  {state}  {key.label}")
    typer.echo(f"{len(found)} key(s)")


@app.command("revoke")
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (as listed; the part after dlk_)."),
    admin: str = ADMIN,
    reason: str = typer.Option("", "--reason", help="Why (the narrative of Credential.Revoked)."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Revoke a key, recorded as Credential.Revoked by --admin: servers refuse it within seconds."""
    admin_id = parse_id(admin, "cadre id")
    with open_keys(database_url) as (ledger, keys):
        try:
            key = revoke_key(ledger, keys, admin_id, key_id, reason)
        except KeyRefused as error:
            raise typer.BadParameter(str(error)) from None
    typer.echo(f"revoked {key.kind} key {key.key_id}")
