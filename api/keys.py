"""API keys: bearer tokens bound to a principal, stored only as hashes, expiring and revocable.

A token reads `dlk_<key id>_<secret>`. The key id (public, 12 hex digits) finds the row;
the secret (32 random bytes) is never stored: only its SHA-256, compared in constant time.
A slow hash (bcrypt, argon2) would add nothing: the secret is random, not a password
someone could guess, and it would cost every request milliseconds.

Keys are credentials, not facts of casework: they live in their own table beside the
ledger (revoking sets `revoked_at`), never in the event store. Their issue and revocation
are facts, though: `issue_key` and `revoke_key` record them (`Credential.Issued`,
`Credential.Revoked`, never the secret) as the administrator who did it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

import orjson

from api.tables import SharedConnection
from domain.catalogue import topics_of
from domain.errors import NotFound
from domain.ledger import CommandContext, Ledger
from domain.registry import Cadre, Unit
from domain.values import Role
from projections.columns import as_text

TABLE = "api_keys"
PREFIX = "dlk_"
CACHE_SECONDS = 2.0
"""How long a verified key is trusted without asking the table again: a key revoked by
another process stops working within this time (at once in the process that revoked it)."""


class PrincipalKind(StrEnum):
    """What a key lets its holder be."""

    CADRE = "cadre"  # records as this cadre; reads its own jurisdiction and the cases it holds
    INSPECTOR = "inspector"  # reads a set of unit subtrees; opens inquiries as its cadre
    INTEGRATOR = "integrator"  # reads the event feed, perhaps limited to unit subtrees
    ADMINISTRATOR = "administrator"  # manages keys; records registry commands as its cadre


KIND_ROLES = {PrincipalKind.ADMINISTRATOR: Role.ADMINISTRATOR, PrincipalKind.INSPECTOR: Role.INSPECTOR}
"""The role a key's cadre must hold for the key to act as its kind (checked again at every use)."""

NEEDS_CADRE = frozenset({PrincipalKind.CADRE, PrincipalKind.INSPECTOR, PrincipalKind.ADMINISTRATOR})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the kind of key, the cadre it acts as (if any), the units it may read."""

    kind: PrincipalKind
    key_id: str
    cadre_id: UUID | None = None
    scope_unit_ids: frozenset[UUID] = frozenset()
    """Inspector and integrator: the unit subtrees it reads (an integrator with none reads all)."""
    event_types: frozenset[str] = frozenset()
    """Integrator: the event types it reads (exact, or patterns with `*`); none: every type."""


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: everything but its secret."""

    key_id: str
    kind: PrincipalKind
    cadre_id: UUID | None
    scope_unit_ids: frozenset[UUID]
    event_types: frozenset[str]
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def principal(self) -> Principal:
        return Principal(self.kind, self.key_id, self.cadre_id, self.scope_unit_ids, self.event_types)

    def usable_at(self, moment: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or moment < self.expires_at)


class KeyRefused(Exception):
    """A key cannot be created or revoked as asked."""


COLUMNS = "key_id, secret_hash, kind, cadre_id, scope, label, created_at, expires_at, revoked_at"


class NotRemembered(Enum):
    """The answer of a look-up from memory alone when the database must be asked."""

    NOT_REMEMBERED = "not remembered"


NOT_REMEMBERED = NotRemembered.NOT_REMEMBERED


class KeyStore:
    """The table of keys in the ledger's database, with a short-lived cache of verified keys."""

    def __init__(self, database_url: str) -> None:
        self._connection = SharedConnection(
            database_url,
            f"CREATE TABLE IF NOT EXISTS {TABLE} (key_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, "
            "kind TEXT NOT NULL, cadre_id TEXT, scope TEXT NOT NULL, label TEXT NOT NULL, "
            "created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT)",
        )
        self._cache: dict[str, tuple[float, ApiKey, str]] = {}
        self._lock = threading.Lock()
        self._revocations = 0
        """Revocations made through this store; a row read across one is not cached."""

    def create(
        self,
        kind: PrincipalKind,
        *,
        cadre_id: UUID | None = None,
        scope_unit_ids: Iterable[UUID] = (),
        event_types: Iterable[str] = (),
        label: str = "",
        expires_at: datetime | None = None,
        now: datetime | None = None,
        key_id: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it and its token (shown this once, never stored).

        `key_id`: the id `issue_key` recorded in the ledger before the key was stored.
        """
        scope, types = frozenset(scope_unit_ids), frozenset(event_types)
        now = now or datetime.now(UTC)
        check_key_shape(kind, cadre_id, scope, types, expires_at, now)
        key = ApiKey(key_id or new_key_id(), kind, cadre_id, scope, types, label, now, expires_at, None)
        secret = secrets.token_urlsafe(32)
        with self._connection() as connection, connection.transaction():
            connection.execute(
                f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    _hash(secret),
                    kind.value,
                    str(cadre_id) if cadre_id else None,
                    _scope_text(scope, types),
                    label,
                    as_text(now),
                    as_text(expires_at),
                    None,
                ),
            )
        return key, f"{PREFIX}{key.key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        with self._connection() as connection:
            rows = connection.execute(f"SELECT {COLUMNS} FROM {TABLE} ORDER BY created_at, key_id")
        return [_key(row) for row in rows]

    def get(self, key_id: str) -> ApiKey | None:
        found = self._row(key_id)
        return found[0] if found else None

    def revoke(self, key_id: str, now: datetime | None = None) -> ApiKey:
        """Revoke a key (at once in this process; within `CACHE_SECONDS` in others)."""
        moment = as_text(now or datetime.now(UTC))
        with self._connection() as connection, connection.transaction():
            changed = connection.count(
                f"UPDATE {TABLE} SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (moment, key_id)
            )
        with self._lock:
            self._cache.pop(key_id, None)
            self._revocations += 1
        key = self.get(key_id)
        if key is None:
            raise KeyRefused(f"no key {key_id}")
        if not changed:
            raise KeyRefused(f"key {key_id} was already revoked")
        return key

    def verify(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal a token stands for, or None if it is not a live key's token."""
        found = self._verify(token, now, remembered_only=False)
        assert not isinstance(found, NotRemembered)
        return found

    def verify_remembered(self, token: str, now: datetime | None = None) -> Principal | NotRemembered | None:
        """As `verify`, from memory alone: `NOT_REMEMBERED` when the key must be read from the database.

        It never blocks, so the HTTP layer answers most requests without a worker thread.
        """
        return self._verify(token, now, remembered_only=True)

    def _verify(
        self, token: str, now: datetime | None, *, remembered_only: bool
    ) -> Principal | NotRemembered | None:
        if not token.startswith(PREFIX) or token.count("_") < 2:
            return None
        key_id, _, secret = token[len(PREFIX) :].partition("_")
        remembered = self._remembered(key_id)
        if isinstance(remembered, NotRemembered):
            if remembered_only:
                return NOT_REMEMBERED
            found = self._read_and_remember(key_id)
        else:
            found = remembered
        if found is None:
            return None
        key, secret_hash = found
        if not hmac.compare_digest(secret_hash, _hash(secret)):
            return None
        return key.principal() if key.usable_at(now or datetime.now(UTC)) else None

    def _remembered(self, key_id: str) -> tuple[ApiKey, str] | NotRemembered:
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return hit[1], hit[2]
        return NOT_REMEMBERED

    def _read_and_remember(self, key_id: str) -> tuple[ApiKey, str] | None:
        """The key's row from the store, remembered for `CACHE_SECONDS`."""
        clock = time.monotonic()
        with self._lock:
            revocations = self._revocations
        found = self._row(key_id)
        with self._lock:
            # A revocation that committed while the row was read may have read it live: don't keep it.
            if found is not None and self._revocations == revocations:
                self._cache[key_id] = (clock, *found)
        return found

    def _row(self, key_id: str) -> tuple[ApiKey, str] | None:
        with self._connection() as connection:
            rows = connection.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE key_id = ?", (key_id,))
        return (_key(rows[0]), rows[0][1]) if rows else None

    def close(self) -> None:
        self._connection.close()


def new_key_id() -> str:
    """A key's public id: 12 random hex digits."""
    return secrets.token_hex(6)


def check_key_shape(
    kind: PrincipalKind,
    cadre_id: UUID | None,
    scope: frozenset[UUID],
    types: frozenset[str],
    expires_at: datetime | None,
    now: datetime,
) -> None:
    """Refuse (KeyRefused) a key whose kind, cadre, scope, types or expiry do not go together."""
    if types and kind is not PrincipalKind.INTEGRATOR:
        raise KeyRefused(f"only an integrator key reads the event feed by type; a {kind} key takes none")
    if (kind in NEEDS_CADRE) != (cadre_id is not None):
        needs = "needs" if kind in NEEDS_CADRE else "takes no"
        raise KeyRefused(f"a {kind} key {needs} cadre")
    if kind is PrincipalKind.INSPECTOR and not scope:
        raise KeyRefused("an inspector key needs at least one unit to read")
    if kind in (PrincipalKind.CADRE, PrincipalKind.ADMINISTRATOR) and scope:
        raise KeyRefused(f"a {kind} key reads by its cadre's jurisdiction; it takes no scope")
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise KeyRefused("a key must expire in the future, at a time with a zone offset")


def issue_key(
    ledger: Ledger,
    keys: KeyStore,
    admin_id: UUID,
    kind: PrincipalKind,
    *,
    cadre_id: UUID | None = None,
    scope_unit_ids: Iterable[UUID] = (),
    event_types: Iterable[str] = (),
    label: str = "",
    expires_at: datetime | None = None,
    reason: str = "",
) -> tuple[ApiKey, str]:
    """Issue a key as the administrator `admin_id`: checked, recorded in the ledger (`reason` its
    narrative), then stored.

    The event comes first: should storing the key fail after it, the ledger shows a key that
    never worked, never a working key it does not show.
    """
    units, types = frozenset(scope_unit_ids), frozenset(event_types)
    check_key_request(ledger, kind, cadre_id, units, types)
    check_key_shape(kind, cadre_id, units, types, expires_at, datetime.now(UTC))
    key_id = new_key_id()
    bound: dict[str, Any] = {
        "cadre_id": cadre_id,
        "scope_unit_ids": units,
        "event_types": types,
        "label": label,
        "expires_at": expires_at,
    }
    ctx = CommandContext(actor_id=admin_id, narrative=reason or f"issued a {kind} key: {label or 'no label'}")
    ledger.issue_credential(ctx, key_id=key_id, kind=kind.value, **bound)
    return keys.create(kind, key_id=key_id, **bound)


def revoke_key(ledger: Ledger, keys: KeyStore, admin_id: UUID, key_id: str, reason: str = "") -> ApiKey:
    """Revoke a key as the administrator `admin_id`, the revocation recorded in the ledger first.

    A key issued before the ledger recorded keys has no `Credential` to revoke: it is revoked
    in the key table alone. NotFound if there is no such key; KeyRefused if it is revoked already.
    """
    key = keys.get(key_id)
    if key is None:
        raise NotFound(f"no key {key_id}", kind="ApiKey")
    if key.revoked_at is not None:
        raise KeyRefused(f"key {key_id} was already revoked")
    ctx = CommandContext(actor_id=admin_id, narrative=reason or f"revoked key {key_id}")
    try:
        ledger.revoke_credential(ctx, key_id=key_id)
    except NotFound as missing:
        if missing.context.get("kind") != "Credential":
            raise
    return keys.revoke(key_id)


def check_key_request(
    ledger: Ledger,
    kind: PrincipalKind,
    cadre_id: UUID | None,
    scope_unit_ids: Iterable[UUID],
    event_types: Iterable[str] = (),
) -> None:
    """The cadre, units and event types a new key names exist, and its cadre holds the kind's role."""
    topics_of(event_types)
    if cadre_id is not None:
        cadre = ledger.peek(Cadre, cadre_id)
        role = KIND_ROLES.get(kind)
        if role is not None and role not in cadre.roles:
            raise KeyRefused(f"an {kind} key needs a cadre with the {role} role")
    for unit_id in scope_unit_ids:
        ledger.peek(Unit, unit_id)


def _scope_text(units: frozenset[UUID], types: frozenset[str]) -> str:
    """The `scope` column: a list of unit ids, or (with event types) an object of both."""
    listed = sorted(str(u) for u in units)
    return orjson.dumps({"units": listed, "types": sorted(types)} if types else listed).decode()


def _scope(text: str) -> tuple[frozenset[UUID], frozenset[str]]:
    scope = orjson.loads(text)
    units, types = (scope, []) if isinstance(scope, list) else (scope["units"], scope["types"])
    return frozenset(UUID(u) for u in units), frozenset(types)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _key(row: tuple[object, ...]) -> ApiKey:
    key_id, _, kind, cadre_id, scope, label, created_at, expires_at, revoked_at = row
    created = _moment(str(created_at))
    assert created is not None
    units, types = _scope(str(scope))
    return ApiKey(
        key_id=str(key_id),
        kind=PrincipalKind(str(kind)),
        cadre_id=UUID(str(cadre_id)) if cadre_id else None,
        scope_unit_ids=units,
        event_types=types,
        label=str(label),
        created_at=created,
        expires_at=_moment(expires_at if isinstance(expires_at, str) else None),
        revoked_at=_moment(revoked_at if isinstance(revoked_at, str) else None),
    )
