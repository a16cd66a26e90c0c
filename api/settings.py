"""Configuration: one `Settings` object read from DUTYLEDGER_* environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from projections.accountability import LATE_AFTER
from projections.views.cadre_accountability import LATE_RECORD_FLOOR

HOUR = timedelta(hours=1)

DEFAULT_DATABASE_URL = "sqlite:///./var/ledger.sqlite"


class Settings(BaseSettings):
    """Everything an operator can set; every CLI command and the server honour it."""

    model_config = SettingsConfigDict(env_prefix="DUTYLEDGER_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    """`sqlite:///path/to/ledger.sqlite` (default) or `postgresql://user:pass@host:port/db`."""
    host: str = "127.0.0.1"
    port: int = 8000
    views_url: str | None = None
    """Where the views (read models) live; by default in the ledger's own database."""
    identity_url: str | None = None
    """Where petitioners' identities live (names, phones: never in events); default: the ledger's database."""
    late_record_hours: int = Field(LATE_AFTER // HOUR, ge=LATE_RECORD_FLOOR // HOUR)
    """A record made more than this many hours after the fact it records counts as filed late
    in cadre accountability (records over 24 hours late are all kept, so changing it needs no
    rebuild)."""
    read_wait_seconds: float = Field(5.0, ge=0, le=60)
    """How long a query with `min_position` waits for the views before answering 503."""
    max_body_bytes: int = Field(1_000_000, ge=1024)
    """The largest request body accepted (413 beyond)."""
    command_threads: int = Field(8, ge=1, le=256)
    """Commands run at once in each server process, on worker threads of their own; the others
    wait their turn in order. A few suffice to keep the store's single writer busy, and more only
    contend for Python's lock (measured at 32 clients: p99 128–156 ms with 40, 80–108 ms with 6–12)."""
    rate_limit_per_second: float = Field(200.0, ge=0)
    """Requests a second each API key may make on average (0: no limit)."""
    rate_limit_burst: int = Field(400, ge=1)
    """Requests a key may make at once before the average applies."""
    public_url: str = "http://127.0.0.1:8000"
    """Where integrators reach this server: the base of every link it publishes (schemas, next pages)."""
    source: str | None = None
    """The CloudEvents `source` of every event: a URI naming this ledger; default: `public_url`."""
    webhook_timeout_seconds: float = Field(5.0, gt=0, le=60)
    """How long a webhook delivery waits for the receiver's answer before counting as failed."""
    webhook_retry_base_seconds: float = Field(5.0, gt=0)
    """The first retry of a failed delivery waits this long; each next one twice as long (a day at most)."""
    webhook_private_networks: bool = False
    """Let webhook receivers be on loopback, private, link-local or other non-public addresses (a
    single machine, a test bench, an internal network); off, the ledger calls public ones only."""
    webhooks_embedded: bool = True
    """Deliver webhooks from inside the server process; turn off when `dutyledger webhooks run`
    processes do it (several may run: each endpoint is served by one at a time)."""
    webhook_key_path: str = "./var/webhook-secrets.key"
    """The AES-256 key that seals webhook signing secrets in the database (`api.webhooks.sealing`);
    created on first use, mode 0600. Every process sharing a database needs the same file."""
    signing_key_path: str = "./var/ledger-signing.key"
    """The Ed25519 key that signs checkpoints of the Merkle log (created by `dutyledger init`, mode 0600).
    Without it the server signs no checkpoints, and says so at start."""
    log_origin: str = "dutyledger.local/ledger"
    """The log's name: the first line of every checkpoint, and the signing key's name."""
    checkpoint_every_events: int = Field(1000, ge=1)
    """Sign a checkpoint once the log has grown this many events since the last one…"""
    checkpoint_every_seconds: float = Field(60.0, gt=0)
    """…or this many seconds after it, if the log grew at all."""
    embedded_projections: bool = True
    """Keep the views up to date inside the server process (the embedded default); turn off when
    separate `dutyledger projections run` processes do it."""

    @property
    def event_source(self) -> str:
        return self.source or self.public_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
