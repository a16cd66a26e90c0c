"""`dutyledger verify`: prove the log unaltered, from the stored events (local) or as a client (--remote).

Local mode recomputes the Merkle tree from the stored events in one streaming pass and checks
it against what was committed before: every signed checkpoint (its signature with the keys
the ledger has kept, and the root at its size), and every leaf the `merkle_log` view hashed
when the event was sequenced. The first leaf that differs names the first altered index.

Remote mode is what an integrator or an inspector runs: it fetches the server's latest signed
checkpoint, checks its signature and that the log it commits to extends the checkpoint saved
last time (a consistency proof), and only then saves it. Any failure exits with status 5 and
leaves the saved checkpoint as it was. See docs/verify.md.
"""

from __future__ import annotations

import base64
import os
import struct
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from hashlib import sha256
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import httpx
import typer

from api.cli.common import DatabaseUrlOption, ViewsUrlOption, open_ledger, view_store
from domain.ledger import Ledger
from projections.merkle.checkpoints import CheckpointStore, StoredCheckpoint
from projections.merkle.hashing import CompactRange, ProofError, verify_consistency
from projections.merkle.leaf import PREFIX, recorded_at_of
from projections.merkle.note import Checkpoint, NoteError, Verifier
from projections.merkle.store import MERKLE_NODES
from projections.store import ViewConnection
from projections.tracking import ensure_schema, live_track
from projections.views.event_log import EVENT_LOG
from projections.views.merkle_log import MerkleLogView

TAMPERED = 5
"""The exit status when the log, a checkpoint or a proof does not verify."""
PAGE = 10_000
"""Stored events read at a time."""
WINDOW = 1_000
"""How far past the first divergent index to look for where its events went (swaps, deletions, inserts)."""
SHOWN = 5
"""Failing checkpoints listed one by one; the rest are counted."""
_UNHASHABLE = b"\xff" * 32
"""The leaf hash of an event that cannot be encoded any more: no leaf hashes so (it would take a preimage)."""

_TIMESTAMP = b'{"timestamp":"'
_TIMESTAMP_KEY = b'"timestamp"'


def verify(
    remote: str | None = typer.Option(
        None, "--remote", help="Verify a server as a client: its base URL (e.g. https://ledger.example)."
    ),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="With --remote: the file holding the last checkpoint you verified (created if absent).",
    ),
    public_key: str | None = typer.Option(
        None,
        "--public-key",
        help="With --remote: the log's public key (note verifier key), or a file of them, one a line; "
        "default: the key saved beside the checkpoint, or on first use the server's /ledger/public-keys.",
    ),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="With --remote: seconds per request."),
    database_url: str | None = DatabaseUrlOption,
    views_url: str | None = ViewsUrlOption,
) -> None:
    """Check that no event was altered, removed, inserted or reordered since it was hashed and signed.

    Exits 0 when everything verifies, 5 when something does not (and says what).
    """
    if remote is not None:
        if checkpoint is None:
            raise typer.BadParameter("--remote needs --checkpoint FILE", param_hint="--checkpoint")
        verify_remote(remote, checkpoint, public_key, timeout)
        return
    if checkpoint is not None or public_key is not None:
        raise typer.BadParameter("--checkpoint and --public-key go with --remote", param_hint="--remote")
    started = time.perf_counter()
    with open_ledger(database_url) as ledger:
        store = CheckpointStore(ledger.database_url)
        views = view_store(ledger, views_url).connect()
        try:
            ensure_schema(views)
            # One snapshot of the views for the whole check: a rebuild that swaps in a new Merkle
            # log meanwhile and drops the old one (on SQLite a chunk at a time) changes nothing it
            # reads, so its leaves never look missing half way.
            with views.snapshot():
                report = LocalCheck(ledger, views, store.all(), store.verifiers()).run()
        finally:
            views.close()
            store.close()
    for line in report.notes:
        typer.echo(f"note: {line}")
    if report.problems:
        for line in report.problems:
            typer.echo(f"TAMPERED: {line}")
        typer.echo(
            f"verification FAILED: {len(report.problems)} problem(s) in {report.events} events "
            f"({time.perf_counter() - started:.1f} s)",
            err=True,
        )
        raise SystemExit(TAMPERED)  # not typer.Exit: click returns its status, and main() drops it
    typer.echo(f"verified {report.summary()} ({time.perf_counter() - started:.1f} s)")


# -- local mode --------------------------------------------------------------------------------------


class Event(NamedTuple):
    """A stored event at its log index (its rank in the log)."""

    log_index: int
    position: int
    aggregate_id: str
    version: int
    topic: str
    payload: bytes

    def named(self) -> str:
        return f"{self.aggregate_id}:{self.version} ({self.topic}, position {self.position})"


class Sequenced(NamedTuple):
    """What the sequencer (`event_log` view) recorded at a log index when it was assigned."""

    position: int
    aggregate_id: str
    version: int
    topic: str
    recorded_at: str


def recorded_at(payload: bytes) -> str | None:
    """The payload's `timestamp` as stored, None if it has none (or the payload is not JSON)."""
    found = _recorded_at_bytes(payload)
    return None if found is None else found.decode()


def _recorded_at_bytes(payload: bytes) -> bytes | None:
    """The payload's `timestamp`, UTF-8: a byte search where that is exact, else the payload parsed.

    Stored payloads begin with `{"timestamp":"`: the value runs to the next quote unless it holds
    an escape, and the key is the top-level one unless it occurs twice (a JSON string cannot hold
    an unescaped quote, so `"timestamp"` only ever occurs as a key).
    """
    if payload.startswith(_TIMESTAMP):
        end = payload.find(b'"', len(_TIMESTAMP))
        value = payload[len(_TIMESTAMP) : end]
        if end > 0 and value.isascii() and b"\\" not in value and payload.count(_TIMESTAMP_KEY) == 1:
            return value
    try:
        return recorded_at_of(payload).encode()
    except (ValueError, KeyError, TypeError, AssertionError):
        return None


_HEAD = b"\x00" + PREFIX
_FIXED = struct.Struct(">Q16sQ")
_LENGTH = struct.Struct(">I")
UNENCODABLE = (ValueError, TypeError, OverflowError, struct.error)
"""What encoding a tampered row can raise: an id that is no UUID, a negative version, no timestamp."""


@lru_cache(maxsize=1 << 16)
def _uuid_bytes(text: str) -> bytes:
    return UUID(text).bytes


@lru_cache(maxsize=1 << 10)
def _length_prefixed(topic: str) -> bytes:
    encoded = topic.encode()
    return _LENGTH.pack(len(encoded)) + encoded


def leaf_hash_of(index: int, aggregate_id: str, version: int, topic: str, payload: bytes) -> bytes:
    """SHA-256(0x00 ‖ leaf_bytes(…)) of a stored event, as `projections.merkle.leaf` encodes it, only
    faster (ids and topics cached, one buffer hashed): the verifier's inner loop. ValueError (or another
    of UNENCODABLE) if the event cannot be encoded any more."""
    at = _recorded_at_bytes(payload)
    if at is None:
        raise ValueError("its payload is not JSON with a text `timestamp` any more")
    fixed = _FIXED.pack(index, _uuid_bytes(aggregate_id), version)
    parts = (
        _HEAD,
        fixed,
        _length_prefixed(topic),
        _LENGTH.pack(len(at)),
        at,
        _LENGTH.pack(len(payload)),
        payload,
    )
    return sha256(b"".join(parts)).digest()


def leaf_of(event: Event, index: int | None = None) -> bytes:
    """The leaf hash of the event at its index (or at `index`)."""
    at = event.log_index if index is None else index
    return leaf_hash_of(at, event.aggregate_id, event.version, event.topic, event.payload)


@dataclass
class Report:
    """What a local verification found."""

    events: int = 0
    root: bytes = b""
    checkpoints: int = 0
    compared: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.events} events: {self.checkpoints} signed checkpoint(s) check out, "
            f"{self.compared} leaves match the Merkle log; root {base64.b64encode(self.root).decode()}"
        )


class LocalCheck:
    """One streaming pass over the stored events, against the checkpoints and the stored leaves.

    `views` should be in a snapshot (`ViewConnection.snapshot`) with the tracking table in place.
    """

    def __init__(
        self,
        ledger: Ledger,
        views: ViewConnection,
        checkpoints: Sequence[StoredCheckpoint],
        verifiers: list[Verifier],
    ) -> None:
        self.ledger = ledger
        self.views = views
        self.checkpoints = sorted(checkpoints, key=lambda stored: stored.checkpoint.size)
        self.verifiers = verifiers
        self.report = Report()
        self.unsigned: set[int] = set()
        """The sizes of the checkpoints whose signature does not verify."""
        self.root_failures: list[StoredCheckpoint] = []
        merkle = live_track(views, MerkleLogView.name)
        current = merkle is not None and merkle.schema_version == MerkleLogView.schema_version
        self.leaves = MERKLE_NODES.physical(merkle.generation) if merkle and current else None
        self.tree_size = self._tree_size() if self.leaves else 0
        sequencer = live_track(views, "event_log")
        self.sequenced = EVENT_LOG.physical(sequencer.generation) if sequencer else None

    def run(self) -> Report:
        report = self.report
        self._check_signatures()
        if self.leaves is None:
            report.notes.append("the Merkle log view is not built: only the checkpoints are checked")
        growing = CompactRange()
        pending = [c for c in self.checkpoints if c.checkpoint.size > 0]
        due = pending.pop(0) if pending else None
        divergent: int | None = None
        before = 0  # the position of the event before the one at hand
        missing = 0
        compared = 0
        tree_size = self.tree_size
        while True:
            try:
                rows = self.ledger.command_log.read_log(before, PAGE)
            except ValueError as error:  # e.g. an aggregate id that is no UUID any more (SQLite)
                report.problems.append(
                    f"the stored events after position {before} (index {growing.size} on) cannot be read "
                    f"any more: {error}; the rest of the log is not checked"
                )
                break
            if not rows:
                break
            index = growing.size
            stored = self._stored_leaves(index, index + len(rows)) if divergent is None else {}
            for position, aggregate_id, version, topic, payload in rows:
                try:
                    value = leaf_hash_of(index, aggregate_id, version, topic, payload)
                except UNENCODABLE:
                    value = _UNHASHABLE
                growing.append(value)
                if divergent is None and index < tree_size:
                    held = stored.get(index)
                    if held == value:
                        compared += 1
                    elif held is None:
                        missing += 1
                    else:
                        divergent = index
                        self._diverged(Event(index, position, aggregate_id, version, topic, payload), before)
                index += 1
                if due is not None and index == due.checkpoint.size:
                    self._check_root(due, growing.root())
                    due = pending.pop(0) if pending else None
                before = position
        report.compared = compared
        report.events = growing.size
        report.root = growing.root()
        if due is not None:
            self._shorter([due, *pending])
        if divergent is None and self.tree_size > growing.size:
            self._deleted_at_end(growing.size)
        elif self.leaves is not None and self.tree_size < growing.size:
            report.notes.append(
                f"the Merkle log view has hashed {self.tree_size} of {growing.size} events (it is behind): "
                f"events from index {self.tree_size} on were checked against the checkpoints only"
            )
        if missing:
            report.notes.append(
                f"the Merkle log view lacks {missing} leaves below its size "
                "(`dutyledger projections rebuild merkle_log` rebuilds it)"
            )
        self._narrow_if_unexplained(divergent)
        return report

    # -- the checkpoints -----------------------------------------------------------------------------

    def _check_signatures(self) -> None:
        for stored in self.checkpoints:
            try:
                signed, _ = Checkpoint.verified(stored.note, self.verifiers)
            except NoteError as error:
                self.report.problems.append(
                    f"checkpoint {stored.checkpoint.size} (signed {stored.signed_at}): {error}"
                )
                self.unsigned.add(stored.checkpoint.size)
                continue
            if signed != stored.checkpoint:  # cannot happen: both are read from the note
                self.report.problems.append(f"checkpoint {stored.checkpoint.size}: its note reads otherwise")

    def _check_root(self, stored: StoredCheckpoint, root: bytes) -> None:
        if root == stored.checkpoint.root:
            if stored.checkpoint.size not in self.unsigned:
                self.report.checkpoints += 1
            return
        self.root_failures.append(stored)
        if len(self.root_failures) <= SHOWN:
            self.report.problems.append(
                f"checkpoint {stored.checkpoint.size} (signed {stored.signed_at}): the first "
                f"{stored.checkpoint.size} events now hash to {_b64(root)}, "
                f"the checkpoint signed {_b64(stored.checkpoint.root)}"
            )

    def _shorter(self, unreached: list[StoredCheckpoint]) -> None:
        events = self.report.events
        for stored in unreached:
            self.report.problems.append(
                f"the log is shorter than checkpoint {stored.checkpoint.size} (signed {stored.signed_at}): "
                f"it holds {events} events, the checkpoint signed {stored.checkpoint.size}"
            )

    def _narrow_if_unexplained(self, divergent: int | None) -> None:
        """Checkpoints fail but no leaf said where: name the span from the last good one to the first bad."""
        failures = self.root_failures
        if len(failures) > SHOWN:
            self.report.problems.append(
                f"… and {len(failures) - SHOWN} later checkpoint(s) fail the same way"
            )
        if not failures or divergent is not None:
            return
        bad = failures[0].checkpoint.size
        good = max(
            (
                c.checkpoint.size
                for c in self.checkpoints
                if c.checkpoint.size < bad and c not in failures and c.checkpoint.size <= self.report.events
            ),
            default=0,
        )
        self.report.problems.append(
            f"the first altered index is between {good} and {bad - 1}: the checkpoint of {good or 'no'} "
            f"events verifies, the one of {bad} does not (the Merkle log view was rebuilt from the altered "
            "events, or does not reach that far, so its leaves cannot say which)"
        )

    # -- the leaves ----------------------------------------------------------------------------------

    def _tree_size(self) -> int:
        ((found,),) = self.views.execute(f"SELECT MAX(node_index) FROM {self.leaves} WHERE level = 0")
        return 0 if found is None else int(found) + 1

    def _stored_leaves(self, start: int, end: int) -> dict[int, bytes]:
        if self.leaves is None or start >= self.tree_size:
            return {}
        rows = self.views.execute(
            f"SELECT node_index, hash FROM {self.leaves} "
            "WHERE level = 0 AND node_index >= ? AND node_index < ?",
            (start, end),
        )
        return {int(index): bytes.fromhex(str(value)) for index, value in rows}

    def _sequenced_at(self, index: int) -> Sequenced | None:
        if self.sequenced is None:
            return None
        found = self.views.execute(
            f"SELECT position, aggregate_id, version, topic, recorded_at FROM {self.sequenced} "
            "WHERE log_index = ?",
            (index,),
        )
        if not found:
            return None
        position, aggregate_id, version, topic, at = found[0]
        return Sequenced(int(position), str(aggregate_id), int(version), str(topic), str(at))

    def _diverged(self, event: Event, before: int) -> None:
        """Say what happened at the first index whose leaf differs from the one hashed."""
        i = event.log_index
        rows = self.ledger.command_log.read_log(before, WINDOW + 1)
        ahead = [Event(i + k, *row) for k, row in enumerate(rows)]
        held = self._stored_leaves(i, i + len(ahead))
        moved_here = _first(  # the event now at i was hashed at i + k: k events before it went missing
            k
            for k in range(1, len(ahead))
            if held.get(i + k) is not None and _leaf(event, i + k) == held[i + k]
        )
        moved_away = _first(  # the event hashed at i is now at i + k: k events were put before it
            k for k in range(1, len(ahead)) if held.get(i) is not None and _leaf(ahead[k], i) == held[i]
        )
        sequenced = self._sequenced_at(i)
        heading = (
            f"index {i} is the first that differs from what was hashed; the event there now: {event.named()}"
        )
        if moved_here is not None and moved_here == moved_away:
            other = ahead[moved_here]
            what = (
                f"it was hashed at index {other.log_index}, and the event hashed at index {i} "
                f"({other.aggregate_id}:{other.version}) is now at index {other.log_index}: "
                "the two were swapped"
            )
        elif moved_here is not None:
            gone = f"{moved_here} event(s)" if moved_here > 1 else "an event"
            what = f"{gone} before it went missing (deleted): it was hashed at index {i + moved_here}"
            if sequenced is not None and (sequenced.aggregate_id, sequenced.version) != _identity(event):
                what += (
                    f"; the event at this index was hashed as {sequenced.aggregate_id}:{sequenced.version} "
                    f"({sequenced.topic}, position {sequenced.position})"
                )
        elif moved_away is not None:
            other = ahead[moved_away]
            count = f"{moved_away} events were" if moved_away > 1 else "an event was"
            what = (
                f"{count} inserted before it: the event at this index was hashed as "
                f"{other.aggregate_id}:{other.version}, now at index {other.log_index}; "
                f"{event.aggregate_id}:{event.version} was never hashed (forged or inserted)"
            )
        else:
            what = _changed(event, sequenced)
        self.report.problems.append(f"{heading}; {what}")

    def _deleted_at_end(self, events: int) -> None:
        sequenced = self._sequenced_at(events)
        named = (
            f" (the event hashed at index {events} was {sequenced.aggregate_id}:{sequenced.version}, "
            f"{sequenced.topic}, position {sequenced.position})"
            if sequenced
            else ""
        )
        self.report.problems.append(
            f"index {events} is the first that differs from what was hashed: the Merkle log hashed "
            f"{self.tree_size} events but the log holds only {events}; the events from index {events} on "
            f"are missing (deleted){named}"
        )


def _leaf(event: Event, index: int) -> bytes | None:
    try:
        return leaf_of(event, index)
    except UNENCODABLE:
        return None


def _identity(event: Event) -> tuple[str, int]:
    return event.aggregate_id, event.version


def _changed(event: Event, sequenced: Sequenced | None) -> str:
    """What differs in an event that stayed at its index, from the sequencer's record of it when known."""
    at = recorded_at(event.payload)
    if at is None:
        return "its payload differs from what was hashed: it is no longer JSON with a text `timestamp`"
    if sequenced is None:
        return "its aggregate id, version, topic, record time or payload bytes differ from what was hashed"
    if (sequenced.aggregate_id, sequenced.version) != _identity(event):
        return (
            f"the event at this index was hashed as {sequenced.aggregate_id}:{sequenced.version} "
            f"({sequenced.topic}, position {sequenced.position}): it was replaced"
        )
    if sequenced.topic != event.topic:
        return f"its topic differs from what was hashed ({sequenced.topic!r} then, {event.topic!r} now)"
    if sequenced.recorded_at != at:
        return f"its record time differs from what was hashed ({sequenced.recorded_at!r} then, {at!r} now)"
    return "its payload differs from what was hashed (same aggregate, version, topic and record time)"


def _first(values: Iterable[int]) -> int | None:
    return next(iter(values), None)


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


# -- remote mode -------------------------------------------------------------------------------------


class RemoteFailure(Exception):
    """The server's checkpoint or proof does not verify, or could not be had."""


def keys_file(checkpoint: Path) -> Path:
    """Where the keys trusted for a checkpoint file are kept: beside it."""
    return checkpoint.with_name(checkpoint.name + ".keys")


def verify_remote(url: str, checkpoint: Path, public_key: str | None, timeout: float) -> None:
    """Fetch, verify and save the server's latest checkpoint; exit 5 and keep the file on any failure."""
    try:
        done = _verify_remote(url.rstrip("/"), checkpoint, public_key, timeout)
    except RemoteFailure as failure:
        typer.echo(f"verification FAILED: {failure}; {checkpoint} is unchanged", err=True)
        raise SystemExit(TAMPERED) from None
    typer.echo(done)


def _verify_remote(url: str, checkpoint: Path, public_key: str | None, timeout: float) -> str:
    old_note = _read(checkpoint) if checkpoint.exists() else None
    saved_keys = keys_file(checkpoint)
    with httpx.Client(base_url=url, timeout=timeout, follow_redirects=True) as client:
        if public_key is not None:
            trusted, how = _given_keys(public_key), "the given key"
        elif saved_keys.exists():
            trusted, how = _parse_keys(_read(saved_keys), str(saved_keys)), f"the keys saved in {saved_keys}"
        elif old_note is None:
            listed = _json(_get(client, "/ledger/public-keys"))
            try:
                texts = [*listed["keys"], *([listed["current"]] if listed.get("current") else [])]
            except (KeyError, TypeError, AttributeError):
                raise RemoteFailure("/ledger/public-keys did not list keys") from None
            trusted, how = _parse_keys("\n".join(texts), f"{url}/ledger/public-keys"), "trust on first use"
        else:
            raise RemoteFailure(
                f"{checkpoint} exists but no key is saved beside it ({saved_keys}): pass --public-key"
            )
        note = _get(client, "/ledger/checkpoint").text
        try:
            new, signer = Checkpoint.verified(note, trusted)
        except NoteError as error:
            raise RemoteFailure(
                f"the server's checkpoint does not verify with {how}: {error} (a key rotated since? "
                "pass the new key with --public-key after checking it out of band)"
            ) from None
        told = (
            f"checkpoint of {new.origin}, size {new.size}, root {_b64(new.root)}, signed by {signer.text()}"
        )
        if old_note is None:
            outcome = "your first checkpoint of this log"
            if how == "trust on first use":
                outcome += f" (its keys trusted on first use, kept in {saved_keys})"
        else:
            old = _saved_checkpoint(old_note, checkpoint)
            outcome = _consistent(client, old, new)
    try:
        _save_keys(saved_keys, trusted)
        _write_atomically(checkpoint, note)
    except OSError as error:
        raise RemoteFailure(f"the checkpoint verified but could not be saved: {error}") from None
    return f"verified {told}: {outcome}; saved to {checkpoint}"


def _consistent(client: httpx.Client, old: Checkpoint, new: Checkpoint) -> str:
    """Check that the new checkpoint's tree extends the old one's; what was shown."""
    if new.origin != old.origin:
        raise RemoteFailure(f"the log is {new.origin!r} now, your checkpoint is of {old.origin!r}")
    if new.size < old.size:
        raise RemoteFailure(
            f"the server's checkpoint has {new.size} events, fewer than the {old.size} of yours: "
            "the log was rolled back"
        )
    if new.size == old.size:
        if new.root != old.root:
            raise RemoteFailure(
                f"the server's checkpoint has the same size ({new.size}) as yours but another root: "
                "the log was rewritten (a fork)"
            )
        return f"the same tree as your checkpoint ({old.size} events)"
    if old.size == 0:
        return "your checkpoint was of the empty log"
    answer = _json(_get(client, "/ledger/proofs/consistency", params={"from": old.size, "to": new.size}))
    try:
        proof = [base64.b64decode(value, validate=True) for value in answer["proof"]]
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    except (KeyError, TypeError, ValueError) as error:  # ProofError is a ValueError
        reason = str(error) if isinstance(error, ProofError) else f"a malformed proof ({error})"
        raise RemoteFailure(
            f"the consistency proof from your checkpoint ({old.size} events) to the server's ({new.size}) "
            f"does not verify: {reason}; the log was rewritten since your checkpoint"
        ) from None
    return f"consistent with your checkpoint of {old.size} events"


def _get(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as error:
        raise RemoteFailure(f"could not fetch {path}: {error}") from None
    if response.status_code != 200:
        detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        raise RemoteFailure(f"{path} answered {response.status_code}: {detail}")
    return response


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise RemoteFailure(f"{response.url.path} did not answer JSON") from None


def _given_keys(given: str) -> list[Verifier]:
    path = Path(given)
    if "+" not in given and not path.is_file():
        raise RemoteFailure(f"--public-key: {given!r} is neither a key (<name>+<hash>+<key>) nor a file")
    if path.is_file():
        return _parse_keys(_read(path), str(path))
    return _parse_keys(given, "--public-key")


def _parse_keys(text: str, source: str) -> list[Verifier]:
    try:
        keys = list(dict.fromkeys(Verifier.parse(line) for line in text.splitlines() if line.strip()))
    except NoteError as error:
        raise RemoteFailure(f"{source}: {error}") from None
    if not keys:
        raise RemoteFailure(f"{source} holds no key")
    return keys


def _saved_checkpoint(note: str, checkpoint: Path) -> Checkpoint:
    text, separator, _ = note.rpartition("\n\n")
    try:
        if not separator:
            raise NoteError("not a signed note")
        return Checkpoint.parse(text + "\n")
    except NoteError as error:
        raise RemoteFailure(f"{checkpoint} does not hold a signed checkpoint: {error}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RemoteFailure(f"cannot read {path}: {error}") from None


def _save_keys(path: Path, keys: list[Verifier]) -> None:
    """Remember the keys trusted (merged with those saved before), for the next run."""
    known = _parse_keys(_read(path), str(path)) if path.exists() else []
    merged = [*known, *(key for key in keys if key not in known)]
    if merged != known:
        _write_atomically(path, "".join(key.text() + "\n" for key in merged))


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` all at once: a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
