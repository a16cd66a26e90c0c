"""Evidence a third party can check offline: case dossiers with proofs, event proofs, the /ledger routes.

Every proof is checked as a client would: the checkpoint's signature with a key from
`/ledger/public-keys`, the leaf hash from the leaf bytes, the audit path to the signed root,
and the leaf's own fields (decoded here from the documented encoding, not with our encoder)
against what the API shows.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import PrincipalKind
from api.settings import Settings
from projections.merkle.checkpoints import create_key_file
from projections.merkle.hashing import verify_consistency, verify_inclusion
from projections.merkle.note import Checkpoint, Verifier
from tests.api.conftest import Api
from tests.api.test_queries import accused_case
from tests.support import World

ORIGIN = "dutyledger.test/ledger"
ADMIN: dict[str, Any] = {"cadre": "admin", "kind": PrincipalKind.ADMINISTRATOR}
PROBLEM = "application/problem+json"
EVIDENCE = {"sha256": "ab" * 32, "media_type": "image/jpeg", "name": "现场照片"}


def settings(database_url: str, key: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url,
        rate_limit_per_second=0,
        read_wait_seconds=2,
        signing_key_path=str(key),
        **extra,
    )


@pytest.fixture
def signed(world: World, database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API over the test world, signing a checkpoint after every event."""
    create_key_file(tmp_path / "k", ORIGIN)
    configured = settings(database_url, tmp_path / "k", checkpoint_every_events=1)
    with TestClient(create_app(configured, ledger=world.ledger)) as client:
        yield Api(client, world)


@pytest.fixture
def unsigned(world: World, database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API over the test world with no signing key (whatever ./var holds)."""
    with TestClient(create_app(settings(database_url, tmp_path / "none"), ledger=world.ledger)) as client:
        yield Api(client, world)


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def caught_up(api: Api) -> int:
    """Wait until the views have applied every saved event; the log's length."""
    reader = api.client.app.state.reader  # type: ignore[attr-defined]
    assert reader.reached(api.positions(), 10)
    return int(api.client.app.state.public_log.length())  # type: ignore[attr-defined]


def verifiers(api: Api) -> list[Verifier]:
    keys = api.client.get("/ledger/public-keys")
    assert keys.status_code == 200, keys.text
    return [Verifier.parse(text) for text in keys.json()["keys"]]


def signed_through(api: Api, size: int) -> tuple[Checkpoint, str]:
    """Wait for a checkpoint of at least `size` events; it (signature verified) and its note."""
    deadline = time.monotonic() + 10
    while True:
        answer = api.client.get("/ledger/checkpoint")
        if answer.status_code == 200:
            checkpoint, _ = Checkpoint.verified(answer.text, verifiers(api))
            if checkpoint.size >= size:
                return checkpoint, answer.text
        assert time.monotonic() < deadline, f"no checkpoint of {size} events was signed: {answer.text}"
        time.sleep(0.02)


def settled(api: Api) -> tuple[Checkpoint, str]:
    """Views caught up and the whole log signed."""
    return signed_through(api, caught_up(api))


def decoded(leaf: bytes) -> dict[str, Any]:
    """The leaf's fields, read by the encoding docs/verify.md documents."""
    prefix = b"dutyledger-leaf-v1\n"
    assert leaf.startswith(prefix)
    index, aggregate, version = struct.unpack_from(">Q16sQ", leaf, len(prefix))
    at = len(prefix) + 32
    parts = []
    for _ in range(3):
        (length,) = struct.unpack_from(">I", leaf, at)
        parts.append(leaf[at + 4 : at + 4 + length])
        at += 4 + length
    assert at == len(leaf)
    topic, recorded_at, payload = parts
    return {
        "index": index,
        "aggregate_id": UUID(bytes=aggregate),
        "version": version,
        "topic": topic.decode(),
        "recorded_at": recorded_at.decode(),
        "payload": orjson.loads(payload),
    }


def verified_leaf(index: int, checkpoint: Checkpoint, leaf: str, leaf_hash: str, proof: list[str]) -> bytes:
    """Check one leaf's inclusion in the signed tree as a client would; the leaf bytes."""
    data, hashed = b64(leaf), b64(leaf_hash)
    assert hashlib.sha256(b"\x00" + data).digest() == hashed
    verify_inclusion(index, checkpoint.size, hashed, [b64(h) for h in proof], checkpoint.root)
    return data


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = answer.json()
    return body


def some_history(api: Api) -> UUID:
    """A case registered with evidence, accepted, with an action on record."""
    case_id = api.register(evidence=[EVIDENCE])
    for path, body in (("accept", {}), ("actions", {"kind": "visit"})):
        answer = api.post(f"/cases/{case_id}/{path}", {"narrative": "办理", **body}, "township_clerk")
        assert answer.status_code == 200, answer.text
    return case_id


# Case dossiers


def test_a_dossier_proves_every_event_of_the_case_against_one_signed_checkpoint(signed: Api) -> None:
    case_id = some_history(signed)
    signed.register()  # another case, interleaved in the log
    settled(signed)
    answer = signed.get(f"/cases/{case_id}/timeline", "township_clerk", proof="true")
    assert answer.status_code == 200, answer.text
    dossier = answer.json()
    checkpoint, key = Checkpoint.verified(dossier["checkpoint"], verifiers(signed))
    assert key.name == ORIGIN
    assert (dossier["tree_size"], b64(dossier["root"])) == (checkpoint.size, checkpoint.root)
    assert dossier["case_id"] == str(case_id)

    plain = signed.get(f"/cases/{case_id}/timeline", "township_clerk").json()
    events = dossier["events"]
    assert [{k: v for k, v in e.items() if k not in ("log_index", "inclusion")} for e in events] == plain
    assert [e["version"] for e in events] == [1, 2, 3]
    for event in events:
        inclusion = event["inclusion"]
        assert inclusion is not None, event
        leaf = decoded(verified_leaf(event["log_index"], checkpoint, **inclusion))
        assert leaf["index"] == event["log_index"]
        assert (leaf["aggregate_id"], leaf["version"]) == (case_id, event["version"])
        assert leaf["topic"].endswith("." + event["type"])
        assert leaf["payload"]["narrative"] == event["narrative"]
        assert leaf["payload"]["timestamp"] == leaf["recorded_at"]
        assert leaf["payload"].get("evidence", []) == event["evidence"]
        feed = signed.get(f"/events/{event['log_index']}", **ADMIN).json()  # the log index is the feed's
        assert (feed["subject"], feed["aggregateversion"]) == (str(case_id), event["version"])


def test_an_accused_reader_gets_no_proof_of_what_the_timeline_withholds_from_them(signed: Api) -> None:
    case_id = accused_case(signed)
    petitioner = signed.get(f"/cases/{case_id}", "county_clerk", min_position=signed.positions())
    petitioner_id = petitioner.json()["petitioner_id"]
    accepted = signed.post(f"/cases/{case_id}/accept", {"narrative": "受理"}, "county_clerk")
    assert accepted.status_code == 200, accepted.text
    settled(signed)

    bystander = signed.get(f"/cases/{case_id}/timeline", "county_clerk", proof="true").json()
    assert all(e["inclusion"] is not None for e in bystander["events"])
    registered = decoded(b64(bystander["events"][0]["inclusion"]["leaf"]))
    assert registered["payload"]["petitioner_id"] == petitioner_id

    answer = signed.get(f"/cases/{case_id}/timeline", "county_leader", proof="true")
    assert answer.status_code == 200, answer.text
    assert petitioner_id not in answer.text
    dossier = answer.json()
    checkpoint, _ = Checkpoint.verified(dossier["checkpoint"], verifiers(signed))
    first, *rest = dossier["events"]
    assert first["type"] == "Registered"
    assert "petitioner_id" not in first["details"]
    assert first["inclusion"] is None  # its stored bytes hold the petitioner's id
    assert first["log_index"] == bystander["events"][0]["log_index"]
    assert rest
    assert all(e["inclusion"] is not None for e in rest)
    for event in rest:
        leaf = verified_leaf(event["log_index"], checkpoint, **event["inclusion"])
        assert petitioner_id.encode() not in leaf


def test_without_a_signing_key_a_dossier_is_503_saying_no_checkpoint_will_come(unsigned: Api) -> None:
    api = unsigned
    case_id = api.register()
    caught_up(api)
    body = problem(api.get(f"/cases/{case_id}/timeline", "township_clerk", proof="true"), 503)
    assert body["type"].endswith(":no-signing-key")  # not views-not-caught-up: no wait will help
    assert "no signing key" in body["detail"]
    assert "dutyledger init" in body["detail"]
    answer = api.get(f"/cases/{case_id}/timeline", "township_clerk", proof="true")
    assert "Retry-After" not in answer.headers
    assert api.get(f"/cases/{case_id}/timeline", "township_clerk").status_code == 200  # no proof asked


def test_a_dossier_is_503_with_retry_after_until_a_checkpoint_covers_the_cases_latest_event(
    world: World, database_url: str, tmp_path: Path
) -> None:
    create_key_file(tmp_path / "k", ORIGIN)
    configured = settings(
        database_url, tmp_path / "k", checkpoint_every_events=100_000, checkpoint_every_seconds=3600
    )
    with TestClient(create_app(configured, ledger=world.ledger)) as client:
        api = Api(client, world)
        case_id = api.register()
        length = caught_up(api)
        answer = api.get(f"/cases/{case_id}/timeline", "township_clerk", proof="true")
        body = problem(answer, 503)
        assert answer.headers["Retry-After"] == "60"
        assert "no signed checkpoint covers log index" in body["detail"]
        assert body["context"]["log_index"] == length - 1
        assert "no checkpoint has been signed yet" in body["detail"]
        assert problem(api.get(f"/events/{length - 1}/proof", **ADMIN), 503)["context"]["log_index"] == (
            length - 1
        )


def test_a_dossier_keeps_the_timelines_scope(signed: Api) -> None:
    case_id = signed.register()
    settled(signed)
    problem(signed.get(f"/cases/{case_id}/timeline", "henan_clerk", proof="true"), 403)
    problem(signed.get(f"/cases/{UUID(int=7)}/timeline", "township_clerk", proof="true"), 404)


# One event's proof


def integrator(api: Api, types: tuple[str, ...] = ()) -> dict[str, str]:
    _, token = api.keys.create(PrincipalKind.INTEGRATOR, event_types=types, label="proof test")
    return {"Authorization": f"Bearer {token}"}


def test_an_events_proof_verifies_against_the_latest_signed_checkpoint(signed: Api) -> None:
    some_history(signed)
    length = caught_up(signed)
    latest, note = signed_through(signed, length)
    headers = integrator(signed)
    for index in (0, length // 2, length - 1):
        answer = signed.client.get(f"/events/{index}/proof", headers=headers)
        assert answer.status_code == 200, answer.text
        proof = answer.json()
        assert (proof["index"], proof["tree_size"], proof["checkpoint"]) == (index, latest.size, note)
        assert b64(proof["root"]) == latest.root
        leaf = decoded(verified_leaf(index, latest, proof["leaf"], proof["leaf_hash"], proof["proof"]))
        event = signed.client.get(f"/events/{index}", headers=headers).json()
        assert (str(leaf["aggregate_id"]), leaf["version"]) == (event["subject"], event["aggregateversion"])


def test_an_events_proof_is_read_with_the_keys_that_read_the_event(signed: Api) -> None:
    some_history(signed)
    length = caught_up(signed)
    signed_through(signed, length)
    registered = next(
        i
        for i in range(length)
        if signed.get(f"/events/{i}", **ADMIN).json()["type"] == "cn.petition.case.registered.v1"
    )
    cases_only = integrator(signed, ("cn.petition.case.registered.v1",))
    assert signed.client.get(f"/events/{registered}/proof", headers=cases_only).status_code == 200
    problem(signed.client.get(f"/events/{registered - 1}/proof", headers=cases_only), 403)
    assert signed.get(f"/events/{registered}/proof", **ADMIN).status_code == 200
    problem(signed.get(f"/events/{registered}/proof", "township_clerk"), 403)  # a cadre's key
    problem(signed.client.get(f"/events/{registered}/proof"), 401)
    problem(signed.get(f"/events/{length + 5}/proof", **ADMIN), 404)
    problem(signed.get("/events/-1/proof", **ADMIN), 422)


# The /ledger routes


def test_before_any_checkpoint_the_checkpoint_and_default_proofs_are_404(unsigned: Api) -> None:
    api = unsigned
    api.register()
    caught_up(api)
    for path in ("/ledger/checkpoint", "/ledger/proofs/inclusion?index=0", "/ledger/public-key"):
        problem(api.client.get(path), 404)
    assert api.client.get("/ledger/public-keys").json() == {"current": None, "keys": []}


def test_a_checkpoint_is_signed_once_events_exist_and_verifies_with_the_published_key(signed: Api) -> None:
    length = caught_up(signed)
    assert length > 0  # the world's own events
    checkpoint, note = signed_through(signed, length)
    assert (checkpoint.origin, checkpoint.size) == (ORIGIN, length)
    keys = signed.client.get("/ledger/public-keys").json()
    assert signed.client.get("/ledger/public-key").text.strip() == keys["current"] == keys["keys"][-1]
    assert note.startswith(f"{ORIGIN}\n{length}\n")


def test_every_index_of_a_small_ledger_has_an_inclusion_proof_that_verifies(signed: Api) -> None:
    some_history(signed)
    checkpoint, note = settled(signed)
    feed = {"Authorization": f"Bearer {signed.keys.create(PrincipalKind.INTEGRATOR, label='proofs')[1]}"}
    for index in range(checkpoint.size):
        answer = signed.client.get(
            "/ledger/proofs/inclusion", params={"index": index, "tree_size": checkpoint.size}, headers=feed
        )
        assert answer.status_code == 200, answer.text
        proof = answer.json()
        assert (b64(proof["root"]), proof["checkpoint"]) == (checkpoint.root, note)
        leaf = verified_leaf(index, checkpoint, proof["leaf"], proof["leaf_hash"], proof["proof"])
        assert decoded(leaf)["index"] == index
    latest = signed.client.get("/ledger/proofs/inclusion", params={"index": 0}).json()
    assert latest["tree_size"] >= checkpoint.size  # the latest checkpoint's tree by default


def test_a_public_inclusion_proof_withholds_the_event_itself(signed: Api) -> None:
    """Hashes are public; the leaf bytes are the event, for a key that may read it in the feed only."""
    some_history(signed)
    checkpoint, _ = settled(signed)
    public = signed.client.get("/ledger/proofs/inclusion", params={"index": 0}).json()
    assert "leaf" not in public
    assert b64(public["root"]) == checkpoint.root
    cadre = signed.client.get("/ledger/proofs/inclusion", params={"index": 0},
                              headers=signed.headers("township_clerk")).json()  # fmt: skip
    assert "leaf" not in cadre
    forged = signed.client.get("/ledger/proofs/inclusion", params={"index": 0},
                               headers={"Authorization": "Bearer dlk_nobody_x"})  # fmt: skip
    assert forged.status_code == 401


def test_two_checkpoints_are_consistent(signed: Api) -> None:
    older, _ = settled(signed)
    some_history(signed)
    newer, _ = settled(signed)
    assert older.size < newer.size
    answer = signed.client.get("/ledger/proofs/consistency", params={"from": older.size, "to": newer.size})
    assert answer.status_code == 200, answer.text
    proof = answer.json()
    assert (proof["from"], proof["to"]) == (older.size, newer.size)
    assert (b64(proof["from_root"]), b64(proof["to_root"])) == (older.root, newer.root)
    verify_consistency(older.size, newer.size, older.root, newer.root, [b64(h) for h in proof["proof"]])


def test_sizes_and_indexes_that_do_not_fit_the_log_are_422_problems(signed: Api) -> None:
    checkpoint, _ = settled(signed)
    size = checkpoint.size
    for path, params in (
        ("/ledger/proofs/inclusion", {"index": size, "tree_size": size}),
        ("/ledger/proofs/inclusion", {"index": 0, "tree_size": size + 1}),
        ("/ledger/proofs/inclusion", {"index": 0, "tree_size": 0}),
        ("/ledger/proofs/inclusion", {"index": -1, "tree_size": size}),
        ("/ledger/proofs/inclusion", {"index": "x", "tree_size": size}),
        ("/ledger/proofs/consistency", {"from": size, "to": size - 1}),
        ("/ledger/proofs/consistency", {"from": 1, "to": size + 1}),
        ("/ledger/proofs/consistency", {"from": 0, "to": size}),
        ("/ledger/proofs/consistency", {"to": size}),
    ):
        body = problem(signed.client.get(path, params=params), 422)
        assert body["type"].endswith(":validation-failed"), (path, params, body)
