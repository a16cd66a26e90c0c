"""Webhook signing secrets sealed at rest: AES-256-GCM under a key kept in a file, outside the database.

A signing secret must be stored in a form the ledger can open again (it signs every delivery),
so it cannot be hashed as API keys are. Stored in clear, whoever reads a backup or a copy of
the database could sign deliveries that every receiver would accept as the ledger's own. Sealed,
they also need the key file (`DUTYLEDGER_WEBHOOK_KEY_PATH`, mode 0600), which backups of the
database do not hold. Each sealed secret is bound to its endpoint (the endpoint id is the
associated data), so a sealed secret copied into another endpoint's row does not open.

Secrets stored in clear by an earlier version are sealed the first time a store opens
(`WebhookStore.seal_legacy`).
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = "sealed1:"
"""The prefix of a sealed secret; a stored secret without it is one stored in clear (`whsec_…`)."""
NONCE_BYTES = 12


class SealBroken(Exception):
    """A sealed secret did not open: another key file than the one that sealed it, or altered."""


class Sealer:
    """Seals and opens an endpoint's signing secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes, where: str = "the webhook key") -> None:
        self._aead = AESGCM(key)
        self.where = where
        """Where the key came from, for error messages."""

    @classmethod
    def at(cls, path: Path) -> Sealer:
        """The key in the file at `path`, created (32 random bytes, mode 0600) if there is none."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first: read theirs
            else:
                with os.fdopen(descriptor, "w") as file:
                    file.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        key = base64.b64decode(path.read_text().strip(), validate=True)
        if len(key) != 32:
            raise ValueError(f"{path} does not hold a 32-byte key (base64)")
        return cls(key, where=str(path))

    def seal(self, secret: str, endpoint_id: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), endpoint_id.encode())
        return SEALED + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, endpoint_id: str) -> str:
        """The secret as stored: sealed, or in clear by an earlier version."""
        if not stored.startswith(SEALED):
            return stored
        raw = base64.b64decode(stored.removeprefix(SEALED))
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], endpoint_id.encode()).decode()
        except InvalidTag:
            raise SealBroken(
                f"the signing secrets of webhook endpoint {endpoint_id} do not open with {self.where}"
            ) from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED)
