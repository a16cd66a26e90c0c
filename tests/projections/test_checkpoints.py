"""Signed checkpoints: the note and key formats, signature checks, key files and key rotation.

The formats are those of Go's `golang.org/x/mod/sumdb/note` and C2SP `tlog-checkpoint`; the
example key pair and note of that package's documentation are reproduced here byte for byte
(Ed25519 signatures are deterministic, so signing the same text with the same key must give
the same note), which pins our reading of the format to theirs.
"""

from __future__ import annotations

import base64
import stat
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.settings import Settings, get_settings
from projections import build_views
from projections.merkle.checkpoints import (
    Checkpointer,
    CheckpointStore,
    NoSigningKey,
    create_key_file,
    read_key_file,
)
from projections.merkle.note import DASH, Checkpoint, NoteError, Signer, Verifier, key_hash, open_note
from projections.merkle.store import NodeReader
from projections.runner import Runner
from projections.store import ViewConnection, ViewStore
from tests.support import World

# The example of golang.org/x/mod/sumdb/note's documentation.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ryy"
    + "BwJnAM=\n"
)
ORIGIN = "test.example/ledger"


# -- formats -------------------------------------------------------------------------------------------


def test_the_go_documentation_example_parses_and_verifies() -> None:
    signer, verifier = Signer.parse(GO_SIGNER), Verifier.parse(GO_VERIFIER)
    assert signer.name == verifier.name == "PeterNeumann"
    assert signer.verifier == verifier
    assert verifier.hash.hex() == "c74f20a3"
    assert open_note(GO_NOTE, [verifier]) == (GO_TEXT, verifier)
    assert signer.sign(GO_TEXT) == GO_NOTE


def test_keys_round_trip_through_their_text() -> None:
    signer = Signer.generate(ORIGIN)
    assert Signer.parse(signer.text()) == signer
    assert Verifier.parse(signer.verifier.text()) == signer.verifier
    name, hashed, encoded = signer.verifier.text().split("+", 2)
    assert (name, hashed) == (ORIGIN, key_hash(ORIGIN, signer.verifier.public).hex())
    assert base64.b64decode(encoded) == b"\x01" + signer.verifier.public
    assert signer.text().startswith(f"PRIVATE+KEY+{ORIGIN}+{hashed}+")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key hash
        "PeterNeumann+c74f20a3+AhpcCQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm 2
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # a space in the name
        "PeterNeumann+c74f20a3+not base64!",
    ],
)
def test_malformed_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(text)


def test_a_checkpoint_note_has_the_c2sp_shape() -> None:
    signer = Signer.generate(ORIGIN)
    root = bytes(range(32))
    note = signer.sign(Checkpoint(ORIGIN, 1234, root).text())
    text, signature = note.split("\n\n")
    assert text == f"{ORIGIN}\n1234\n{base64.b64encode(root).decode()}"
    dash, name, encoded = signature.rstrip("\n").split(" ")
    assert (dash, name) == (DASH, ORIGIN)
    raw = base64.b64decode(encoded)
    assert raw[:4] == signer.verifier.hash
    assert len(raw) == 4 + 64
    assert Checkpoint.verified(note, [signer.verifier]) == (Checkpoint(ORIGIN, 1234, root), signer.verifier)


def test_a_note_with_extension_lines_and_several_signatures_verifies() -> None:
    ours, theirs = Signer.generate(ORIGIN), Signer.generate("witness.example/w1")
    text = f"{ORIGIN}\n7\n{base64.b64encode(bytes(32)).decode()}\nextension line\n"
    note = ours.sign(text)
    cosigned = note + theirs.sign(text).split("\n\n")[1]
    assert Checkpoint.verified(cosigned, [ours.verifier]) == (Checkpoint(ORIGIN, 7, bytes(32)), ours.verifier)
    _, who = open_note(cosigned, [theirs.verifier])
    assert who == theirs.verifier


# -- signature checks ----------------------------------------------------------------------------------


def _forged_size(note: str) -> str:
    origin, size, rest = note.split("\n", 2)
    return f"{origin}\n{int(size) + 1}\n{rest}"


def _forged_root(note: str) -> str:
    origin, size, _, rest = note.split("\n", 3)
    return f"{origin}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n{rest}"


SIGNER, IMPOSTOR = Signer.generate(ORIGIN), Signer.generate(ORIGIN)
NOTE = SIGNER.sign(Checkpoint(ORIGIN, 10, bytes(range(32))).text())
FORGERIES = {
    "another key": IMPOSTOR.sign(Checkpoint(ORIGIN, 10, bytes(range(32))).text()),
    "tree size": _forged_size(NOTE),
    "root": _forged_root(NOTE),
    "origin": NOTE.replace(ORIGIN, "other.example/ledger", 1),
    "signature": NOTE[:-6] + ("A" if NOTE[-6] != "A" else "B") + NOTE[-5:],
    "no signature": NOTE.split("\n\n")[0] + "\n\n",
}


def test_the_genuine_checkpoint_verifies() -> None:
    assert Checkpoint.verified(NOTE, [IMPOSTOR.verifier, SIGNER.verifier]) == (
        Checkpoint(ORIGIN, 10, bytes(range(32))),
        SIGNER.verifier,
    )


@pytest.mark.parametrize("forged", list(FORGERIES))
def test_a_checkpoint_signed_with_another_key_or_altered_fails(forged: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.verified(FORGERIES[forged], [SIGNER.verifier])


def test_the_origin_must_be_the_signers_name() -> None:
    signer = Signer.generate(ORIGIN)
    note = signer.sign(Checkpoint("other.example/ledger", 3, bytes(32)).text())
    with pytest.raises(NoteError, match="not its signer's name"):
        Checkpoint.verified(note, [signer.verifier])


# -- key files and rotation ----------------------------------------------------------------------------


def test_a_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "var" / "signing.key"
    signer = create_key_file(path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == signer
    with pytest.raises(FileExistsError):
        create_key_file(path, ORIGIN)
    assert read_key_file(path) == signer
    path.write_text("PRIVATE+KEY+garbage\n")
    with pytest.raises(NoSigningKey):
        read_key_file(path)


def _build(world: World, database_url: str) -> None:
    runner = Runner(world.ledger, build_views(world.ledger, ["merkle_log"]), ViewStore(database_url))
    try:
        runner.catch_up()
    finally:
        runner.close()


def _sign(database_url: str, signer: Signer) -> None:
    store = CheckpointStore(database_url)
    try:
        assert Checkpointer(store, ViewStore(database_url), signer, 1, 3600).checkpoint(force=True)
    finally:
        store.close()


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        status = 0
    except SystemExit as exit_:
        status = int(exit_.code or 0)
    said = capsys.readouterr()
    return status, said.out + said.err


def test_rotation_keeps_old_checkpoints_verifiable_and_signs_with_the_new_key(
    world: World,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "keys" / "ledger.key"
    monkeypatch.setenv("DUTYLEDGER_SIGNING_KEY_PATH", str(path))
    monkeypatch.setenv("DUTYLEDGER_LOG_ORIGIN", ORIGIN)
    get_settings.cache_clear()
    try:
        old = create_key_file(path, ORIGIN)
        _build(world, database_url)
        _sign(database_url, old)

        status, said = _cli(capsys, "signing-key", "rotate", "--database-url", database_url)
        assert status == 0, said
        new = read_key_file(path)
        assert new != old
        assert new.name == old.name == ORIGIN
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        (retired,) = path.parent.glob("ledger.key.retired-*")
        assert read_key_file(retired) == old
        assert stat.S_IMODE(retired.stat().st_mode) == 0o600
        assert f"new signing key {new.verifier.text()}" in said
        assert sorted(p.name for p in path.parent.iterdir()) == sorted(["ledger.key", retired.name])

        world.register()
        _build(world, database_url)
        _sign(database_url, new)
        store = CheckpointStore(database_url)
        try:
            assert store.verifiers() == [old.verifier, new.verifier]
            first, second = store.all()
            assert Checkpoint.verified(first.note, store.verifiers())[1] == old.verifier
            assert Checkpoint.verified(second.note, store.verifiers())[1] == new.verifier
            with pytest.raises(NoteError):
                Checkpoint.verified(first.note, [new.verifier])
        finally:
            store.close()

        status, said = _cli(capsys, "verify", "--database-url", database_url)
        assert status == 0, said
        assert "2 signed checkpoint(s) check out" in said

        status, said = _cli(capsys, "signing-key", "show", "--database-url", database_url)
        assert status == 0, said
        assert f"current: {new.verifier.text()}" in said
        assert f"earlier: {old.verifier.text()}" in said

        settings = Settings(database_url=database_url, signing_key_path=str(path), rate_limit_per_second=0)
        with TestClient(create_app(settings, ledger=world.ledger)) as client:
            keys = client.get("/ledger/public-keys").json()
            assert keys == {
                "current": new.verifier.text(),
                "keys": [old.verifier.text(), new.verifier.text()],
            }
            assert client.get("/ledger/public-key").text == new.verifier.text() + "\n"
    finally:
        get_settings.cache_clear()


def test_rotation_without_a_key_fails_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys" / "missing.key"
    monkeypatch.setenv("DUTYLEDGER_SIGNING_KEY_PATH", str(path))
    get_settings.cache_clear()
    try:
        status, said = _cli(
            capsys, "signing-key", "rotate", "--database-url", f"sqlite:///{tmp_path}/l.sqlite"
        )
    finally:
        get_settings.cache_clear()
    assert status == 2, said
    assert "no usable signing key" in said
    assert not path.parent.exists()


class CountingViews(ViewStore):
    """A view store that counts the connections it opens."""

    opened = 0

    def connect(self) -> ViewConnection:
        self.opened += 1
        return super().connect()


def test_a_running_checkpointer_looks_after_each_batch_on_one_connection_and_still_signs(
    world: World, database_url: str
) -> None:
    _build(world, database_url)
    store, views = CheckpointStore(database_url), CountingViews(database_url)
    checkpointer = Checkpointer(store, views, Signer.generate("test.example/log"), 1, 3600).start()
    try:
        for _ in range(20):
            checkpointer.wake()
            time.sleep(0.01)
        deadline = time.monotonic() + 10
        while store.latest() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        checkpointer.stop()
    signed = store.latest()
    store.close()
    connection = ViewStore(database_url).connect()
    size = NodeReader(connection).size()
    connection.close()
    assert signed is not None
    assert signed.checkpoint.size == size > 0
    assert views.opened == 1
