"""`dutyledger verify`: tampering behind the application's back is found, and named; clients reject it.

Every attack is raw SQL on the ledger's own tables, after dropping the append-only triggers
as someone with rights on the database would. Local mode must name the first altered index;
a client holding an older signed checkpoint must refuse the state signed after the attack,
even once the Merkle view has been rebuilt from the altered events.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import psycopg
import pytest

from api.app import create_app
from api.cli import main
from api.cli.verify import UNENCODABLE, LocalCheck, keys_file, leaf_hash_of, recorded_at
from api.keys import PrincipalKind
from api.settings import Settings
from domain.ledger import Ledger
from domain.storage.commands import LogRow
from projections import build_views
from projections.merkle.checkpoints import Checkpointer, CheckpointStore, create_key_file
from projections.merkle.hashing import leaf_hash
from projections.merkle.leaf import leaf_bytes, recorded_at_of
from projections.merkle.note import Checkpoint, Signer
from projections.merkle.store import NodeReader
from projections.rebuild import rebuild
from projections.runner import Runner
from projections.store import ViewStore
from projections.tracking import live_track
from projections.views.merkle_log import MerkleLogView
from tests.api.live import serving
from tests.support import World

ORIGIN = "test.example/ledger"
DOCS = Path(__file__).resolve().parents[2] / "docs"


# -- the attacker ------------------------------------------------------------------------------------


class Attacker:
    """Raw SQL on `stored_events`, with the append-only triggers dropped first."""

    def __init__(self, database_url: str) -> None:
        self.postgres = database_url.startswith("postgresql")
        if self.postgres:
            parts = urlsplit(database_url)
            self.schema = dict(p.split("=", 1) for p in parts.query.split("&"))["schema"]
            self.pg = psycopg.connect(urlunsplit(parts._replace(query="")), autocommit=True)
            self.pg.execute(f'SET search_path TO "{self.schema}"')
            for trigger in ("stored_events_refuse_change", "stored_events_refuse_truncate"):
                self.pg.execute(f"DROP TRIGGER {trigger} ON stored_events")
            self.position = "notification_id"
        else:
            self.lite = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
            for op in ("update", "delete", "replace"):
                self.lite.execute(f"DROP TRIGGER stored_events_refuse_{op}")
            self.position = "rowid"

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            cursor = self.pg.execute(statement.replace("?", "%s"), params)
            return list(cursor.fetchall()) if cursor.description else []
        return list(self.lite.execute(statement, params).fetchall())

    def row(self, position: int) -> tuple[Any, ...]:
        found = self.sql(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            f"WHERE {self.position} = ?",
            (position,),
        )
        return found[0]

    def change_one_byte(self, position: int) -> None:
        """Change one hex digit of the actor id in the payload (the JSON stays valid)."""
        *_, state = self.row(position)
        state = bytes(state)
        at = state.index(b'"actor_id":"') + len(b'"actor_id":"') + 7
        changed = state[:at] + (b"0" if state[at : at + 1] != b"0" else b"1") + state[at + 1 :]
        self.sql(f"UPDATE stored_events SET state = ? WHERE {self.position} = ?", (changed, position))

    def delete(self, position: int) -> None:
        self.sql(f"DELETE FROM stored_events WHERE {self.position} = ?", (position,))

    def swap(self, first: int, second: int) -> None:
        """Exchange two events: ids, versions, topics and payloads (positions stay)."""
        a, b = self.row(first), self.row(second)
        update = (
            "UPDATE stored_events SET originator_id = ?, originator_version = ?, topic = ?, state = ? "
            f"WHERE {self.position} = ?"
        )
        self.sql(f"UPDATE stored_events SET originator_version = -1 WHERE {self.position} = ?", (first,))
        self.sql(update, (*a, second))
        self.sql(update, (*b, first))

    def insert_before(self, position: int) -> None:
        """Shift the events from `position` on by one, and put a forged event in the gap."""
        shift = 1_000_000_000
        self.sql(f"UPDATE stored_events SET {self.position} = {self.position} + ? WHERE {self.position} >= ?",
                 (shift, position))  # fmt: skip
        self.sql(f"UPDATE stored_events SET {self.position} = {self.position} - ? WHERE {self.position} >= ?",
                 (shift - 1, shift))  # fmt: skip
        _, _, topic, state = self.row(position - 1)
        forged = uuid4()
        self.sql(
            f"INSERT INTO stored_events (originator_id, originator_version, topic, state, {self.position}) "
            "VALUES (?, 1, ?, ?, ?)",
            (forged if self.postgres else forged.hex, topic, state, position),
        )

    def close(self) -> None:
        if self.postgres:
            self.pg.close()
        else:
            self.lite.close()


Attack = Callable[[Attacker, list[LogRow]], int]
"""Tamper with the log; returns the log index the verifier must name first."""


def change_a_byte(attacker: Attacker, rows: list[LogRow]) -> int:
    attacker.change_one_byte(rows[20][0])
    return 20


def delete_an_event(attacker: Attacker, rows: list[LogRow]) -> int:
    attacker.delete(rows[25][0])
    return 25


def swap_two_events(attacker: Attacker, rows: list[LogRow]) -> int:
    attacker.swap(rows[15][0], rows[30][0])
    return 15


def insert_a_forged_event(attacker: Attacker, rows: list[LogRow]) -> int:
    attacker.insert_before(rows[22][0])
    return 22


ATTACKS = {
    "payload byte": (change_a_byte, "its payload differs from what was hashed"),
    "deletion": (delete_an_event, "an event before it went missing (deleted): it was hashed at index 26"),
    "swap": (swap_two_events, "it was hashed at index 30, and the event hashed at index 15"),
    "forged insert": (insert_a_forged_event, "an event was inserted before it"),
}


# -- the ledger under test -----------------------------------------------------------------------------


@dataclass
class Signed:
    """The test world with its Merkle log built and checkpoints signed."""

    world: World
    database_url: str
    key_path: Path
    signer: Signer

    @property
    def ledger_rows(self) -> list[LogRow]:
        return self.world.ledger.command_log.read_log(0, 100_000)

    def build(self) -> None:
        """Bring the Merkle log and the sequencer up to the end of the log."""
        views = build_views(self.world.ledger, ["merkle_log", "event_log"])
        runner = Runner(self.world.ledger, views, ViewStore(self.database_url))
        try:
            runner.catch_up()
        finally:
            runner.close()

    def sign(self, *sizes: int) -> None:
        """Sign checkpoints of these tree sizes (default: the tree as it stands)."""
        store, views = CheckpointStore(self.database_url), ViewStore(self.database_url)
        try:
            if not sizes:
                Checkpointer(store, views, self.signer, 1, 3600).checkpoint(force=True)
                return
            store.add_key(self.signer.verifier)
            connection = views.connect()
            try:
                reader = NodeReader(connection)
                for size in sizes:
                    made = Checkpoint(self.signer.name, size, reader.root(size))
                    store.record(made, self.signer.sign(made.text()), self.signer.verifier)
            finally:
                connection.close()
        finally:
            store.close()

    def add_cases(self, count: int) -> None:
        for _ in range(count):
            self.world.register()


@pytest.fixture
def signed(world: World, database_url: str, tmp_path: Path) -> Signed:
    key_path = tmp_path / "keys" / "signing.key"
    ledger = Signed(world, database_url, key_path, create_key_file(key_path, ORIGIN))
    ledger.add_cases(8)
    ledger.build()
    ledger.sign(10)
    ledger.sign()
    return ledger


def verify(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `dutyledger verify ARGS` in this process: its exit status and everything it printed."""
    try:
        main(["verify", *args])
        status = 0
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    printed = capsys.readouterr()
    return status, printed.out + printed.err


# -- local mode ----------------------------------------------------------------------------------------


def test_an_untouched_log_verifies(signed: Signed, capsys: pytest.CaptureFixture[str]) -> None:
    events = len(signed.ledger_rows)
    status, said = verify("--database-url", signed.database_url, capsys=capsys)
    assert status == 0, said
    assert f"verified {events} events: 2 signed checkpoint(s) check out, {events} leaves match" in said
    store = CheckpointStore(signed.database_url)
    latest = store.latest()
    store.close()
    assert latest is not None
    assert base64.b64encode(latest.checkpoint.root).decode() in said


def test_a_rebuild_of_the_merkle_log_during_a_check_changes_nothing_the_check_reads(
    signed: Signed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check reads the views in one snapshot: the old leaves dropped meanwhile are not missing leaves."""
    events = len(signed.ledger_rows)
    store = ViewStore(signed.database_url)
    watcher = store.connect()
    old = live_track(watcher, "merkle_log")
    assert old is not None
    real_stored_leaves = LocalCheck._stored_leaves
    rebuilding: list[threading.Thread] = []
    other = Ledger(signed.database_url)

    def rebuild_meanwhile(check: LocalCheck, start: int, end: int) -> dict[int, bytes]:
        if not rebuilding:  # at the first page: swap in a new Merkle log and drop the one being read
            rebuilding.append(threading.Thread(target=rebuild, args=(other, MerkleLogView(other), store)))
            rebuilding[0].start()
            # SQLite: the old generation is taken apart and dropped while the check reads it.
            # PostgreSQL: the swap commits; the drop waits for the check's snapshot to end.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                live = live_track(watcher, "merkle_log")
                swapped = live is not None and live.generation != old.generation
                if swapped and (store.dialect == "postgres" or not rebuilding[0].is_alive()):
                    break
                time.sleep(0.01)
        return real_stored_leaves(check, start, end)

    monkeypatch.setattr(LocalCheck, "_stored_leaves", rebuild_meanwhile)
    try:
        status, said = verify("--database-url", signed.database_url, capsys=capsys)
    finally:
        for thread in rebuilding:
            thread.join(timeout=60)
        watcher.close()
        other.close()
    assert rebuilding, "the check never read a page of leaves"
    assert not rebuilding[0].is_alive()
    assert status == 0, said
    assert f"{events} leaves match" in said
    assert "lacks" not in said


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_verify_names_the_first_altered_index(
    signed: Signed, attack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tamper, explanation = ATTACKS[attack]
    rows = signed.ledger_rows
    attacker = Attacker(signed.database_url)
    try:
        first = tamper(attacker, rows)
    finally:
        attacker.close()
    status, said = verify("--database-url", signed.database_url, capsys=capsys)
    assert status == 5, said
    assert f"index {first} is the first that differs from what was hashed" in said
    assert explanation in said
    assert "checkpoint 10 " not in said, "the checkpoint before the altered index still verifies"
    assert f"checkpoint {len(rows)} " in said or f"shorter than checkpoint {len(rows)}" in said


def test_the_report_names_the_event_at_the_divergent_index(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = signed.ledger_rows
    attacker = Attacker(signed.database_url)
    try:
        attacker.swap(rows[15][0], rows[30][0])
    finally:
        attacker.close()
    _, said = verify("--database-url", signed.database_url, capsys=capsys)
    _, was_15, version_15, _, _ = rows[15]
    _, was_30, version_30, topic_30, _ = rows[30]
    assert f"the event there now: {was_30}:{version_30} ({topic_30}, position {rows[15][0]})" in said
    assert f"the event hashed at index 15 ({was_15}:{version_15}) is now at index 30" in said


def test_a_deletion_at_the_end_is_found(signed: Signed, capsys: pytest.CaptureFixture[str]) -> None:
    rows = signed.ledger_rows
    attacker = Attacker(signed.database_url)
    try:
        attacker.delete(rows[-1][0])
    finally:
        attacker.close()
    status, said = verify("--database-url", signed.database_url, capsys=capsys)
    assert status == 5, said
    last = len(rows) - 1
    assert f"index {last} is the first that differs" in said
    assert f"the log is shorter than checkpoint {len(rows)}" in said
    assert f"the event hashed at index {last} was {rows[-1][1]}:{rows[-1][2]}" in said


def test_a_rebuilt_merkle_view_does_not_hide_the_change_from_the_checkpoints(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = signed.ledger_rows
    attacker = Attacker(signed.database_url)
    try:
        attacker.change_one_byte(rows[20][0])
    finally:
        attacker.close()
    main(["projections", "rebuild", "merkle_log", "--database-url", signed.database_url])
    capsys.readouterr()
    status, said = verify("--database-url", signed.database_url, capsys=capsys)
    assert status == 5, said
    assert f"checkpoint {len(rows)} " in said
    assert f"the first altered index is between 10 and {len(rows) - 1}" in said


def test_a_forged_checkpoint_in_the_table_is_found(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CheckpointStore(signed.database_url)
    latest = store.latest()
    assert latest is not None
    impostor = Signer.generate(ORIGIN)
    forged = Checkpoint(ORIGIN, latest.checkpoint.size + 1, latest.checkpoint.root)
    store.record(forged, impostor.sign(forged.text()), impostor.verifier)
    store.close()
    status, said = verify("--database-url", signed.database_url, capsys=capsys)
    assert status == 5, said
    assert f"checkpoint {forged.size} " in said
    assert "no signature on the note verifies with a known key" in said


def test_without_the_merkle_view_only_the_checkpoints_are_checked(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    signed.add_cases(2)  # the view is now behind the log
    status, said = verify("--database-url", signed.database_url, capsys=capsys)
    assert status == 0, said
    assert "the Merkle log view has hashed" in said
    assert "checked against the checkpoints only" in said


def test_the_record_time_is_read_as_stored() -> None:
    payloads = [
        b'{"timestamp":"2026-03-02T01:00:00Z","narrative":"x"}',
        b'{"narrative":"\\"timestamp\\":\\"no\\"","timestamp":"2026-03-02T01:00:00.5+00:00"}',
        b'{"timestamp":"2026-03-02T01:00:00Z","nested":{"timestamp":"other"}}',
        b'{"timestamp":"odd\\u0041","narrative":"x"}',
        b'{"timestamp" : "2026-03-02T01:00:00Z"}',
    ]
    for payload in payloads:
        assert recorded_at(payload) == recorded_at_of(payload), payload
    assert recorded_at(b"not json") is None
    assert recorded_at(b'{"narrative":"x"}') is None


def test_the_verifiers_leaf_hash_is_the_documented_leaf_encoding() -> None:
    aggregate_id = str(uuid4())
    payloads = [
        b'{"timestamp":"2026-03-02T01:00:00Z","narrative":"\xe5\xbb\xba\xe7\xab\x8b"}',
        b'{"narrative":"x","timestamp":"2026-03-02T01:00:00.5+00:00"}',
        b'{"timestamp":"2026-03-02T01:00:00Z","nested":{"timestamp":"other"}}',
    ]
    for index, payload in enumerate(payloads * 3):
        topic = f"dutyledger:Case.Event{index}"
        expected = leaf_bytes(
            index * 1_000_003, aggregate_id, index + 1, topic, recorded_at_of(payload), payload
        )
        assert leaf_hash_of(index * 1_000_003, aggregate_id, index + 1, topic, payload) == leaf_hash(expected)
    with pytest.raises(UNENCODABLE):
        leaf_hash_of(0, aggregate_id, -1, "t", payloads[0])
    with pytest.raises(UNENCODABLE):
        leaf_hash_of(0, "not a uuid", 1, "t", payloads[0])
    with pytest.raises(UNENCODABLE):
        leaf_hash_of(0, aggregate_id, 1, "t", b"{}")


# -- remote mode ---------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    signed: Signed
    app: Any

    def caught_up(self) -> None:
        position = self.signed.world.ledger.recorder.max_notification_id() or 0
        assert self.app.state.reader.reached(position, 10)


@pytest.fixture
def server(signed: Signed) -> Iterator[Server]:
    settings = Settings(
        database_url=signed.database_url,
        rate_limit_per_second=0,
        signing_key_path=str(signed.key_path),
        checkpoint_every_events=1_000_000,
        checkpoint_every_seconds=3600,
    )
    app = create_app(settings, ledger=signed.world.ledger)
    with serving(app) as url:
        yield Server(url, signed, app)


def test_a_client_follows_the_log_checkpoint_by_checkpoint(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "client" / "checkpoint"
    status, said = verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)
    assert status == 0, said
    assert "your first checkpoint of this log (its keys trusted on first use" in said
    assert keys_file(saved).read_text() == server.signed.signer.verifier.text() + "\n"
    first = Checkpoint.verified(saved.read_text(), [server.signed.signer.verifier])[0]

    server.signed.add_cases(3)
    server.caught_up()
    server.signed.sign()
    status, said = verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)
    assert status == 0, said
    assert f"consistent with your checkpoint of {first.size} events" in said
    second = Checkpoint.verified(saved.read_text(), [server.signed.signer.verifier])[0]
    assert second.size > first.size

    status, said = verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)
    assert status == 0, said
    assert f"the same tree as your checkpoint ({second.size} events)" in said


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_client_with_an_older_checkpoint_rejects_a_rewritten_log(
    server: Server, attack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "checkpoint"
    assert verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)[0] == 0
    before = saved.read_text()
    signed = server.signed
    attacker = Attacker(signed.database_url)
    try:
        ATTACKS[attack][0](attacker, signed.ledger_rows)
    finally:
        attacker.close()
    # The attacker covers the tracks: rebuilds the Merkle log from the altered events, lets the
    # log grow, and has the server sign the result with its genuine key.
    main(["projections", "rebuild", "merkle_log", "--database-url", signed.database_url])
    signed.add_cases(2)
    server.caught_up()
    signed.sign()
    capsys.readouterr()
    status, said = verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)
    assert status == 5, said
    assert "the consistency proof from your checkpoint" in said
    assert "does not verify" in said
    assert saved.read_text() == before


def tamper_with_latest(database_url: str, note: str) -> None:
    """Replace the note of the latest checkpoint, as someone with rights on the table could."""
    connection = ViewStore(database_url).connect()
    try:
        with connection.transaction():
            connection.execute(
                "UPDATE ledger_checkpoints SET note = ? "
                "WHERE tree_size = (SELECT MAX(tree_size) FROM ledger_checkpoints)",
                (note,),
            )
    finally:
        connection.close()


def latest_note(database_url: str) -> str:
    store = CheckpointStore(database_url)
    try:
        latest = store.latest()
        assert latest is not None
        return latest.note
    finally:
        store.close()


def bump_size(note: str) -> str:
    origin, size, rest = note.split("\n", 2)
    return f"{origin}\n{int(size) + 1}\n{rest}"


def other_root(note: str) -> str:
    origin, size, root, rest = note.split("\n", 3)
    flipped = base64.b64encode(bytes(b ^ 1 for b in base64.b64decode(root))).decode()
    return f"{origin}\n{size}\n{flipped}\n{rest}"


def signed_by_another_key(note: str) -> str:
    text = note.rpartition("\n\n")[0] + "\n"
    return Signer.generate(ORIGIN).sign(bump_size(text))


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (bump_size, "does not verify with the keys saved"),
        (other_root, "does not verify with the keys saved"),
        (signed_by_another_key, "does not verify with the keys saved"),
    ],
)
def test_a_client_rejects_a_checkpoint_whose_signature_does_not_verify(
    server: Server,
    forge: Callable[[str], str],
    reason: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved = tmp_path / "checkpoint"
    assert verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)[0] == 0
    before = saved.read_text()
    server.signed.add_cases(1)
    server.caught_up()
    server.signed.sign()
    tamper_with_latest(server.signed.database_url, forge(latest_note(server.signed.database_url)))
    status, said = verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)
    assert status == 5, said
    assert reason in said
    assert "no signature on the note verifies with a known key" in said
    assert saved.read_text() == before


def test_a_client_rejects_a_rollback_and_a_fork(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "checkpoint"
    assert verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)[0] == 0
    before = saved.read_text()
    signer = server.signed.signer
    current = Checkpoint.verified(before, [signer.verifier])[0]

    fork = Checkpoint(ORIGIN, current.size, bytes(32))
    tamper_with_latest(server.signed.database_url, signer.sign(fork.text()))
    status, said = verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)
    assert (status, saved.read_text()) == (5, before), said
    assert "the same size" in said
    assert "another root" in said

    connection = ViewStore(server.signed.database_url).connect()
    with connection.transaction():
        connection.execute("DELETE FROM ledger_checkpoints WHERE tree_size = ?", (current.size,))
    connection.close()
    status, said = verify("--remote", server.url, "--checkpoint", str(saved), capsys=capsys)
    assert (status, saved.read_text()) == (5, before), said
    assert "the log was rolled back" in said


def test_a_given_public_key_is_used_and_a_wrong_one_refused(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "checkpoint"
    stranger = Signer.generate(ORIGIN).verifier.text()
    status, said = verify(
        "--remote", server.url, "--checkpoint", str(saved), "--public-key", stranger, capsys=capsys
    )
    assert status == 5, said
    assert not saved.exists()
    assert not keys_file(saved).exists()

    key_file = tmp_path / "log.pub"
    key_file.write_text(server.signed.signer.verifier.text() + "\n")
    status, said = verify(
        "--remote", server.url, "--checkpoint", str(saved), "--public-key", str(key_file), capsys=capsys
    )
    assert status == 0, said
    assert saved.exists()


def test_an_unreachable_server_leaves_the_checkpoint_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    saved = tmp_path / "checkpoint"
    status, said = verify(
        "--remote", f"http://127.0.0.1:{port}", "--checkpoint", str(saved), "--timeout", "2", capsys=capsys
    )
    assert status == 5, said
    assert "could not fetch" in said
    assert not saved.exists()


# -- the documented recipe -----------------------------------------------------------------------------


def test_the_recipe_in_the_docs_is_the_file_that_is_tested() -> None:
    doc = (DOCS / "verify.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    recipe = (DOCS / "verify_recipe.py").read_text(encoding="utf-8")
    assert recipe in blocks, "docs/verify.md must include docs/verify_recipe.py verbatim"
    assert len(recipe.strip().splitlines()) < 50


def recipe(*args: object, token: str) -> subprocess.CompletedProcess[str]:
    """Run docs/verify_recipe.py as a third party would: a plain script, none of our code imported."""
    command = [sys.executable, "-I", str(DOCS / "verify_recipe.py"), *map(str, args)]
    env = {**os.environ, "DUTYLEDGER_TOKEN": token}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=DOCS, env=env)


def test_the_standalone_recipe_verifies_a_live_server(server: Server) -> None:
    signed = server.signed
    old = Checkpoint.verified(latest_note(signed.database_url), [signed.signer.verifier])[0]
    signed.add_cases(2)
    server.caught_up()
    signed.sign()
    new_size = Checkpoint.verified(latest_note(signed.database_url), [signed.signer.verifier])[0].size
    key = signed.signer.verifier.text()
    token = server.app.state.keys.create(PrincipalKind.INTEGRATOR, label="recipe")[1]
    old_root = base64.b64encode(old.root).decode()
    for index, old_size in ((0, old.size), (old.size - 1, old.size), (new_size - 1, 8), (3, new_size)):
        root = old_root if old_size == old.size else _root_of(signed.database_url, old_size)
        done = recipe(server.url, key, index, old_size, root, token=token)
        assert done.returncode == 0, done.stderr
        assert f"event {index} is in the log of {new_size}" in done.stdout
        assert f"consistent with the log of {old_size}" in done.stdout

    wrong = base64.b64encode(bytes(32)).decode()
    refused = recipe(server.url, key, 0, old.size, wrong, token=token)
    assert refused.returncode != 0
    assert "FAILED: consistency" in refused.stderr
    stranger = Signer.generate(ORIGIN).verifier.text()
    refused = recipe(server.url, stranger, 0, old.size, old_root, token=token)
    assert refused.returncode != 0
    assert "FAILED: a checkpoint of KEY's log signed by KEY" in refused.stderr
    refused = recipe(server.url, key, 0, new_size + 1, old_root, token=token)
    assert refused.returncode != 0


def _root_of(database_url: str, size: int) -> str:
    connection = ViewStore(database_url).connect()
    try:
        return base64.b64encode(NodeReader(connection).root(size)).decode()
    finally:
        connection.close()
