"""Webhook signing secrets sealed at rest: AES-256-GCM under a key kept in a file, outside the database.

A signing secret must be stored in a form the ledger can open again (it signs every delivery),
so it cannot be hashed as API keys are. Stored in clear, whoever reads a backup or a copy of
the database could sign deliveries that every receiver would accept as the ledger's own. Sealed,
they also need the key file (`DUTYLEDGER_WEBHOOK_KEY_PATH`, mode 0600), which backups of the
database do not hold. Each sealed secret is bound to its endpoint (the endpoint id is the
associated data), so a sealed secret copied into another endpoint's row does not open.

Secrets stored in clear by an earlier version are sealed when a process prepares its store
(`WebhookStore.prepare`, as the server and `webhooks run` start). The database keeps a value
sealed with the key (`CHECK`): a process given another key file refuses to start
(`KeyMismatch`) instead of failing, quietly, every delivery it attempts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = "sealed1:"
"""The prefix of a sealed secret; a stored secret without it is one stored in clear (`whsec_…`)."""
NONCE_BYTES = 12


CHECK = "the key that sealed this database's webhook secrets"
"""What the database's check value opens to (`WebhookStore.prepare`), bound to `CHECK_ID`."""
CHECK_ID = "key-check"


class SealBroken(Exception):
    """A sealed secret did not open: another key file than the one that sealed it, or altered."""


class KeyMismatch(SealBroken):
    """The key file is not the one that sealed the database's secrets."""


class KeyFileError(ValueError):
    """The key file cannot be read or made."""


class Sealer:
    """Seals and opens an endpoint's signing secrets with one AES-256-GCM key."""

    def __init__(self, key: bytes, where: str = "the webhook key") -> None:
        self._aead = AESGCM(key)
        self.where = where
        """Where the key came from, for error messages."""

    @classmethod
    def at(cls, path: Path) -> Sealer:
        """The key in the file at `path`, created (32 random bytes, mode 0600) if there is none."""
        try:
            if not path.exists():
                _create(path)
            key = base64.b64decode(path.read_text().strip(), validate=True)
        except (OSError, binascii.Error) as error:
            raise KeyFileError(
                f"the webhook key file {path} (DUTYLEDGER_WEBHOOK_KEY_PATH): {error}"
            ) from None
        if len(key) != 32:
            raise KeyFileError(
                f"the webhook key file {path} (DUTYLEDGER_WEBHOOK_KEY_PATH) holds no 32-byte key in base64"
            )
        return cls(key, where=str(path))

    def seal(self, secret: str, endpoint_id: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), endpoint_id.encode())
        return SEALED + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, endpoint_id: str) -> str:
        """The secret as stored: sealed, or in clear by an earlier version."""
        if not stored.startswith(SEALED):
            return stored
        try:
            raw = base64.b64decode(stored.removeprefix(SEALED), validate=True)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], endpoint_id.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            # Said to integrators in the delivery log: names no file (the operator's log does).
            raise SealBroken(
                f"this server's webhook key does not open the signing secrets of {endpoint_id}"
            ) from None


def _create(path: Path) -> None:
    """A new key file at `path`, whole or not at all: written aside, then linked into place (two
    processes starting at once both read the one that was linked first)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, aside = tempfile.mkstemp(dir=path.parent, prefix=".webhook-key-")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(aside, path)
    finally:
        os.unlink(aside)


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED)
