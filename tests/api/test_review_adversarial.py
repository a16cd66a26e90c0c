"""An adversarial review of the HTTP API: privacy of petitioners, authorisation, robustness.

Each test states what a demanding integrator (or a hostile cadre) would expect. Twelve of
them first failed, each exposing a bug (a petitioner reachable through `repeat_of`, recusal
skipped at joint meetings, keys outliving their cadre's role, a date that stalled the views…);
all are fixed and the tests stay as their guard.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.keys import PrincipalKind
from api.problems import PREFIX, catalogue
from domain.ids import derived_id
from domain.petitioner import Petitioner
from domain.values import Role
from tests.api.conftest import Api, registration

IDENTITY = {
    "name": "赵六",
    "phone": "13912345678",
    "id_number": "41272319850202123X",
    "address": "汲冢镇西村5组",
}
WINDOW = {"from": "2020-01-01T00:00:00+08:00", "to": "2030-01-01T00:00:00+08:00"}


def quiet(api: Api) -> TestClient:
    """A client over the same running app that answers a server error as the server would (a 500)."""
    return TestClient(api.client.app, raise_server_exceptions=False)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def file_identity(api: Api, cadre: str = "county_clerk", **headers: str) -> Any:
    return api.post("/petitioners", {"narrative": "来访登记身份信息", **IDENTITY}, cadre, **headers)


def identified(api: Api) -> UUID:
    filed = file_identity(api)
    assert filed.status_code == 201, filed.text
    return UUID(filed.json()["petitioner_id"])


def accusing(api: Api, petitioner_id: UUID, **extra: Any) -> UUID:
    """A case at the county bureau accusing the county leader and the county natural resources bureau."""
    return api.register(
        "county_clerk",
        petitioner_id=str(petitioner_id),
        accused_cadre_ids=[str(api.world.county_leader)],
        accused_unit_ids=[str(api.world.county_dept)],
        **extra,
    )


def caught_up(api: Api) -> None:
    got = api.get("/cases", "admin", PrincipalKind.ADMINISTRATOR, min_position=api.positions())
    assert got.status_code == 200, got.text


def accessed(api: Api, petitioner_id: UUID) -> int:
    return sum(isinstance(e, Petitioner.IdentityAccessed) for e in api.world.events(petitioner_id))


def assert_problem(answer: Any, status: int | tuple[int, ...], code: str | None = None) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert answer.status_code in statuses, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    if code is not None:
        assert answer.json()["type"] == PREFIX + code, answer.text


# --- privacy -----------------------------------------------------------------------------------


def test_the_accused_find_the_petitioner_in_no_answer_header_filter_page_or_problem(api: Api) -> None:
    petitioner_id = identified(api)
    case_id = accusing(api, petitioner_id)
    api.register("county_clerk")  # another case, so that pages and filters have something to skip
    caught_up(api)
    now = api.world.clock.now().isoformat()
    secrets = [str(petitioner_id), *IDENTITY.values()]
    for cadre in ("county_leader", "dept_clerk"):
        client = quiet(api)
        headers = api.headers(cadre)
        answers = [
            client.get(f"/cases/{case_id}", headers=headers),
            client.get(f"/cases/{case_id}/timeline", headers=headers),
            client.get(f"/cases/{case_id}/as-of", params={"at": now}, headers=headers),
            client.get(f"/cases/{case_id}/as-of", params={"at": now, "axis": "occurred"}, headers=headers),
            client.get(f"/cases/{case_id}/responsibility", params={"at": now}, headers=headers),
            client.get(f"/cases/{case_id}/petitioner", params={"reason": "核实情况"}, headers=headers),
            client.get(f"/cadres/{api.world.cadres[cadre]}/accountability", params=WINDOW, headers=headers),
            client.get(f"/cadres/{api.world.county_clerk}/accountability", params=WINDOW, headers=headers),
            client.post(f"/cases/{case_id}/accept", json={"narrative": "受理"}, headers=headers),
            client.post(
                f"/records/{case_id}/corrections",
                json={"narrative": "更正", "corrects": 1, "changes": {"intake": {"channel": "visit"}}},
                headers=headers,
            ),
        ]
        for filters in (
            {},
            {"status": "registered"},
            {"unit_id": str(api.world.county)},
            {"category": "land_compensation"},
            {"breached": "false"},
            {"registered_from": "2026-01-01T00:00:00+08:00"},
        ):
            after = None
            while True:  # page through one case at a time
                params = {**filters, "limit": 1, **({"after": after} if after else {})}
                page = client.get("/cases", params=params, headers=headers)
                answers.append(page)
                after = page.json()["next"]
                if after is None:
                    break
        for answer in answers:
            seen = answer.text + repr(dict(answer.headers))
            for secret in secrets:
                assert secret not in seen, (cadre, answer.request.url, secret)
        assert answers[0].json()["petitioner_withheld"] is True
        assert answers[5].status_code == 403
    assert accessed(api, petitioner_id) == 0


@pytest.mark.parametrize("direction", ["accusing-case-repeats-another", "another-case-repeats-accusing"])
def test_the_accused_cannot_recover_the_petitioner_through_a_repeat_petition(
    api: Api, direction: str
) -> None:
    petitioner_id = identified(api)
    if direction == "accusing-case-repeats-another":
        earlier = api.register("county_clerk", petitioner_id=str(petitioner_id))
        case_id = accusing(api, petitioner_id, repeat_of=str(earlier))
    else:
        case_id = accusing(api, petitioner_id)
        api.register("county_clerk", petitioner_id=str(petitioner_id), repeat_of=str(case_id))
    caught_up(api)
    own = api.get(f"/cases/{case_id}", "county_leader").json()
    assert own["petitioner_id"] is None  # withheld, as documented
    linked = {own["repeat_of"]} - {None}
    linked |= {
        c["case_id"]
        for c in api.get("/cases", "county_leader").json()["items"]
        if c["repeat_of"] == str(case_id)
    }
    answers = [api.get(f"/cases/{case_id}/timeline", "county_leader")]
    for other in linked:
        answers += [
            api.get(f"/cases/{other}", "county_leader"),
            api.get(f"/cases/{other}/timeline", "county_leader"),
            api.get(f"/cases/{other}/petitioner", "county_leader", reason="了解诉求"),
        ]
    for answer in answers:
        for secret in (str(petitioner_id), *IDENTITY.values()):
            assert secret not in answer.text, (answer.request.url, secret)


def test_an_accused_cadre_cannot_act_on_the_case_through_a_joint_meeting(api: Api) -> None:
    case_id = accusing(api, identified(api))
    meeting = api.post(
        "/meetings",
        {
            "narrative": "召开联席会议",
            "unit_id": str(api.world.county),
            "chair_id": str(api.world.county_leader),
        },
        "county_leader",
    )
    assert meeting.status_code == 201, meeting.text
    before = api.positions()
    studied = api.post(
        f"/meetings/{meeting.json()['aggregate_id']}/studied-cases",
        {
            "narrative": "研判，明确包案领导和责任人",
            "case_id": str(case_id),
            "owning_leader_id": str(api.world.county_head),
            "responsible_cadre_id": str(api.world.county_clerk),
            "due": "2026-04-30",
        },
        "county_leader",
    )
    assert_problem(studied, 422, "conflict-of-interest")  # recusal, as on every case command
    assert api.positions() == before
    assert all(e.actor_id != api.world.county_leader for e in api.world.events(case_id))


# --- authorisation ------------------------------------------------------------------------------


def test_an_inspector_key_reads_only_the_inquiries_within_its_units(api: Api) -> None:
    case_id = api.register("county_clerk")
    inquiry = api.world.do(api.world.inspector, "open_inquiry", case_ids=frozenset({case_id})).aggregate_id
    _, county = api.keys.create(
        PrincipalKind.INSPECTOR, cadre_id=api.world.inspector, scope_unit_ids=[api.world.county]
    )
    _, henan = api.keys.create(
        PrincipalKind.INSPECTOR, cadre_id=api.world.inspector, scope_unit_ids=[api.world.henan_county]
    )
    assert api.client.get(f"/inquiries/{inquiry}", headers=bearer(county)).status_code == 200
    assert api.client.get(f"/cases/{case_id}", headers=bearer(henan)).status_code == 403
    assert_problem(api.client.get(f"/inquiries/{inquiry}", headers=bearer(henan)), 403, "out-of-scope")


def second_administrator(api: Api) -> tuple[UUID, str]:
    cadre_id = api.world.do(
        api.world.admin,
        "register_cadre",
        name="副管理员",
        unit_id=api.world.city_bureau,
        position="系统管理员",
        roles=frozenset({Role.ADMINISTRATOR}),
    ).aggregate_id
    _, token = api.keys.create(PrincipalKind.ADMINISTRATOR, cadre_id=cadre_id)
    assert api.client.get("/admin/keys", headers=bearer(token)).status_code == 200
    return cadre_id, token


def test_a_demoted_administrators_key_no_longer_manages_keys(api: Api) -> None:
    cadre_id, token = second_administrator(api)
    api.world.do(api.world.admin, "change_roles", cadre_id=cadre_id, roles=frozenset())
    keys = len(api.keys.list())
    minted = api.client.post(
        "/admin/keys",
        json={"kind": "administrator", "cadre_id": str(api.world.admin), "label": "不该有"},
        headers=bearer(token),
    )
    assert minted.status_code in (401, 403), minted.text
    assert len(api.keys.list()) == keys
    assert api.client.get("/admin/keys", headers=bearer(token)).status_code in (401, 403)


def test_a_retired_administrators_key_no_longer_manages_keys(api: Api) -> None:
    cadre_id, token = second_administrator(api)
    api.world.do(api.world.admin, "retire_cadre", cadre_id=cadre_id)
    assert api.client.get("/cases", headers=bearer(token)).status_code == 403  # reads are refused...
    keys = len(api.keys.list())
    minted = api.client.post(
        "/admin/keys", json={"kind": "cadre", "cadre_id": str(api.world.city_head)}, headers=bearer(token)
    )
    assert minted.status_code in (401, 403), minted.text  # ...and so must be key management
    assert len(api.keys.list()) == keys


def test_cursors_and_filters_never_widen_a_cadres_scope(api: Api) -> None:
    mine = api.register("township_clerk")
    theirs = [api.register("henan_clerk") for _ in range(3)]
    caught_up(api)
    start = base64.urlsafe_b64encode(b'["", "00000000-0000-0000-0000-000000000000"]').decode().rstrip("=")
    for params in (
        {"after": start},
        {"unit_id": str(api.world.henan_county)},
        {"unit_id": str(api.world.henan_township), "after": start, "limit": 500},
        {"registered_from": "2000-01-01T00:00:00+08:00"},
    ):
        got = api.get("/cases", "township_clerk", **params)
        assert got.status_code == 200, got.text
        ids = {c["case_id"] for c in got.json()["items"]}
        assert not ids & {str(c) for c in theirs}, params
    assert str(mine) in {c["case_id"] for c in api.get("/cases", "township_clerk").json()["items"]}
    for path, params in (
        (f"/cases/{theirs[0]}/as-of", {"at": api.world.clock.now().isoformat()}),
        (f"/cases/{theirs[0]}/responsibility", {"at": api.world.clock.now().isoformat()}),
        (f"/cases/{theirs[0]}/timeline", {}),
        (f"/cadres/{api.world.henan_clerk}/accountability", WINDOW),
        (f"/units/{api.world.henan_county}/statistics", {"first_month": "2026-03", "last_month": "2026-03"}),
    ):
        answer = api.client.get(path, params=params, headers=api.headers("township_clerk"))
        assert_problem(answer, 403, "out-of-scope")


def test_revoked_and_expired_keys_neither_read_nor_record(api: Api) -> None:
    case_id = api.register("township_clerk")
    key, revoked = api.keys.create(PrincipalKind.CADRE, cadre_id=api.world.township_clerk)
    admin = api.headers("admin", PrincipalKind.ADMINISTRATOR)
    assert api.client.post(f"/admin/keys/{key.key_id}/revoke", headers=admin).status_code == 200
    past = datetime.now(UTC) - timedelta(hours=2)
    _, expired = api.keys.create(
        PrincipalKind.CADRE, cadre_id=api.world.township_clerk, expires_at=past + timedelta(hours=1), now=past
    )
    before = api.positions()
    for token in (revoked, expired):
        assert_problem(api.client.get(f"/cases/{case_id}", headers=bearer(token)), 401, "unauthenticated")
        answer = api.client.post(
            f"/cases/{case_id}/accept", json={"narrative": "受理"}, headers=bearer(token)
        )
        assert_problem(answer, 401, "unauthenticated")
        filed = api.client.post("/petitioners", json={"narrative": "登记", **IDENTITY}, headers=bearer(token))
        assert_problem(filed, 401, "unauthenticated")
    assert api.positions() == before


def test_a_retired_cadres_key_neither_reads_nor_records(api: Api) -> None:
    case_id = api.register("township_clerk")
    api.world.do(api.world.admin, "retire_cadre", cadre_id=api.world.handler)
    before = api.positions()
    assert_problem(api.get(f"/cases/{case_id}", "handler"), 403, "forbidden")
    assert_problem(api.get(f"/cases/{case_id}/petitioner", "handler", reason="核实"), 403, "forbidden")
    answer = api.post(f"/cases/{case_id}/actions", {"narrative": "走访", "kind": "visit"}, "handler")
    assert_problem(answer, 403, "actor-not-active")
    assert_problem(file_identity(api, "handler"), 403, "actor-not-active")
    assert api.positions() == before


def test_an_integrator_key_reaches_no_casework_and_no_administration(api: Api) -> None:
    case_id = api.register("township_clerk")
    inquiry = api.world.do(api.world.inspector, "open_inquiry", case_ids=frozenset({case_id})).aggregate_id
    _, token = api.keys.create(PrincipalKind.INTEGRATOR, scope_unit_ids=[api.world.city])
    headers = bearer(token)
    before = api.positions()
    for path, params in (
        ("/cases", {}),
        (f"/cases/{case_id}/petitioner", {"reason": "对接"}),
        (f"/inquiries/{inquiry}", {}),
        ("/admin/keys", {}),
        (f"/units/{api.world.city}/statistics", {"first_month": "2026-03", "last_month": "2026-03"}),
        (f"/cadres/{api.world.township_clerk}/accountability", WINDOW),
    ):
        assert_problem(api.client.get(path, params=params, headers=headers), 403, "forbidden")
    for path, body in (
        ("/petitioners", {"narrative": "登记", **IDENTITY}),
        (f"/cases/{case_id}/accept", {"narrative": "受理"}),
        ("/admin/keys", {"kind": "integrator"}),
        (f"/petitioners/{UUID(int=1)}/erase", {"narrative": "删除"}),
    ):
        assert_problem(api.client.post(path, json=body, headers=headers), 403, "forbidden")
    assert api.positions() == before


def test_an_inspector_key_neither_manages_keys_nor_erases_identities(api: Api) -> None:
    petitioner_id = identified(api)
    _, token = api.keys.create(
        PrincipalKind.INSPECTOR, cadre_id=api.world.inspector, scope_unit_ids=[api.world.city]
    )
    before = api.positions()
    assert_problem(api.client.get("/admin/keys", headers=bearer(token)), 403, "forbidden")
    minted = api.client.post("/admin/keys", json={"kind": "integrator"}, headers=bearer(token))
    assert_problem(minted, 403, "forbidden")
    erased = api.client.post(
        f"/petitioners/{petitioner_id}/erase", json={"narrative": "删除"}, headers=bearer(token)
    )
    assert_problem(erased, 403, "forbidden")
    assert api.positions() == before
    assert api.client.app.state.identities.statuses([petitioner_id])[petitioner_id] == "on_file"  # type: ignore[attr-defined]


# --- idempotency and preconditions -----------------------------------------------------------------


def test_a_retried_creation_is_replayed_and_a_used_key_conflicts_for_other_bodies_and_cadres(
    api: Api,
) -> None:
    key = {"Idempotency-Key": "intake-2026-0042"}
    first = api.post("/cases", registration(), "township_clerk", **key)
    assert first.status_code == 201, first.text
    before = api.positions()
    again = api.post("/cases", registration(), "township_clerk", **key)
    assert again.status_code == 201
    assert again.json() == first.json() | {"replayed": True}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["ETag"] == first.headers["ETag"]
    other_body = api.post("/cases", registration(narrative="另一件事"), "township_clerk", **key)
    assert_problem(other_body, 409, "idempotency-conflict")
    other_cadre = api.post("/cases", registration(), "township_head", **key)
    assert_problem(other_cadre, 409, "idempotency-conflict")
    assert api.positions() == before


def test_a_conditional_command_retried_after_it_succeeded_is_replayed_not_412(api: Api) -> None:
    case_id = api.register("township_clerk")
    headers = {"Idempotency-Key": "accept-1", "If-Match": '"1"'}
    first = api.post(f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk", **headers)
    assert first.status_code == 200, first.text
    before = api.positions()
    again = api.post(f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk", **headers)
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True
    body = {"narrative": "走访", "kind": "visit"}
    stale = api.post(f"/cases/{case_id}/actions", body, "township_clerk", **{"If-Match": '"1"'})
    assert_problem(stale, 412, "version-conflict")
    assert api.positions() == before


def test_if_match_on_a_creating_command_is_not_ignored(api: Api) -> None:
    before = api.positions()
    answer = api.post("/cases", registration(), "township_clerk", **{"If-Match": '"7"'})
    assert_problem(answer, 412, "version-conflict")
    assert api.positions() == before


def test_filing_under_a_key_another_command_used_leaves_no_identity_behind(api: Api) -> None:
    case_id = api.register("county_clerk")
    used = {"Idempotency-Key": "visit-2026-03-02-001"}
    assert (
        api.post(f"/cases/{case_id}/accept", {"narrative": "受理"}, "county_clerk", **used).status_code == 200
    )
    before = api.positions()
    assert_problem(file_identity(api, **used), 409, "idempotency-conflict")
    assert api.positions() == before
    orphan = derived_id("petitioner", used["Idempotency-Key"])
    assert api.client.app.state.identities.statuses([orphan])[orphan] == "none"  # type: ignore[attr-defined]


def test_a_filing_under_a_used_key_does_not_tell_whether_a_guessed_identity_is_on_file(api: Api) -> None:
    key = {"Idempotency-Key": "petitioner-2026-0007"}
    assert file_identity(api, **key).status_code == 201
    right = api.post("/petitioners", {"narrative": "登记", **IDENTITY}, "outsider", **key)
    wrong = api.post("/petitioners", {"narrative": "登记", **IDENTITY, "name": "王五"}, "outsider", **key)
    assert_problem(right, 409, "idempotency-conflict")
    assert_problem(wrong, 409, "idempotency-conflict")
    assert right.json() == wrong.json()


def test_a_replayed_identity_filing_says_so_in_its_headers(api: Api) -> None:
    key = {"Idempotency-Key": "petitioner-2026-0008"}
    first = file_identity(api, **key)
    before = api.positions()
    again = file_identity(api, **key)
    assert again.json() == first.json() | {"replayed": True}
    assert api.positions() == before
    assert again.headers.get("Idempotent-Replayed") == "true"


# --- robustness ---------------------------------------------------------------------------------


def test_an_instant_at_the_edge_of_the_calendar_is_a_validation_problem(api: Api) -> None:
    accountability = f"/cadres/{api.world.township_clerk}/accountability"
    client = quiet(api)
    for path, params in (
        (accountability, {"from": "0001-01-01T00:00:00+08:00", "to": "2030-01-01T00:00:00+08:00"}),
        (accountability, {"from": "2020-01-01T00:00:00+08:00", "to": "9999-12-31T23:59:59-08:00"}),
        ("/cases", {"registered_from": "0001-01-01T00:00:00+08:00"}),
        ("/cases", {"registered_to": "9999-12-31T23:59:59-08:00"}),
    ):
        answer = client.get(path, params=params, headers=api.headers("township_clerk"))
        assert_problem(answer, 422, "validation-failed")


def test_a_far_future_deadline_never_stalls_the_views(api: Api) -> None:
    case_id = api.register("county_clerk")
    client = quiet(api)
    before = api.positions()
    ordered = client.post(
        f"/cases/{case_id}/supervision-orders",
        json={"narrative": "督办，暂不设期限", "due": "9999-12-31"},
        headers=api.headers("county_head"),
    )
    if ordered.status_code >= 400:  # refusing it is fine, if cleanly
        assert_problem(ordered, 422)
        assert api.positions() == before
        return
    elsewhere = api.register("henan_clerk")  # an unrelated write in another district
    got = client.get(
        f"/cases/{elsewhere}", params={"min_position": api.positions()}, headers=api.headers("henan_clerk")
    )
    assert got.status_code == 200, got.text


def test_an_undecodable_body_is_a_catalogued_malformed_request(api: Api) -> None:
    before = api.positions()
    for raw in (
        b'{"narrative": "\xb2\xe9\xbf\xb4"}',
        b"[" * 20_000 + b"]" * 20_000,
    ):  # GBK bytes; deep nesting
        answer = quiet(api).post(
            "/cases",
            content=raw,
            headers={**api.headers("township_clerk"), "Content-Type": "application/json"},
        )
        assert answer.status_code == 400
        assert answer.json()["type"] in {PREFIX + p.code for p in catalogue()}
        assert_problem(answer, 400, "malformed-request")
    assert api.positions() == before
