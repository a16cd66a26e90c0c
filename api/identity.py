"""The identity store: who petitioners are, kept outside the events, keyed by their pseudonymous id.

Events carry only the pseudonymous `petitioner_id`. The name, phone, ID-card number and
address live here, in a table of their own (in the ledger's database, or in another one
named by `DUTYLEDGER_IDENTITY_URL`), so that erasing a petitioner deletes them for good
while the events, and every view built from them, stay valid. Erasure blanks the row and
keeps its id and time, so cases can show the petitioner as erased.

This store is written only beside a `Petitioner` command (`identify_petitioner`,
`access_identity`, `erase_identity`), which makes the audit trail in the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, StringConstraints

from api.tables import SharedConnection
from domain.errors import IdempotencyConflict, InvalidTransition
from domain.ids import derived_id
from domain.ledger import CommandContext, CommandResult, Ledger
from projections.columns import as_text

TABLE = "petitioner_identities"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Identity(BaseModel):
    """Who the petitioner is: personal data, never written to an event."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Text
    phone: Text | None = None
    id_number: Text | None = None
    address: Text | None = None


class IdentityStatus(StrEnum):
    """What the store holds for a pseudonymous id."""

    ON_FILE = "on_file"
    ERASED = "erased"
    NONE = "none"


class IdentityStore:
    """The table of identities; safe to share between threads."""

    def __init__(self, database_url: str) -> None:
        ddl = (
            f"CREATE TABLE IF NOT EXISTS {TABLE} (petitioner_id TEXT PRIMARY KEY, name TEXT, "
            "phone TEXT, id_number TEXT, address TEXT, recorded_at TEXT NOT NULL, erased_at TEXT)"
        )
        self._connection = SharedConnection(database_url, ddl)
        self._reads = SharedConnection(database_url, ddl)
        """For `statuses` alone: case reads ask it on the event loop, and must never queue behind a
        filing that holds the writers' connection while it waits for the file's write lock."""

    def put(self, petitioner_id: UUID, identity: Identity) -> Identity | IdentityStatus:
        """File an identity under a new id; returns what is on file under it (the first, on a retry),
        or `ERASED` if the first was filed and has since been erased."""
        with self._connection() as connection, connection.transaction():
            connection.execute(
                f"INSERT INTO {TABLE} (petitioner_id, name, phone, id_number, address, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (petitioner_id) DO NOTHING",
                (str(petitioner_id), identity.name, identity.phone, identity.id_number, identity.address,
                 as_text(datetime.now(UTC))),
            )  # fmt: skip
        return self.get(petitioner_id)

    def get(self, petitioner_id: UUID) -> Identity | IdentityStatus:
        """The identity on file, or why there is none (`ERASED`, `NONE`)."""
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT name, phone, id_number, address, erased_at FROM {TABLE} WHERE petitioner_id = ?",
                (str(petitioner_id),),
            )
        if not rows:
            return IdentityStatus.NONE
        name, phone, id_number, address, erased_at = rows[0]
        if erased_at is not None:
            return IdentityStatus.ERASED
        return Identity(name=name, phone=phone, id_number=id_number, address=address)

    def statuses(self, petitioner_ids: Iterable[UUID]) -> dict[UUID, IdentityStatus]:
        """What is on file for each id (without reading anyone's identity)."""
        ids = sorted({str(i) for i in petitioner_ids})
        found = dict.fromkeys((UUID(i) for i in ids), IdentityStatus.NONE)
        if not ids:
            return found
        with self._reads() as connection:
            marks = ", ".join("?" * len(ids))
            rows = connection.execute(
                f"SELECT petitioner_id, erased_at FROM {TABLE} WHERE petitioner_id IN ({marks})", ids
            )
        for petitioner_id, erased_at in rows:
            found[UUID(petitioner_id)] = IdentityStatus.ERASED if erased_at else IdentityStatus.ON_FILE
        return found

    def forget(self, petitioner_id: UUID) -> None:
        """Remove an identity filed for a command that was then refused (nothing recorded it)."""
        with self._connection() as connection, connection.transaction():
            connection.execute(f"DELETE FROM {TABLE} WHERE petitioner_id = ? AND erased_at IS NULL",
                               (str(petitioner_id),))  # fmt: skip

    def erase(self, petitioner_id: UUID) -> None:
        """Delete the personal data for good, keeping the id and the time of erasure."""
        with self._connection() as connection, connection.transaction():
            connection.execute(
                f"UPDATE {TABLE} SET name = NULL, phone = NULL, id_number = NULL, address = NULL, "
                "erased_at = COALESCE(erased_at, ?) WHERE petitioner_id = ?",
                (as_text(datetime.now(UTC)), str(petitioner_id)),
            )

    def close(self) -> None:
        self._connection.close()
        self._reads.close()


def file_identity(
    ledger: Ledger, store: IdentityStore, ctx: CommandContext, identity: Identity
) -> tuple[CommandResult, UUID]:
    """Put an identity on file under a new pseudonymous id, recorded as `ctx`'s actor.

    The id derives from the command id, so a retry files under the same id: the same
    identity is answered as before; another one under a used command id is a conflict.
    """
    command_id = ctx.command_id or str(uuid4())
    petitioner_id = derived_id("petitioner", command_id)
    earlier = ledger.command_log.select_command(command_id)
    name = earlier.name if earlier is not None else "identify_petitioner"
    used = (
        f"command id {command_id!r} was already used for a different {name} command"  # as the ledger says it
    )
    if earlier is not None and earlier.aggregate_id != petitioner_id:
        raise IdempotencyConflict(used, command_id=command_id)  # before filing: nothing is left behind
    filed = store.put(petitioner_id, identity)
    if filed is IdentityStatus.ERASED:
        raise IdempotencyConflict(
            f"command id {command_id!r} filed an identity that has since been erased; "
            "file it again under a new command id",
            command_id=command_id,
        )
    if filed != identity:
        raise IdempotencyConflict(used, command_id=command_id)
    try:
        result = ledger.identify_petitioner(replace(ctx, command_id=command_id), petitioner_id=petitioner_id)
    except BaseException:
        if ledger.command_log.select_command(command_id) is None:
            store.forget(petitioner_id)  # refused: no event may be left without its identity, nor the reverse
        raise
    return result, petitioner_id


def read_identity(
    ledger: Ledger, store: IdentityStore, ctx: CommandContext, case_id: UUID, petitioner_id: UUID
) -> Identity | IdentityStatus:
    """The identity of a case's petitioner; the read is recorded first (`IdentityAccessed`).

    Nothing is recorded when there is nothing to read (never on file, or erased).
    """
    status = store.statuses([petitioner_id])[petitioner_id]
    if status is not IdentityStatus.ON_FILE:
        return status
    ledger.access_identity(ctx, case_id=case_id)
    return store.get(petitioner_id)


def erase_identity(ledger: Ledger, store: IdentityStore, ctx: CommandContext, petitioner_id: UUID) -> bool:
    """Record the erasure, then delete the personal data; False if it had been recorded already.

    Recorded first, so that personal data never disappears without a record; a retry after
    a failed delete finds the erasure recorded and completes the delete.
    """
    try:
        ledger.erase_identity(ctx, petitioner_id=petitioner_id)
        recorded = True
    except InvalidTransition:
        recorded = False
    store.erase(petitioner_id)
    return recorded
