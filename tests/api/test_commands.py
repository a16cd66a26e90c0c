"""Commands over HTTP: recorded as the key's cadre, answered with version and position, refused cleanly."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from api.keys import PrincipalKind
from tests.api.conftest import Api, registration


def test_registering_a_case_records_it_as_the_keys_cadre(api: Api) -> None:
    answer = api.post("/cases", registration(), "township_clerk")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    case_id = UUID(body["aggregate_id"])
    assert answer.headers["Location"] == f"/cases/{case_id}"
    assert answer.headers["ETag"] == '"1"'
    assert body["version"] == 1
    assert body["position"] == api.positions()
    assert body["replayed"] is False
    (registered,) = api.world.events(case_id)
    assert registered.actor_id == api.world.township_clerk
    assert registered.actor_unit_id == api.world.township


def test_an_actor_field_in_the_body_is_refused_not_obeyed(api: Api) -> None:
    before = api.positions()
    answer = api.post("/cases", registration(actor_id=str(api.world.city_head)), "township_clerk")
    assert answer.status_code == 422
    assert [e["location"] for e in answer.json()["errors"]] == [["body", "actor_id"]]
    assert api.positions() == before


def test_each_case_command_moves_the_case_on(api: Api) -> None:
    case_id = api.register()
    steps: list[tuple[str, dict[str, Any]]] = [
        ("/accept", {"narrative": "受理"}),
        ("/handler", {"narrative": "指定承办人", "handler_id": str(api.world.handler)}),
        ("/actions", {"narrative": "上门走访", "kind": "visit"}),
        ("/reply", {"narrative": "出具处理意见", "outcome": "support"}),
    ]
    version = 1
    for path, body in steps:
        answer = api.post(f"/cases/{case_id}{path}", body, "township_clerk")
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["version"] == version + 1
        version += 1
    assert api.world.case(case_id).status == "replied"


def test_a_retry_with_the_same_idempotency_key_is_answered_not_applied(api: Api) -> None:
    case_id = api.register()
    first = api.post(
        f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk", **{"Idempotency-Key": "k-1"}
    )
    before = api.positions()
    again = api.post(
        f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk", **{"Idempotency-Key": "k-1"}
    )
    assert again.status_code == 200
    assert again.json() | {"replayed": False} == first.json()
    assert again.json()["replayed"] is True
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.positions() == before


def test_another_command_under_a_used_idempotency_key_is_a_conflict(api: Api) -> None:
    case_id = api.register()
    api.post(
        f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk", **{"Idempotency-Key": "k-2"}
    )
    before = api.positions()
    other = api.post(
        f"/cases/{case_id}/actions",
        {"narrative": "走访", "kind": "visit"},
        "township_clerk",
        **{"Idempotency-Key": "k-2"},
    )
    assert other.status_code == 409
    assert other.json()["type"] == "urn:problem-type:dutyledger:idempotency-conflict"
    assert api.positions() == before


def test_if_match_with_a_stale_version_is_refused_with_412(api: Api) -> None:
    case_id = api.register()
    api.post(f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk")
    before = api.positions()
    stale = api.post(
        f"/cases/{case_id}/actions",
        {"narrative": "走访", "kind": "visit"},
        "township_clerk",
        **{"If-Match": '"1"'},
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["type"] == "urn:problem-type:dutyledger:version-conflict"
    assert api.positions() == before
    current = api.post(
        f"/cases/{case_id}/actions",
        {"narrative": "走访", "kind": "visit"},
        "township_clerk",
        **{"If-Match": '"2"'},
    )
    assert current.status_code == 200


def test_a_malformed_if_match_is_a_bad_request(api: Api) -> None:
    case_id = api.register()
    answer = api.post(
        f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk", **{"If-Match": "yesterday"}
    )
    assert answer.status_code == 400
    assert answer.json()["type"] == "urn:problem-type:dutyledger:precondition-malformed"


@pytest.mark.parametrize(
    ("cadre", "status", "code"),
    [
        ("outsider", 403, "outside-jurisdiction"),
        ("henan_clerk", 403, "outside-jurisdiction"),
    ],
)
def test_a_cadre_outside_the_cases_jurisdiction_cannot_record_on_it(
    api: Api, cadre: str, status: int, code: str
) -> None:
    case_id = api.register()
    before = api.positions()
    answer = api.post(f"/cases/{case_id}/actions", {"narrative": "走访", "kind": "visit"}, cadre)
    assert answer.status_code == status, answer.text
    assert answer.json()["type"] == f"urn:problem-type:dutyledger:{code}"
    assert api.positions() == before


def test_a_command_in_the_wrong_status_is_a_conflict(api: Api) -> None:
    case_id = api.register()
    answer = api.post(
        f"/cases/{case_id}/close", {"narrative": "办结", "closure": "substantive"}, "township_clerk"
    )
    assert answer.status_code == 409
    assert answer.json()["type"] == "urn:problem-type:dutyledger:invalid-transition"


def test_a_command_on_no_such_case_is_not_found(api: Api) -> None:
    answer = api.post(f"/cases/{UUID(int=7)}/accept", {"narrative": "受理"}, "township_clerk")
    assert answer.status_code == 404
    assert answer.json()["type"] == "urn:problem-type:dutyledger:not-found"


def test_personal_data_in_a_narrative_is_refused_and_nothing_is_written(api: Api) -> None:
    before = api.positions()
    answer = api.post("/cases", registration(narrative="联系电话13812345678"), "township_clerk")
    assert answer.status_code == 422
    assert answer.json()["type"] == "urn:problem-type:dutyledger:personal-data-in-text"
    assert api.positions() == before


def test_a_number_too_large_for_the_views_is_refused_and_the_views_keep_up(api: Api) -> None:
    before = api.positions()
    intake = {"channel": "visit", "category": "land_compensation", "headcount": 2**63}
    answer = api.post("/cases", registration(intake=intake), "township_clerk")
    assert answer.status_code == 422
    assert answer.json()["type"] == "urn:problem-type:dutyledger:invalid-argument"
    assert api.positions() == before
    case_id = api.register()
    answer = api.get(f"/cases/{case_id}", "township_clerk", min_position=api.positions())
    assert answer.status_code == 200, answer.text


def test_a_body_that_breaks_the_schema_names_each_field(api: Api) -> None:
    answer = api.post("/cases", {"narrative": "登记", "intake": {"channel": "pigeon"}}, "township_clerk")
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["type"] == "urn:problem-type:dutyledger:validation-failed"
    locations = [tuple(e["location"]) for e in problem["errors"]]
    assert ("body", "intake", "channel") in locations
    assert ("body", "petitioner_id") in locations


def test_an_integrator_key_records_nothing(api: Api) -> None:
    answer = api.client.post(
        "/cases", json=registration(), headers=api.headers("none", PrincipalKind.INTEGRATOR)
    )
    assert answer.status_code == 403
    assert answer.json()["type"] == "urn:problem-type:dutyledger:forbidden"


def test_registry_commands_need_the_administrator_role(api: Api) -> None:
    body = {
        "narrative": "新设",
        "name": "新镇",
        "level": "township",
        "kind": "government",
        "parent_id": str(api.world.county),
    }
    refused = api.post("/units", body, "township_clerk")
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:problem-type:dutyledger:role-required"
    created = api.post("/units", body, "admin")
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == f"/units/{created.json()['aggregate_id']}"


def test_a_weak_entity_tag_never_matches_if_match(api: Api) -> None:
    case_id = api.register()
    answer = api.post(
        f"/cases/{case_id}/accept", {"narrative": "受理"}, "township_clerk", **{"If-Match": 'W/"1"'}
    )
    assert answer.status_code == 412
    assert api.world.case(case_id).version == 1
