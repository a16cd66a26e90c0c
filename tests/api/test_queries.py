"""Queries over HTTP: in the key's scope, read-your-writes, hiding the petitioner from the accused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import PrincipalKind
from api.routes import cases
from api.settings import Settings
from projections import build_views
from projections.runner import Runner
from tests.api.conftest import Api
from tests.support import World


def accused_case(api: Api) -> UUID:
    """A case at the county bureau accusing the county natural resources department and the county leader."""
    return api.register(
        "county_clerk",
        accused_unit_ids=[str(api.world.county_dept)],
        accused_cadre_ids=[str(api.world.county_leader)],
    )


def read_own_write(api: Api, case_id: UUID, cadre: str = "township_clerk") -> dict[str, object]:
    answer = api.post(f"/cases/{case_id}/accept", {"narrative": "受理"}, cadre)
    assert answer.status_code == 200, answer.text
    got = api.get(f"/cases/{case_id}", cadre, min_position=answer.json()["position"])
    assert got.status_code == 200, got.text
    return got.json()  # type: ignore[no-any-return]


def test_a_case_read_with_min_position_shows_the_callers_own_write(api: Api) -> None:
    case_id = api.register()
    case = read_own_write(api, case_id)
    assert case["status"] == "accepted"
    assert case["version"] == 2


def test_a_case_read_carries_its_version_as_etag(api: Api) -> None:
    case_id = api.register()
    read_own_write(api, case_id)
    got = api.get(f"/cases/{case_id}", "township_clerk", min_position=api.positions())
    assert got.headers["ETag"] == '"2"'


def test_views_that_have_not_reached_min_position_answer_503_with_retry_after(
    world: World, database_url: str
) -> None:
    settings = Settings(
        database_url=database_url, rate_limit_per_second=0, read_wait_seconds=0.2, embedded_projections=False
    )
    with TestClient(create_app(settings, ledger=world.ledger)) as client:
        api = Api(client, world)  # no runner follows the log in the server
        not_built = api.get("/cases", "township_clerk")
        assert not_built.status_code == 503
        assert "not built" in not_built.json()["detail"]
        follow_once(world)
        case_id = api.register()  # the views stay before it
        got = api.get(f"/cases/{case_id}", "township_clerk", min_position=api.positions())
        assert got.status_code == 503
        assert got.headers["Retry-After"] == "1"
        assert got.json()["type"] == "urn:problem-type:dutyledger:views-not-caught-up"
        follow_once(world)
        assert api.get(f"/cases/{case_id}", "township_clerk", min_position=api.positions()).status_code == 200


def follow_once(world: World) -> None:
    """What `dutyledger projections run` does, once: bring every view up to the end of the log."""
    runner = Runner(world.ledger, build_views(world.ledger))
    try:
        runner.catch_up()
    finally:
        runner.close()


def test_a_min_position_beyond_the_log_is_refused_at_once(api: Api) -> None:
    case_id = api.register()
    got = api.get(f"/cases/{case_id}", "township_clerk", min_position=api.positions() + 1000)
    assert got.status_code == 422
    assert got.json()["type"] == "urn:problem-type:dutyledger:validation-failed"


def test_a_cadre_reads_cases_in_its_jurisdiction_and_no_others(api: Api) -> None:
    case_id = api.register()
    read_own_write(api, case_id)
    assert api.get(f"/cases/{case_id}", "county_leader").status_code == 200  # the county covers the township
    outside = api.get(f"/cases/{case_id}", "outsider")
    assert outside.status_code == 403
    assert outside.json()["type"] == "urn:problem-type:dutyledger:out-of-scope"
    assert api.get(f"/cases/{case_id}/timeline", "outsider").status_code == 403


def test_an_inspector_reads_only_within_its_units(api: Api) -> None:
    case_id = api.register()
    read_own_write(api, case_id)
    county = api.keys.create(
        PrincipalKind.INSPECTOR, cadre_id=api.world.inspector, scope_unit_ids=[api.world.county]
    )[1]
    henan = api.keys.create(
        PrincipalKind.INSPECTOR, cadre_id=api.world.inspector, scope_unit_ids=[api.world.henan_county]
    )[1]
    ok = api.client.get(f"/cases/{case_id}", headers={"Authorization": f"Bearer {county}"})
    assert ok.status_code == 200
    refused = api.client.get(f"/cases/{case_id}", headers={"Authorization": f"Bearer {henan}"})
    assert refused.status_code == 403


def test_an_unknown_case_is_404_and_a_malformed_id_422(api: Api) -> None:
    assert api.get(f"/cases/{UUID(int=3)}", "township_clerk").json()["type"].endswith(":not-found")
    malformed = api.get("/cases/not-a-uuid", "township_clerk")
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["location"] == ["path", "case_id"]


def test_an_accused_cadre_never_sees_the_petitioner_id(api: Api) -> None:
    case_id = accused_case(api)
    api.get(f"/cases/{case_id}", "county_clerk", min_position=api.positions())
    for cadre in ("county_leader", "dept_clerk"):  # accused, or serving in an accused unit
        got = api.get(f"/cases/{case_id}", cadre)
        assert got.status_code == 200, (cadre, got.text)
        assert got.json()["petitioner_id"] is None, cadre
        assert got.json()["petitioner_withheld"] is True
        listed = api.get("/cases", cadre).json()["items"]
        assert [c["petitioner_id"] for c in listed if c["case_id"] == str(case_id)] == [None], cadre
    bystander = api.get(f"/cases/{case_id}", "county_clerk").json()
    assert bystander["petitioner_id"] is not None
    assert bystander["petitioner_withheld"] is False


def test_the_case_list_pages_through_only_readable_cases(api: Api) -> None:
    mine = []
    for _ in range(5):
        mine.append(api.register())
        api.register("henan_clerk")
        api.world.advance(minutes=1)
    api.get("/cases", "township_clerk", min_position=api.positions())
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 2} | ({"after": after} if after else {})
        page = api.get("/cases", "township_clerk", **params).json()
        seen += [c["case_id"] for c in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == [str(c) for c in mine]


def test_the_case_list_filters_by_status(api: Api) -> None:
    first, second = api.register(), api.register()
    read_own_write(api, first)
    accepted = api.get("/cases", "township_clerk", status="accepted").json()["items"]
    assert [c["case_id"] for c in accepted] == [str(first)]
    assert second


def test_the_case_list_filters_by_reply_deadline_and_refuses_a_closure_time_without_a_zone(api: Api) -> None:
    case_id = api.register()
    read_own_write(api, case_id)
    due = api.get(f"/cases/{case_id}", "township_clerk").json()["reply_due"]
    listed = api.get("/cases", "township_clerk", reply_due_from=due).json()["items"]
    assert [c["case_id"] for c in listed] == [str(case_id)]
    assert api.get("/cases", "township_clerk", reply_due_to=due).json()["items"] == []
    naive = api.get("/cases", "township_clerk", closed_from="2026-01-01T00:00:00")
    assert naive.status_code == 422
    assert naive.json()["type"] == "urn:problem-type:dutyledger:validation-failed"


def test_a_bad_cursor_is_a_validation_problem(api: Api) -> None:
    got = api.get("/cases", "township_clerk", after="garbage")
    assert got.status_code == 422


def test_a_case_as_of_an_instant_is_what_it_was_then(api: Api) -> None:
    case_id = api.register()
    registered = api.world.clock.now()
    api.world.advance(hours=2)
    read_own_write(api, case_id)
    then = api.get(
        f"/cases/{case_id}/as-of", "township_clerk", at=(registered + timedelta(minutes=1)).isoformat()
    )
    assert then.status_code == 200, then.text
    assert then.json()["status"] == "registered"
    assert then.json()["version"] == 1
    before = api.get(
        f"/cases/{case_id}/as-of", "township_clerk", at=(registered - timedelta(days=1)).isoformat()
    )
    assert before.status_code == 404
    naive = api.get(f"/cases/{case_id}/as-of", "township_clerk", at="2026-01-01T00:00:00")
    assert naive.status_code == 422


def test_responsibility_at_an_instant_names_the_handler_then(api: Api) -> None:
    case_id = api.register()
    read_own_write(api, case_id)
    api.world.advance(hours=1)
    api.post(
        f"/cases/{case_id}/handler",
        {"narrative": "指定", "handler_id": str(api.world.handler)},
        "township_clerk",
    )
    now = api.world.clock.now()
    held = api.get(f"/cases/{case_id}/responsibility", "township_clerk", at=now.isoformat()).json()
    assert held["handler_id"] == str(api.world.handler)
    earlier = api.get(
        f"/cases/{case_id}/responsibility", "township_clerk", at=(now - timedelta(minutes=30)).isoformat()
    ).json()
    assert earlier["handler_id"] is None


def test_cadre_accountability_is_readable_by_the_cadre_and_its_superiors_only(api: Api) -> None:
    case_id = api.register()
    read_own_write(api, case_id)
    window = {"from": "2020-01-01T00:00:00+08:00", "to": "2030-01-01T00:00:00+08:00"}
    path = f"/cadres/{api.world.township_clerk}/accountability"
    own = api.get(path, "township_clerk", **window)
    assert own.status_code == 200, own.text
    assert own.json()["cases_received"] == 1
    assert api.get(path, "county_head", **window).status_code == 200
    assert api.get(path, "outsider", **window).status_code == 403
    backwards = api.get(path, "township_clerk", **{"from": window["to"], "to": window["from"]})
    assert backwards.status_code == 422


def test_unit_statistics_roll_up_within_scope(api: Api) -> None:
    api.register()
    month = api.world.clock.now().strftime("%Y-%m")
    api.get("/cases", "county_head", min_position=api.positions())
    path = f"/units/{api.world.county}/statistics"
    stats = api.get(path, "county_head", first_month=month, last_month=month)
    assert stats.status_code == 200, stats.text
    assert stats.json()["period"]["counts"]["registered"] == 1
    assert api.get(path, "township_clerk", first_month=month, last_month=month).status_code == 403
    assert api.get(path, "county_head", first_month="2026-13", last_month=month).status_code == 422


def test_an_integrator_key_reads_no_casework(api: Api) -> None:
    case_id = api.register()
    got = api.get(f"/cases/{case_id}", "none", PrincipalKind.INTEGRATOR)
    assert got.status_code == 403


def test_a_timeline_is_read_at_one_position_of_the_views_even_when_a_runner_commits_meanwhile(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = api.register()
    reader = api.client.app.state.reader  # type: ignore[attr-defined]
    rows_of = cases.case_timeline

    def after_a_commit(views: Any, case: UUID) -> Any:
        """Between reading the case and its rows, record one more event and let the views apply it."""
        action = {"narrative": "走访", "kind": "visit"}
        answer = api.post(f"/cases/{case_id}/actions", action, "township_clerk")
        assert reader.reached(answer.json()["position"], 10)
        return rows_of(views, case)

    registered = api.positions()
    monkeypatch.setattr(cases, "case_timeline", after_a_commit)
    answer = api.get(f"/cases/{case_id}/timeline", "township_clerk", min_position=registered)
    assert answer.status_code == 200, answer.text
    assert [row["type"] for row in answer.json()] == ["Registered"]  # the rows as of the case read
    monkeypatch.setattr(cases, "case_timeline", rows_of)
    later = api.get(f"/cases/{case_id}/timeline", "township_clerk").json()
    assert [row["type"] for row in later] == ["Registered", "ActionRecorded"]
