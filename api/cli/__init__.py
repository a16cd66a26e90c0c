"""The `dutyledger` command line: every command honours DUTYLEDGER_DATABASE_URL."""

from __future__ import annotations

import sqlite3
import sys

import psycopg
import typer
from eventsourcing.persistence import PersistenceError
from pydantic import ValidationError
from typer._click.exceptions import NoArgsIsHelpError

from api.cli import (
    cadres,
    cases,
    events,
    follow,
    keys,
    ledger,
    petitioners,
    projections,
    serve,
    signing,
    verify,
    webhooks,
)
from api.webhooks.sealing import KeyFileError, KeyMismatch
from domain.errors import LedgerError
from domain.storage.url import BadDatabaseUrl
from projections.merkle.checkpoints import NoSigningKey
from projections.store import RebuildRunning

app = typer.Typer(
    name="dutyledger",
    help="Duty Ledger: an accountability ledger for petition casework (信访).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(ledger.init)
app.command("demo")(ledger.demo)
app.command("serve")(serve.serve)
app.command("follow")(follow.follow)
app.command("verify")(verify.verify)
app.add_typer(cases.app, name="case")
app.add_typer(cadres.app, name="cadre")
app.add_typer(events.app, name="events")
app.add_typer(projections.app, name="projections")
app.add_typer(keys.app, name="keys")
app.add_typer(petitioners.app, name="petitioners")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(signing.app, name="signing-key")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure is one line on stderr and a non-zero exit status."""
    command = typer.main.get_command(app)
    try:
        status = command.main(args=argv, prog_name="dutyledger", standalone_mode=False)
        if isinstance(status, int) and status:  # click returns a raised Exit's code without standalone mode
            sys.exit(status)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    except NoArgsIsHelpError as shown:
        print(shown.format_message())
        sys.exit(0)
    except typer.TyperException as error:
        context = getattr(error, "ctx", None)
        hint = f" (see: {context.command_path} --help)" if context else ""
        _fail(f"{error.format_message()}{hint}", getattr(error, "exit_code", 2))
    except BadDatabaseUrl as error:
        _fail(str(error), 2)
    except ValidationError as error:  # the settings read from DUTYLEDGER_* variables
        problems = "; ".join(
            f"DUTYLEDGER_{'_'.join(str(part) for part in item['loc']).upper()}: {item['msg']}"
            for item in error.errors()
        )
        _fail(f"configuration: {problems}", 2)
    except LedgerError as error:
        _fail(f"{error.title}: {error.detail}", 1)
    except RebuildRunning as error:
        _fail(f"{error}; try again once it has finished", 4)
    except NoSigningKey as error:
        _fail(f"{error} (DUTYLEDGER_SIGNING_KEY_PATH)", 2)
    except (KeyFileError, KeyMismatch) as error:
        _fail(f"configuration: {error}", 2)
    except (PersistenceError, psycopg.Error, sqlite3.Error) as error:
        _fail(f"database: {_first_line(error)}", 3)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _fail(message: str, status: int) -> None:
    print(f"dutyledger: error: {message}", file=sys.stderr)
    sys.exit(status)
