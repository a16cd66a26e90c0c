"""`dutyledger signing-key show|rotate`: the Ed25519 key that signs checkpoints of the Merkle log.

Rotating keeps every public key in the ledger's database (`ledger_signing_keys`), so the
checkpoints signed before stay verifiable; the retired private key stays beside the new one
(`<path>.retired-<UTC time>`, mode 0600) until the operator destroys it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from api.cli.common import DatabaseUrlOption, open_ledger
from api.settings import get_settings
from projections.merkle.checkpoints import CheckpointStore, create_key_file, read_key_file

app = typer.Typer(
    help="Show or rotate the key that signs checkpoints of the Merkle log.", no_args_is_help=True
)


@app.command("show")
def show(database_url: str | None = DatabaseUrlOption) -> None:
    """The current public key (note verifier key) and every key that has signed for this ledger."""
    path = Path(get_settings().signing_key_path)
    signer = read_key_file(path)
    with open_ledger(database_url) as ledger:
        store = CheckpointStore(ledger.database_url)
        try:
            known = store.verifiers()
        finally:
            store.close()
    typer.echo(f"current: {signer.verifier.text()} ({path})")
    if signer.verifier not in known:
        typer.echo("  (not recorded in the ledger yet: `dutyledger init` or the server records it)")
    for key in known:
        if key != signer.verifier:
            typer.echo(f"earlier: {key.text()}")


@app.command("rotate")
def rotate(database_url: str | None = DatabaseUrlOption) -> None:
    """Replace the signing key by a new one of the same name; earlier checkpoints stay verifiable.

    The new public key is recorded before the key file changes, so no checkpoint is ever signed
    with a key the ledger does not know. The server reads the key when it starts: restart it.
    """
    path = Path(get_settings().signing_key_path)
    old = read_key_file(path)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    retired = path.with_name(f"{path.name}.retired-{stamp}")
    fresh = path.with_name(f".{path.name}.new-{stamp}")
    new = create_key_file(fresh, old.name)
    try:
        with open_ledger(database_url) as ledger:
            store = CheckpointStore(ledger.database_url)
            try:
                store.add_key(old.verifier)
                store.add_key(new.verifier)
            finally:
                store.close()
        os.link(path, retired)  # the old key stays, under its retired name, with its mode
        os.chmod(retired, 0o600)
        os.replace(fresh, path)  # the key's path never lacks a key
    finally:
        fresh.unlink(missing_ok=True)
    typer.echo(f"retired {old.verifier.text()} (kept at {retired}, mode 0600)")
    typer.echo(f"new signing key {new.verifier.text()} at {path} (mode 0600)")
    typer.echo("restart the server (`dutyledger serve`) so that it signs with the new key")
