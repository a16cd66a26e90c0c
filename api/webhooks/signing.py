"""Standard Webhooks 1.0 signatures: `whsec_` secrets, `v1` HMAC-SHA256 over `id.timestamp.body`.

A receiver computes `base64(HMAC-SHA256(secret, f"{webhook-id}.{webhook-timestamp}.{body}"))`
with the bytes after `whsec_` base64-decoded as the key, and accepts the delivery if any
`v1,<signature>` in the space-separated `webhook-signature` header matches. While a secret
is being rotated, every delivery carries one signature per live secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

PREFIX = "whsec_"
SECRET_BYTES = 32
"""Standard Webhooks asks for 24 to 64 random bytes."""


@dataclass(frozen=True)
class Secret:
    """A signing secret of an endpoint; once rotated out it keeps signing until `expires_at`."""

    stored: str
    """As stored: sealed (`api.webhooks.sealing`), or in clear by an earlier version."""
    created_at: datetime
    expires_at: datetime | None = None

    def live_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at


def new_secret() -> str:
    """A fresh secret, `whsec_<base64 of 32 random bytes>`."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` signature of a delivery."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a delivery, signed with every secret given."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets_),
    }
