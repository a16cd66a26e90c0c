"""Signed checkpoints of the Merkle log: the signing key's file, the table of checkpoints, the checkpointer.

Checkpoints and the public keys that signed them live in the ledger's database, apart from
the views: a rebuild of `merkle_log` never touches them, so a tree rebuilt from altered
events no longer matches what was signed before (`dutyledger verify` says where). Rotating
the key keeps every earlier public key, so old checkpoints stay verifiable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from projections.merkle.note import Checkpoint, Signer, Verifier
from projections.merkle.store import NodeReader
from projections.store import ViewConnection, ViewStore

log = logging.getLogger(__name__)

CHECKPOINTS = "ledger_checkpoints"
SIGNING_KEYS = "ledger_signing_keys"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (tree_size BIGINT PRIMARY KEY, root TEXT NOT NULL, "
    "key_hash TEXT NOT NULL, note TEXT NOT NULL, signed_at TEXT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {SIGNING_KEYS} (key_hash TEXT PRIMARY KEY, verifier TEXT NOT NULL, "
    "created_at TEXT NOT NULL)",
)


class NoSigningKey(Exception):
    """The signing key's file is missing or unreadable."""


def create_key_file(path: Path, name: str) -> Signer:
    """A new signing key at `path`, readable by its owner only; FileExistsError if there is one.

    The key is written whole to a private temporary file, then linked into place, so another
    process never reads a half-written key, and of two processes creating it at once one wins.
    """
    signer = Signer.generate(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(signer.text() + "\n")
        os.link(draft, path)
    finally:
        draft.unlink()
    return signer


def read_key_file(path: Path) -> Signer:
    try:
        return Signer.parse(path.read_text())
    except (OSError, ValueError) as error:
        raise NoSigningKey(f"no usable signing key at {path}: {error}") from None


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as kept: what it commits to, and the signed note itself."""

    checkpoint: Checkpoint
    note: str
    key_hash: str
    signed_at: str


class CheckpointStore:
    """The checkpoints signed so far and every public key that signed one, in the ledger's database."""

    def __init__(self, database_url: str) -> None:
        self.store = ViewStore(database_url)
        self._connection: ViewConnection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> ViewConnection:
        if self._connection is None:
            self._connection = self.store.connect()
            with self._connection.schema_change():
                for statement in SCHEMA:
                    self._connection.execute(statement)
        return self._connection

    def add_key(self, verifier: Verifier) -> None:
        """Remember a public key (once): checkpoints it signs stay verifiable after a rotation."""
        with self._lock:
            connection = self._connect()
            with connection.transaction():
                connection.execute(
                    f"INSERT INTO {SIGNING_KEYS} (key_hash, verifier, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (key_hash) DO NOTHING",
                    (verifier.hash.hex(), verifier.text(), datetime.now(UTC).isoformat()),
                )

    def verifiers(self) -> list[Verifier]:
        """Every public key that has signed for this ledger, oldest first."""
        with self._lock:
            rows = self._connect().execute(f"SELECT verifier FROM {SIGNING_KEYS} ORDER BY created_at")
        return [Verifier.parse(str(text)) for (text,) in rows]

    def record(self, checkpoint: Checkpoint, note: str, verifier: Verifier) -> None:
        with self._lock:
            connection = self._connect()
            with connection.transaction():
                connection.execute(
                    f"INSERT INTO {CHECKPOINTS} (tree_size, root, key_hash, note, signed_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                    (
                        checkpoint.size,
                        checkpoint.root.hex(),
                        verifier.hash.hex(),
                        note,
                        datetime.now(UTC).isoformat(),
                    ),
                )

    def latest(self) -> StoredCheckpoint | None:
        found = self._select("ORDER BY tree_size DESC LIMIT 1")
        return found[0] if found else None

    def of_size(self, size: int) -> StoredCheckpoint | None:
        """The checkpoint of a tree of `size` leaves, if one was signed."""
        found = self._select("WHERE tree_size = ?", (size,))
        return found[0] if found else None

    def all(self) -> list[StoredCheckpoint]:
        """Every checkpoint, smallest tree first."""
        return self._select("ORDER BY tree_size")

    def _select(self, tail: str, params: tuple[object, ...] = ()) -> list[StoredCheckpoint]:
        with self._lock:
            rows = self._connect().execute(
                f"SELECT note, key_hash, signed_at FROM {CHECKPOINTS} {tail}", params
            )
        return [
            StoredCheckpoint(Checkpoint.parse(_text_of(str(note))), str(note), str(hashed), str(at))
            for note, hashed, at in rows
        ]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _text_of(note: str) -> str:
    """The text a signed note signs (what precedes its blank line)."""
    return note.rpartition("\n\n")[0] + "\n"


class Checkpointer:
    """Signs a checkpoint of the Merkle log every `every_events` events or `every_seconds`, the sooner."""

    def __init__(
        self,
        checkpoints: CheckpointStore,
        views: ViewStore,
        signer: Signer,
        every_events: int,
        every_seconds: float,
    ) -> None:
        self.checkpoints = checkpoints
        self.views = views
        self.signer = signer
        self.every_events = every_events
        self.every_seconds = every_seconds
        checkpoints.add_key(signer.verifier)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_signed = time.monotonic()

    def checkpoint(self, force: bool = False) -> StoredCheckpoint | None:
        """Sign the tree as it stands if it grew enough, or long enough ago (any growth, if `force`)."""
        connection = self.views.connect()
        try:
            return self._checkpoint(connection, force)
        finally:
            connection.close()

    def _checkpoint(self, connection: ViewConnection, force: bool = False) -> StoredCheckpoint | None:
        reader = NodeReader(connection)
        size = reader.size()
        latest = self.checkpoints.latest()
        signed = latest.checkpoint.size if latest else 0
        due = size - signed >= self.every_events or time.monotonic() - self._last_signed >= self.every_seconds
        if size <= signed or not (force or due):
            return None
        made = Checkpoint(self.signer.name, size, reader.root(size))
        note = self.signer.sign(made.text())
        self.checkpoints.record(made, note, self.signer.verifier)
        self._last_signed = time.monotonic()
        return self.checkpoints.latest()

    def wake(self) -> None:
        """The log moved (callable from any thread)."""
        self._wake.set()

    def start(self) -> Checkpointer:
        self._thread = threading.Thread(target=self._run, name="dutyledger-checkpoints", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        """Look after every batch the views apply, on one connection kept for this thread.

        The thread is woken after each batch, and looking costs a query or two; opening a
        connection for each look cost a hundred times that (SQLite reads the schema again).
        """
        connection: ViewConnection | None = None
        try:
            while not self._stop.is_set():
                try:
                    connection = connection or self.views.connect()
                    self._checkpoint(connection)
                except Exception:
                    log.exception("signing a checkpoint failed; trying again")
                    if connection is not None:
                        with contextlib.suppress(Exception):  # it may be what failed: open another
                            connection.close()
                        connection = None
                self._wake.wait(min(self.every_seconds, 5.0))
                self._wake.clear()
        finally:
            if connection is not None:
                connection.close()
