"""Commands on API keys: issued and revoked by an administrator, each recorded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from domain.credential import Credential, credential_id
from domain.ledger.core import LedgerCore, command
from domain.ledger.work import Work
from domain.values import Role


class CredentialCommands(LedgerCore):
    """The audit trail of the key table: which administrator issued which key, for whom, and revoked it."""

    @command
    def issue_credential(
        self,
        work: Work,
        key_id: str,
        kind: str,
        cadre_id: UUID | None,
        scope_unit_ids: Iterable[UUID] = (),
        event_types: Iterable[str] = (),
        label: str = "",
        expires_at: datetime | None = None,
    ) -> UUID:
        """Record that the acting administrator issued the key `key_id` (never its secret)."""
        work.actor.require(Role.ADMINISTRATOR, "issue an API key")
        credential = Credential.issue(
            work.stamp,
            key_id=key_id,
            kind=kind,
            cadre_id=cadre_id,
            scope_unit_ids=tuple(sorted(set(scope_unit_ids), key=str)),
            event_types=tuple(sorted(set(event_types))),
            label=label,
            expires_at=expires_at,
        )
        return work.create(credential).id

    @command
    def revoke_credential(self, work: Work, key_id: str) -> UUID:
        """Record that the acting administrator revoked the key `key_id`."""
        work.actor.require(Role.ADMINISTRATOR, "revoke an API key")
        credential = work.target(Credential, credential_id(key_id))
        credential.revoke(work.stamp)
        return credential.id
