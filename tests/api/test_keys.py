"""API keys: created by the CLI or an administrator, stored as hashes, refused once expired or revoked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.keys import NOT_REMEMBERED, PREFIX, KeyRefused, PrincipalKind
from domain.credential import Credential, credential_id
from projections.store import ViewStore
from tests.api.conftest import Api
from tests.api.test_cli import dutyledger


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_of(api: Api) -> str:
    return str(api.world.cadres["admin"])


def credential_events(api: Api, key_id: str) -> list[Any]:
    """What the ledger recorded of the key (nothing if it was never issued through it)."""
    return list(api.world.ledger.repository.event_store.get(credential_id(key_id)))


def test_a_key_created_on_the_command_line_works_over_http(api: Api, database_url: str) -> None:
    done = dutyledger(
        "keys", "create", "--kind", "cadre", "--cadre", str(api.world.township_clerk), "--json",
        "--admin", admin_of(api), database_url=database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["kind"] == "cadre"
    answer = api.client.get("/cases", headers=bearer(created["token"]))
    assert answer.status_code == 200, answer.text
    listed = dutyledger("keys", "list", "--json", database_url=database_url)
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [created["key_id"]]
    assert "token" not in listed.stdout


def test_a_key_revoked_on_the_command_line_is_refused(api: Api, database_url: str) -> None:
    key, token = api.keys.create(PrincipalKind.CADRE, cadre_id=api.world.township_clerk)
    assert api.client.get("/cases", headers=bearer(token)).status_code == 200
    # a key the ledger has no record of (made before keys were recorded): revoked in the key table
    revoked = dutyledger("keys", "revoke", key.key_id, "--admin", admin_of(api), database_url=database_url)
    assert revoked.returncode == 0, revoked.stderr
    api.keys._cache.clear()  # another process revoked it: this one notices within CACHE_SECONDS
    refused = api.client.get("/cases", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    again = dutyledger("keys", "revoke", key.key_id, "--admin", admin_of(api), database_url=database_url)
    assert again.returncode == 2
    assert "already revoked" in again.stderr


def test_the_command_line_refuses_a_key_for_no_such_cadre(api: Api, database_url: str) -> None:
    done = dutyledger("keys", "create", "--kind", "cadre", "--cadre", "00000000-0000-0000-0000-000000000009",
                      "--admin", admin_of(api), database_url=database_url)  # fmt: skip
    assert done.returncode == 1
    assert "no cadre" in done.stderr


def secret_of(token: str) -> str:
    """The secret part of `dlk_<key id>_<secret>` (the secret may hold "_" itself)."""
    return token.removeprefix(PREFIX).partition("_")[2]


def test_only_the_hash_of_a_token_is_stored(api: Api, database_url: str) -> None:
    _, token = api.keys.create(PrincipalKind.CADRE, cadre_id=api.world.township_clerk)
    secret = secret_of(token)
    connection = ViewStore(database_url).connect()
    try:
        stored = connection.execute("SELECT * FROM api_keys")
    finally:
        connection.close()
    assert secret not in repr(stored)


@pytest.mark.parametrize(
    "token",
    ["", "dlk_", "dlk_abc", "dlk_000000000000_wrong", "Basic abc", "x" * 5000],
)
def test_anything_but_a_live_token_is_401(api: Api, token: str) -> None:
    answer = api.client.get("/cases", headers=bearer(token) if token else {})
    assert answer.status_code == 401
    assert answer.json()["type"] == "urn:problem-type:dutyledger:unauthenticated"


def test_a_token_with_the_right_id_and_a_wrong_secret_is_401(api: Api) -> None:
    key, _ = api.keys.create(PrincipalKind.CADRE, cadre_id=api.world.township_clerk)
    assert api.client.get("/cases", headers=bearer(f"dlk_{key.key_id}_forged")).status_code == 401


def test_an_expired_key_is_401(api: Api) -> None:
    now = datetime.now(UTC)
    _, token = api.keys.create(
        PrincipalKind.CADRE, cadre_id=api.world.township_clerk, expires_at=now + timedelta(hours=1),
        now=now - timedelta(hours=2),
    )  # fmt: skip
    assert api.keys.verify(token, now=now + timedelta(hours=2)) is None
    assert api.keys.verify(token, now=now) is not None


def test_key_rules_are_enforced(api: Api) -> None:
    with pytest.raises(KeyRefused):
        api.keys.create(PrincipalKind.CADRE)
    with pytest.raises(KeyRefused):
        api.keys.create(PrincipalKind.INTEGRATOR, cadre_id=api.world.township_clerk)
    with pytest.raises(KeyRefused):
        api.keys.create(PrincipalKind.INSPECTOR, cadre_id=api.world.inspector)
    with pytest.raises(KeyRefused):
        api.keys.create(
            PrincipalKind.CADRE,
            cadre_id=api.world.township_clerk,
            expires_at=datetime(2020, 1, 1, tzinfo=UTC),
        )


def test_an_administrator_creates_lists_and_revokes_keys_over_http(api: Api) -> None:
    admin = api.headers("admin", PrincipalKind.ADMINISTRATOR)
    created = api.client.post(
        "/admin/keys", json={"kind": "inspector", "cadre_id": str(api.world.inspector),
                             "scope_unit_ids": [str(api.world.county)], "label": "纪检"}, headers=admin,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert api.client.get("/cases", headers=bearer(token)).status_code == 200
    listed = api.client.get("/admin/keys", headers=admin).json()
    assert created.json()["key_id"] in [k["key_id"] for k in listed]
    assert all("token" not in k for k in listed)
    revoked = api.client.post(f"/admin/keys/{created.json()['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert api.client.get("/cases", headers=bearer(token)).status_code == 401  # at once, in this process
    assert api.client.post(f"/admin/keys/{created.json()['key_id']}/revoke", headers=admin).status_code == 409
    assert api.client.post("/admin/keys/nosuchkey/revoke", headers=admin).status_code == 404


def test_only_an_administrator_key_manages_keys(api: Api) -> None:
    answer = api.client.get("/admin/keys", headers=api.headers("township_clerk"))
    assert answer.status_code == 403


def test_an_administrator_key_needs_an_administrator_cadre(api: Api) -> None:
    admin = api.headers("admin", PrincipalKind.ADMINISTRATOR)
    answer = api.client.post(
        "/admin/keys",
        json={"kind": "administrator", "cadre_id": str(api.world.township_clerk)},
        headers=admin,
    )
    assert answer.status_code == 422
    assert api.client.post("/admin/keys", json={"kind": "cadre"}, headers=admin).status_code == 422


def test_an_inspector_key_stops_reading_once_its_cadre_loses_the_role(api: Api) -> None:
    _, token = api.keys.create(
        PrincipalKind.INSPECTOR, cadre_id=api.world.inspector, scope_unit_ids=[api.world.city]
    )
    assert api.client.get("/cases", headers=bearer(token)).status_code == 200
    api.world.do(api.world.admin, "change_roles", cadre_id=api.world.inspector, roles=frozenset())
    assert api.client.get("/cases", headers=bearer(token)).status_code == 403


def test_a_key_is_answered_from_memory_only_once_the_store_was_read(api: Api) -> None:
    _, token = api.keys.create(PrincipalKind.CADRE, cadre_id=api.world.handler)
    assert api.keys.verify_remembered(token) is NOT_REMEMBERED  # the HTTP layer then asks on a worker thread
    verified = api.keys.verify(token)
    assert verified is not None
    assert api.keys.verify_remembered(token) == verified
    assert api.keys.verify_remembered(token.replace(token[-4:], "AAAA")) is None  # a wrong secret


def test_a_key_revoked_in_this_process_is_never_answered_from_memory(api: Api) -> None:
    key, token = api.keys.create(PrincipalKind.CADRE, cadre_id=api.world.handler)
    assert api.keys.verify(token) is not None
    api.keys.revoke(key.key_id)
    assert api.keys.verify_remembered(token) in (None, NOT_REMEMBERED)
    assert api.client.get("/cases", headers=bearer(token)).status_code == 401


def test_a_key_revoked_while_another_request_reads_it_is_not_remembered_as_live(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, token = api.keys.create(PrincipalKind.CADRE, cadre_id=api.world.handler)
    read = api.keys._row

    def read_then_revoked(key_id: str) -> Any:
        found = read(key_id)
        monkeypatch.setattr(api.keys, "_row", read)
        api.keys.revoke(key.key_id)  # an administrator's revocation lands between the read and the cache
        return found

    monkeypatch.setattr(api.keys, "_row", read_then_revoked)
    api.keys.verify(token)  # the request that was already verifying
    assert api.keys.verify_remembered(token) in (None, NOT_REMEMBERED)
    assert api.client.get("/cases", headers=bearer(token)).status_code == 401


def test_a_key_an_administrator_creates_is_recorded_as_issued_by_them_and_never_holds_its_secret(
    api: Api,
) -> None:
    admin = api.headers("admin", PrincipalKind.ADMINISTRATOR)
    created = api.client.post(
        "/admin/keys",
        json={
            "kind": "cadre",
            "cadre_id": str(api.world.township_clerk),
            "label": "李明",
            "reason": "新到岗",
        },
        headers=admin,
    ).json()
    (issued,) = credential_events(api, created["key_id"])
    assert isinstance(issued, Credential.Issued)
    assert (issued.actor_id, issued.cadre_id, issued.kind) == (
        api.world.cadres["admin"],
        api.world.township_clerk,
        "cadre",
    )
    assert issued.narrative == "新到岗"
    stored = repr(api.world.ledger.recorder.select_notifications(start=1, limit=10**6))
    assert secret_of(created["token"]) not in stored
    revoked = api.client.post(f"/admin/keys/{created['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 200
    assert [type(e) for e in credential_events(api, created["key_id"])] == [
        Credential.Issued,
        Credential.Revoked,
    ]


def test_a_refused_key_request_records_nothing(api: Api) -> None:
    admin = api.headers("admin", PrincipalKind.ADMINISTRATOR)
    before = api.positions()
    refused = api.client.post(
        "/admin/keys", json={"kind": "inspector", "cadre_id": str(api.world.inspector)}, headers=admin
    )  # an inspector key without units to read
    assert refused.status_code == 422
    assert api.positions() == before
    assert len(api.keys.list()) == 1  # the administrator's own


def test_the_command_line_records_its_key_as_issued_by_the_administrator_it_names(
    api: Api, database_url: str
) -> None:
    done = dutyledger("keys", "create", "--kind", "integrator", "--json", "--admin", admin_of(api),
                      "--reason", "12345 热线对接", database_url=database_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (issued,) = credential_events(api, json.loads(done.stdout)["key_id"])
    assert (issued.actor_id, issued.narrative) == (api.world.cadres["admin"], "12345 热线对接")


def test_the_command_line_issues_no_key_for_someone_who_is_not_an_administrator(
    api: Api, database_url: str
) -> None:
    before = api.positions()
    done = dutyledger("keys", "create", "--kind", "integrator", "--admin", str(api.world.township_clerk),
                      database_url=database_url)  # fmt: skip
    assert done.returncode != 0
    assert "administrator role" in done.stderr
    assert api.positions() == before
    assert dutyledger("keys", "list", "--json", database_url=database_url).stdout.strip() == "[]"
