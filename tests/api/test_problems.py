"""Every error is an RFC 9457 problem with a stable type, the right status, and nothing written."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import ConnectionUnavailableError
from fastapi.testclient import TestClient

from api import problems
from api.app import create_app
from api.problems import PREFIX, catalogue
from api.settings import Settings
from tests.api.conftest import Api, registration
from tests.support import World


def assert_problem(answer: object, status: int, code: str) -> dict[str, object]:
    assert answer.status_code == status, answer.text  # type: ignore[attr-defined]
    assert answer.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = answer.json()  # type: ignore[attr-defined]
    assert body["type"] == PREFIX + code
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_a_body_that_is_not_json_is_a_bad_request(api: Api) -> None:
    before = api.positions()
    answer = api.client.post(
        "/cases",
        content=b"{not json",
        headers=api.headers("township_clerk", **{"Content-Type": "application/json"}),
    )
    assert_problem(answer, 400, "malformed-request")
    assert api.positions() == before


def test_a_body_that_is_not_an_object_is_a_bad_request(api: Api) -> None:
    answer = api.client.post("/cases", json=[1, 2], headers=api.headers("township_clerk"))
    assert_problem(answer, 400, "malformed-request")


def test_a_body_sent_as_anything_but_json_is_415(api: Api) -> None:
    answer = api.client.post(
        "/cases",
        content=b"narrative=x",
        headers=api.headers("township_clerk", **{"Content-Type": "text/plain"}),
    )
    assert_problem(answer, 415, "unsupported-media-type")


def test_a_body_over_the_limit_is_413(api: Api) -> None:
    big = registration(narrative="走访" * 400_000)
    before = api.positions()
    answer = api.client.post("/cases", json=big, headers=api.headers("township_clerk"))
    assert_problem(answer, 413, "request-too-large")
    assert api.positions() == before


def test_an_unknown_route_and_a_wrong_method_are_problems(api: Api) -> None:
    assert_problem(api.client.get("/nowhere"), 404, "route-not-found")
    assert_problem(api.client.delete("/cases"), 405, "method-not-allowed")


def test_a_missing_key_is_401_with_a_bearer_challenge(api: Api) -> None:
    answer = api.client.post("/cases", json=registration())
    assert_problem(answer, 401, "unauthenticated")
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="dutyledger"'


def test_a_key_over_its_rate_is_429_with_retry_after(world: World, database_url: str) -> None:
    settings = Settings(database_url=database_url, rate_limit_per_second=1, rate_limit_burst=2)
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        api = Api(client, world)
        statuses = [api.get("/cases", "township_clerk").status_code for _ in range(3)]
        assert statuses[:2] == [200, 200]
        limited = api.get("/cases", "township_clerk")
        assert_problem(limited, 429, "rate-limited")
        assert int(limited.headers["Retry-After"]) >= 1
        assert api.get("/cases", "county_clerk").status_code == 200  # each key has its own bucket


def test_the_problem_catalogue_lists_every_type_once_with_its_status(api: Api) -> None:
    listed = api.client.get("/problems").json()
    types = [p["type"] for p in listed]
    assert len(types) == len(set(types))
    assert {
        "type": PREFIX + "version-conflict",
        "status": 412,
        "title": listed[types.index(PREFIX + "version-conflict")]["title"],
    } in listed
    assert len(listed) == len(catalogue())
    assert {p["status"] for p in listed} >= {400, 401, 403, 404, 405, 409, 412, 413, 415, 422, 429, 503}


def test_every_problem_type_the_api_module_defines_is_in_the_catalogue() -> None:
    defined = {value.code for value in vars(problems).values() if isinstance(value, problems.ProblemType)}
    assert defined <= {kind.code for kind in catalogue()}


def test_nul_characters_are_refused_anywhere_on_either_backend(api: Api) -> None:
    before = api.positions()
    in_body = api.post("/cases", registration(narrative="来访\u0000反映"), "township_clerk")
    assert_problem(in_body, 400, "malformed-request")
    in_query = api.get("/cases", "township_clerk", status="accepted\x00")
    assert_problem(in_query, 400, "malformed-request")
    in_key = api.post("/cases", registration(), "township_clerk", **{"Idempotency-Key": "bad key"})
    assert_problem(in_key, 422, "validation-failed")
    assert api.positions() == before


def test_a_saturated_store_is_503_with_retry_after_not_a_500(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def saturated(*args: object, **kwargs: object) -> None:
        raise ConnectionUnavailableError("Timed out waiting for connection pool semaphore")

    monkeypatch.setattr(api.world.ledger.recorder, "insert_events", saturated)
    answer = api.post("/cases", registration(), "township_clerk")
    assert_problem(answer, 503, "store-busy")
    assert answer.headers["Retry-After"] == "1"


def test_every_operation_is_documented_with_a_summary_and_every_body_with_an_example(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            body = operation.get("requestBody")
            if body:
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                assert schemas[name].get("examples"), (method, path)
