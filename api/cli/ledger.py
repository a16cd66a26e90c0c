"""`dutyledger init` and `dutyledger demo`: create the store, found the ledger, load the demo."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import typer

from api.cli.common import DatabaseUrlOption, open_ledger, parse_id
from api.cli.render import print_case_summaries
from api.keys import KeyStore, PrincipalKind, issue_key
from api.settings import get_settings
from domain.demo import demo_clock, load_demo
from domain.demo.world import build_org
from domain.ledger import CommandContext, Ledger
from domain.storage.url import redacted, sqlite_file
from domain.values import UnitLevel
from projections.merkle.checkpoints import CheckpointStore, create_key_file, read_key_file


def init(
    root_unit: str | None = typer.Option(None, help="Found the ledger with this root unit (e.g. 周口市)."),
    level: UnitLevel = typer.Option(UnitLevel.CITY, help="The root unit's level."),
    jurisdiction: str = typer.Option("CN", help="The root's deadline-rule jurisdiction (CN, CN-HA, …)."),
    admin_name: str = typer.Option("管理员", help="Name of the first administrator."),
    admin_position: str = typer.Option("系统管理员", help="Position of the first administrator."),
    admin_id: str | None = typer.Option(None, help="Cadre id for the first administrator (default: new)."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Create the event store if absent; with --root-unit, also found the ledger."""
    with open_ledger(database_url, create=True) as ledger:
        position = ledger.recorder.max_notification_id() or 0
        typer.echo(f"ledger store ready at {redacted(ledger.database_url)} ({position} events)")
        typer.echo(ensure_signing_key(ledger.database_url))
        if root_unit is None:
            return
        admin = parse_id(admin_id, "cadre id") if admin_id else uuid4()
        result = ledger.establish(
            CommandContext(actor_id=admin, narrative=f"建立{root_unit}信访责任台账"),
            root_unit_name=root_unit,
            root_level=level,
            jurisdiction=jurisdiction,
            administrator_name=admin_name,
            administrator_position=admin_position,
        )
        typer.echo(f"founded: root unit {result.aggregate_id}, administrator {admin}")


def ensure_signing_key(database_url: str) -> str:
    """Create the checkpoint signing key if there is none, and record its public key; what was done."""
    settings = get_settings()
    path = Path(settings.signing_key_path)
    store = CheckpointStore(database_url)
    try:
        try:
            signer = create_key_file(path, settings.log_origin)
            done = f"created signing key {signer.verifier.text()} at {path} (mode 0600)"
        except FileExistsError:
            signer = read_key_file(path)
            done = f"signing key {signer.verifier.text()} at {path}"
        store.add_key(signer.verifier)
    finally:
        store.close()
    return done


def demo(
    seed: int = typer.Option(7, help="Same seed, same events."),
    if_empty: bool = typer.Option(
        False, "--if-empty", help="Do nothing (successfully) if the ledger has events."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="Do not print the case summaries."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Load the demo data set (a city, two counties, 300+ cases, 2025-2026) into an empty ledger."""
    clock = demo_clock()
    with open_ledger(database_url, clock=clock, create=True) as ledger:
        if ledger.recorder.max_notification_id():
            if if_empty:
                typer.echo("the ledger already has events; demo not loaded")
                return
            raise typer.BadParameter("the demo loads only into an empty ledger", param_hint="--database-url")
        report = load_demo(ledger, clock, seed=seed)
        typer.echo(
            f"demo loaded: {report.commands} commands, {len(report.cases)} cases, "
            f"{report.meetings} meetings, {report.disputes} disputes ({report.escalated} escalated), "
            f"{report.inquiries} inquiries, "
            f"{report.cadres} cadres in {report.units} units; {ledger.recorder.max_notification_id()} events"
        )
        kept = demo_keys_file(ledger.database_url)
        keys = demo_keys(ledger, report.seed, kept)
        typer.echo(f"demo API keys (kept in {kept}; send one as 'Authorization: Bearer <key>'):")
        for line in keys:
            typer.echo(f"  {line}")
        if not quiet:
            print_case_summaries(ledger, limit=25)
            typer.echo(
                "(first 25 shown; `dutyledger case list` shows all, `dutyledger case show ID` one in full)"
            )


def demo_keys_file(database_url: str) -> Path:
    """Where the demo's keys are kept: beside its SQLite file (`make run`: ./var), else in ./var."""
    file = sqlite_file(database_url)
    return (file.parent if file is not None else Path("var")) / "demo-keys.json"


DEMO_KEY_HOLDERS = (
    (PrincipalKind.ADMINISTRATOR, "admin", None),
    (PrincipalKind.INSPECTOR, "city_inspector", "city"),
    (PrincipalKind.CADRE, "dancheng_clerk", None),
    (PrincipalKind.INTEGRATOR, None, None),
)
"""Whom the demo gives a key: the administrator, the city's discipline inspector, a county bureau clerk,
and an integrator (a 12345 hotline, say) reading the whole event feed."""


def demo_keys(ledger: Ledger, seed: int, kept: Path) -> list[str]:
    """Create the demo's API keys and save them to `kept`; one line per key, to print."""
    org = build_org(seed)
    admin = org.cadre_id("admin")
    store = KeyStore(ledger.database_url)
    saved, lines = [], []
    try:
        for kind, holder, scope in DEMO_KEY_HOLDERS:
            units = [org.unit_id(scope)] if scope else []
            cadre_id = org.cadre_id(holder) if holder else None
            label = f"demo {holder or 'integrator'}"
            _, token = issue_key(
                ledger,
                store,
                admin,
                kind,
                cadre_id=cadre_id,
                scope_unit_ids=units,
                label=label,
                reason=f"issued the demo's {kind} key",
            )
            name = org.name_of(holder) if holder else None
            saved.append(
                {
                    "kind": kind.value,
                    "cadre": name,
                    "cadre_id": str(cadre_id) if cadre_id else None,
                    "label": label,
                    "token": token,
                }
            )
            lines.append(f"{kind:<13} {name or 'the event feed'} ({holder or 'no cadre'}): {token}")
    finally:
        store.close()
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(saved, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    kept.chmod(0o600)
    return lines
