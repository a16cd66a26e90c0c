"""Webhook endpoints and their delivery log: tables of the API's own beside the ledger.

`webhook_endpoints` holds each endpoint's filter, secrets and its **tracking position**: the
last log index it has dealt with (delivered with a 2xx, or passed over by its filter). The
position moves only in the transaction that records the successful delivery, so the worker
is a tracked follower of the public log: the command path never writes here (no dual write),
and a crash between a delivery and its record only delivers that event again (at least once).

A worker delivers to an endpoint only while it holds the endpoint's lease (`lease_owner`,
`lease_until`), taken with a conditional UPDATE; every write it makes names itself as the
owner, so a worker whose lease was taken over (it stalled past `lease_until`) changes nothing.

`webhook_deliveries` is the delivery log: one row per attempt, numbered per endpoint (`seq`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import orjson
import psycopg

from api.feed.log import FeedFilter
from api.settings import Settings
from api.tables import SharedConnection
from api.webhooks.sealing import CHECK, CHECK_ID, KeyMismatch, SealBroken, Sealer, is_sealed
from api.webhooks.signing import Secret, new_secret
from projections.columns import as_text, moment_text
from projections.store import ViewConnection

ENDPOINTS = "webhook_endpoints"
DELIVERIES = "webhook_deliveries"
KEY_CHECK = "webhook_key_check"
"""A value sealed with the key that seals the secrets (`api.webhooks.sealing.CHECK`)."""
MAX_SECRETS = 5
"""Live secrets an endpoint may have at once (each signs every delivery while it lives)."""
KEEP_DELIVERIES = 1000
"""Attempts the delivery log keeps per endpoint; older ones are pruned as new ones come."""

ENDPOINT_COLUMNS = (
    "endpoint_id, owner_key_id, url, types, units, secrets, position, attempts, next_attempt_at, "
    "lease_owner, lease_until, sent, created_at, disabled_at"
)
DELIVERY_COLUMNS = (
    "endpoint_id, seq, log_index, webhook_id, attempt, attempted_at, status, error, duration_ms"
)


@dataclass(frozen=True)
class Endpoint:
    """A registered receiver: where, what it wants, how it is signed, how far it has got."""

    endpoint_id: str
    owner_key_id: str
    url: str
    event_types: tuple[str, ...]
    unit_ids: tuple[UUID, ...]
    signing_secrets: tuple[Secret, ...]
    """Newest first."""
    position: int
    """The last log index dealt with (-1: none yet)."""
    attempts: int
    """Failed attempts at the event after `position` so far."""
    next_attempt_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    sent: int
    """Attempts ever made (the `seq` of the latest delivery log row)."""
    created_at: datetime
    disabled_at: datetime | None

    def filter(self) -> FeedFilter:
        """What the endpoint asked for (the owner key's filter narrows it at delivery time)."""
        return FeedFilter.of(self.event_types, self.unit_ids)


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one event to one endpoint."""

    endpoint_id: str
    seq: int
    log_index: int
    webhook_id: str
    attempt: int
    """1 for the first attempt at this event, 2 for the first retry…"""
    attempted_at: datetime
    status: int | None
    """The receiver's HTTP status; None if it gave none (refused, timed out)."""
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class EndpointGone(Exception):
    """The endpoint is disabled (or does not exist): it cannot be changed."""


class TooManySecrets(Exception):
    """A rotation would leave more live secrets than `MAX_SECRETS`."""


class WebhookStore:
    """The two webhook tables in the ledger's database, through one shared connection.

    Signing secrets are stored sealed with `sealer` (`api.webhooks.sealing`).
    """

    @classmethod
    def configured(cls, settings: Settings, database_url: str) -> WebhookStore:
        """The store over `database_url`, sealing with the key file the settings name (`prepare`d)."""
        store = cls(database_url, Sealer.at(Path(settings.webhook_key_path)))
        try:
            store.prepare()
        except BaseException:
            store.close()
            raise
        return store

    def __init__(self, database_url: str, sealer: Sealer) -> None:
        self.sealer = sealer
        self._shared = SharedConnection(
            database_url,
            f"CREATE TABLE IF NOT EXISTS {ENDPOINTS} (endpoint_id TEXT PRIMARY KEY, "
            "owner_key_id TEXT NOT NULL, url TEXT NOT NULL, types TEXT NOT NULL, units TEXT NOT NULL, "
            "secrets TEXT NOT NULL, position BIGINT NOT NULL, attempts INTEGER NOT NULL, "
            "next_attempt_at TEXT, lease_owner TEXT, lease_until TEXT, sent BIGINT NOT NULL, "
            "created_at TEXT NOT NULL, disabled_at TEXT)",
        )
        self._deliveries_ready = False

    @contextmanager
    def _connection(self) -> Iterator[ViewConnection]:
        try:
            with self._shared() as connection:
                if not self._deliveries_ready:
                    connection.execute(
                        f"CREATE TABLE IF NOT EXISTS {DELIVERIES} (endpoint_id TEXT NOT NULL, "
                        "seq BIGINT NOT NULL, log_index BIGINT NOT NULL, webhook_id TEXT NOT NULL, "
                        "attempt INTEGER NOT NULL, attempted_at TEXT NOT NULL, status INTEGER, error TEXT, "
                        "duration_ms INTEGER NOT NULL, PRIMARY KEY (endpoint_id, seq))"
                    )
                    connection.execute(
                        f"CREATE TABLE IF NOT EXISTS {KEY_CHECK} "
                        "(name TEXT PRIMARY KEY, sealed TEXT NOT NULL)"
                    )
                    self._deliveries_ready = True
                yield connection
        except psycopg.OperationalError:
            self._shared.close()  # a broken session: the next use opens a new one
            raise

    # What the routes do.

    def create(
        self,
        owner_key_id: str,
        url: str,
        event_types: Iterable[str],
        unit_ids: Iterable[UUID],
        position: int,
        now: datetime | None = None,
    ) -> tuple[Endpoint, str]:
        """Register an endpoint that starts after log index `position`; returns it and its secret."""
        now = now or _now()
        secret = new_secret()
        endpoint_id = "wh_" + secrets.token_hex(8)
        endpoint = Endpoint(
            endpoint_id=endpoint_id,
            owner_key_id=owner_key_id,
            url=url,
            event_types=tuple(sorted(set(event_types))),
            unit_ids=tuple(sorted(set(unit_ids), key=str)),
            signing_secrets=(Secret(self.sealer.seal(secret, endpoint_id), now),),
            position=position,
            attempts=0,
            next_attempt_at=None,
            lease_owner=None,
            lease_until=None,
            sent=0,
            created_at=now,
            disabled_at=None,
        )
        with self._connection() as connection, connection.transaction():
            connection.execute(
                f"INSERT INTO {ENDPOINTS} ({ENDPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, "
                "NULL, 0, ?, NULL)",
                (
                    endpoint.endpoint_id,
                    owner_key_id,
                    url,
                    orjson.dumps(endpoint.event_types).decode(),
                    orjson.dumps([str(u) for u in endpoint.unit_ids]).decode(),
                    _secrets_text(endpoint.signing_secrets),
                    position,
                    moment_text(now),
                ),
            )
        return endpoint, secret

    def get(self, endpoint_id: str) -> Endpoint | None:
        found = self._read(endpoint_id)
        return found[0] if found else None

    def _read(self, endpoint_id: str) -> tuple[Endpoint, str] | None:
        """The endpoint, and its secrets as the column holds them (to compare and set)."""
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINTS} WHERE endpoint_id = ?", (endpoint_id,)
            )
        return (_endpoint(rows[0]), str(rows[0][5])) if rows else None

    def live_secrets(self, endpoint: Endpoint, moment: datetime) -> list[str]:
        """The secrets that sign a delivery at `moment`, opened (`SealBroken` under another key)."""
        return [
            self.sealer.open(s.stored, endpoint.endpoint_id)
            for s in endpoint.signing_secrets
            if s.live_at(moment)
        ]

    def prepare(self) -> None:
        """Before a process serves: refuse a key other than the one that sealed the database's
        secrets (`KeyMismatch`; the first store to look records its own), then seal the secrets
        an earlier version stored in clear."""
        with self._connection() as connection:
            connection.execute(
                f"INSERT INTO {KEY_CHECK} (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (CHECK_ID, self.sealer.seal(CHECK, CHECK_ID)),
            )
            ((sealed,),) = connection.execute(f"SELECT sealed FROM {KEY_CHECK} WHERE name = ?", (CHECK_ID,))
            try:
                opened: str | None = self.sealer.open(str(sealed), CHECK_ID)
            except SealBroken:
                opened = None
            if opened != CHECK:
                raise KeyMismatch(
                    f"the webhook key file {self.sealer.where} is not the one that sealed this database's "
                    "webhook secrets: give every process that shares the database the same file "
                    "(DUTYLEDGER_WEBHOOK_KEY_PATH)"
                )
            for endpoint_id, held in connection.execute(f"SELECT endpoint_id, secrets FROM {ENDPOINTS}"):
                self._seal_legacy(connection, str(endpoint_id), str(held))

    def _seal_legacy(self, connection: ViewConnection, endpoint_id: str, held: str) -> None:
        """Seal what of the endpoint's secrets (`held`, as stored) an earlier version stored in
        clear; read again and again sealed if a rotation changed them meanwhile."""
        while True:
            items = orjson.loads(held)
            if all(is_sealed(item["secret"]) for item in items):
                return
            for item in items:
                if not is_sealed(item["secret"]):
                    item["secret"] = self.sealer.seal(item["secret"], endpoint_id)
            if connection.count(
                f"UPDATE {ENDPOINTS} SET secrets = ? WHERE endpoint_id = ? AND secrets = ?",
                (orjson.dumps(items).decode(), endpoint_id, held),
            ):
                return
            found = connection.execute(
                f"SELECT secrets FROM {ENDPOINTS} WHERE endpoint_id = ?", (endpoint_id,)
            )
            if not found:
                return
            held = str(found[0][0])

    def endpoints(self, owner_key_id: str | None = None) -> list[Endpoint]:
        """Every endpoint (of one owner key, if given), oldest first."""
        where, params = ("WHERE owner_key_id = ?", (owner_key_id,)) if owner_key_id is not None else ("", ())
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINTS} {where} ORDER BY created_at, endpoint_id", params
            )
        return [_endpoint(row) for row in rows]

    def disable(self, endpoint_id: str, now: datetime | None = None) -> None:
        """Stop delivering to an endpoint, for good (a disabled endpoint stays listed)."""
        with self._connection() as connection:
            connection.execute(
                f"UPDATE {ENDPOINTS} SET disabled_at = ? WHERE endpoint_id = ? AND disabled_at IS NULL",
                (moment_text(now or _now()), endpoint_id),
            )

    def rotate(self, endpoint_id: str, grace: timedelta, now: datetime | None = None) -> tuple[Endpoint, str]:
        """A new secret; the live ones keep signing for `grace` more (at most), then lapse."""
        now = now or _now()
        secret = new_secret()
        while True:  # compare and set: a concurrent rotation makes this one read again
            read = self._read(endpoint_id)
            if read is None or read[0].disabled_at is not None:
                raise EndpointGone(endpoint_id)
            found, held = read
            lapse = now + grace
            kept = [
                replace(s, expires_at=lapse if s.expires_at is None else min(s.expires_at, lapse))
                for s in found.signing_secrets
            ]
            fresh = Secret(self.sealer.seal(secret, endpoint_id), now)
            rotated = (fresh, *(s for s in kept if s.live_at(now)))
            if len(rotated) > MAX_SECRETS:
                raise TooManySecrets(f"an endpoint signs with at most {MAX_SECRETS} secrets at once")
            with self._connection() as connection:
                changed = connection.count(
                    f"UPDATE {ENDPOINTS} SET secrets = ? WHERE endpoint_id = ? AND secrets = ?",
                    (_secrets_text(rotated), endpoint_id, held),
                )
            if changed:
                return replace(found, signing_secrets=rotated), secret

    def retry_now(self, endpoint_id: str) -> bool:
        """Clear the back-off wait: the next worker to look delivers at once (False if disabled)."""
        with self._connection() as connection:
            return bool(
                connection.count(
                    f"UPDATE {ENDPOINTS} SET next_attempt_at = NULL WHERE endpoint_id = ? "
                    "AND disabled_at IS NULL",
                    (endpoint_id,),
                )
            )

    def deliveries(self, endpoint_id: str, limit: int) -> list[Delivery]:
        """The latest attempts, newest first."""
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERIES} WHERE endpoint_id = ? "
                "ORDER BY seq DESC LIMIT ?",
                (endpoint_id, limit),
            )
        return [_delivery(row) for row in rows]

    # What the worker does.

    def due(self, end: int, now: datetime, limit: int) -> list[str]:
        """Endpoints with events to deliver (below log index `end`), not waiting, not leased."""
        moment = moment_text(now)
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT endpoint_id FROM {ENDPOINTS} WHERE disabled_at IS NULL AND position < ? "
                "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
                "AND (lease_until IS NULL OR lease_until < ?) "
                "ORDER BY position, endpoint_id LIMIT ?",  # the furthest behind first
                (end - 1, moment, moment, limit),
            )
        return [str(endpoint_id) for (endpoint_id,) in rows]

    def next_attempt(self) -> datetime | None:
        """When the soonest waiting endpoint may be tried again."""
        with self._connection() as connection:
            ((found,),) = connection.execute(
                f"SELECT MIN(next_attempt_at) FROM {ENDPOINTS} WHERE disabled_at IS NULL"
            )
        return _moment(found)

    def lease(self, endpoint_id: str, owner: str, until: datetime, now: datetime) -> bool:
        """Take the endpoint for `owner` until `until`, if it is free and not waiting."""
        moment = moment_text(now)
        with self._connection() as connection:
            return bool(
                connection.count(
                    f"UPDATE {ENDPOINTS} SET lease_owner = ?, lease_until = ? WHERE endpoint_id = ? "
                    "AND disabled_at IS NULL AND (lease_until IS NULL OR lease_until < ?) "
                    "AND (next_attempt_at IS NULL OR next_attempt_at <= ?)",
                    (owner, moment_text(until), endpoint_id, moment, moment),
                )
            )

    def release(self, endpoint_id: str, owner: str) -> None:
        with self._connection() as connection:
            connection.execute(
                f"UPDATE {ENDPOINTS} SET lease_owner = NULL, lease_until = NULL "
                "WHERE endpoint_id = ? AND lease_owner = ?",
                (endpoint_id, owner),
            )

    def passed(self, endpoint_id: str, owner: str, position: int, until: datetime) -> bool:
        """The filter let nothing through up to `position`: move on (False if the lease is lost)."""
        with self._connection() as connection:
            return bool(
                connection.count(
                    f"UPDATE {ENDPOINTS} SET position = ?, lease_until = ? WHERE endpoint_id = ? "
                    "AND lease_owner = ? AND disabled_at IS NULL AND position < ?",
                    (position, moment_text(until), endpoint_id, owner, position),
                )
            )

    def delivered(self, delivery: Delivery, owner: str, until: datetime) -> bool:
        """Record a 2xx and move the endpoint's position to it, at once (False if the lease is lost)."""
        with self._connection() as connection, connection.transaction():
            rows = connection.execute(
                f"UPDATE {ENDPOINTS} SET position = ?, attempts = 0, next_attempt_at = NULL, "
                "sent = sent + 1, lease_until = ? WHERE endpoint_id = ? AND lease_owner = ? "
                "AND disabled_at IS NULL RETURNING sent",
                (delivery.log_index, moment_text(until), delivery.endpoint_id, owner),
            )
            if rows:
                self._log(connection, delivery, int(rows[0][0]))
        return bool(rows)

    def failed(self, delivery: Delivery, owner: str, retry_at: datetime) -> bool:
        """Record a failed attempt, wait until `retry_at`, and let go of the endpoint."""
        with self._connection() as connection, connection.transaction():
            rows = connection.execute(
                f"UPDATE {ENDPOINTS} SET attempts = ?, next_attempt_at = ?, sent = sent + 1, "
                "lease_owner = NULL, lease_until = NULL WHERE endpoint_id = ? AND lease_owner = ? "
                "RETURNING sent",
                (delivery.attempt, moment_text(retry_at), delivery.endpoint_id, owner),
            )
            if rows:
                self._log(connection, delivery, int(rows[0][0]))
        return bool(rows)

    def _log(self, connection: ViewConnection, delivery: Delivery, seq: int) -> None:
        connection.execute(
            f"INSERT INTO {DELIVERIES} ({DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                delivery.endpoint_id,
                seq,
                delivery.log_index,
                delivery.webhook_id,
                delivery.attempt,
                moment_text(delivery.attempted_at),
                delivery.status,
                delivery.error,
                delivery.duration_ms,
            ),
        )
        if seq % 100 == 0 and seq > KEEP_DELIVERIES:
            connection.execute(
                f"DELETE FROM {DELIVERIES} WHERE endpoint_id = ? AND seq <= ?",
                (delivery.endpoint_id, seq - KEEP_DELIVERIES),
            )

    def close(self) -> None:
        self._shared.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _moment(text: object) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if isinstance(text, str) and text else None


def _secrets_text(held: Iterable[Secret]) -> str:
    return orjson.dumps(
        [
            {"secret": s.stored, "created_at": moment_text(s.created_at), "expires_at": as_text(s.expires_at)}
            for s in held
        ]
    ).decode()


def _endpoint(row: tuple[object, ...]) -> Endpoint:
    (endpoint_id, owner, url, types, units, held, position, attempts, next_attempt_at, lease_owner,
     lease_until, sent, created_at, disabled_at) = row  # fmt: skip
    created = _moment(created_at)
    assert created is not None
    signing = []
    for item in orjson.loads(str(held)):
        made = _moment(item["created_at"])
        assert made is not None
        signing.append(Secret(item["secret"], made, _moment(item["expires_at"])))
    return Endpoint(
        endpoint_id=str(endpoint_id),
        owner_key_id=str(owner),
        url=str(url),
        event_types=tuple(orjson.loads(str(types))),
        unit_ids=tuple(UUID(u) for u in orjson.loads(str(units))),
        signing_secrets=tuple(signing),
        position=int(str(position)),
        attempts=int(str(attempts)),
        next_attempt_at=_moment(next_attempt_at),
        lease_owner=str(lease_owner) if lease_owner is not None else None,
        lease_until=_moment(lease_until),
        sent=int(str(sent)),
        created_at=created,
        disabled_at=_moment(disabled_at),
    )


def _delivery(row: tuple[object, ...]) -> Delivery:
    endpoint_id, seq, log_index, webhook_id, attempt, attempted_at, status, error, duration_ms = row
    moment = _moment(attempted_at)
    assert moment is not None
    return Delivery(
        endpoint_id=str(endpoint_id),
        seq=int(str(seq)),
        log_index=int(str(log_index)),
        webhook_id=str(webhook_id),
        attempt=int(str(attempt)),
        attempted_at=moment,
        status=int(str(status)) if status is not None else None,
        error=str(error) if error is not None else None,
        duration_ms=int(str(duration_ms)),
    )
