"""Meeting, dispute and inquiry views over HTTP, within scope; rules published by an administrator."""

from __future__ import annotations

from datetime import date

from api.commands import ROUTES
from api.keys import PrincipalKind
from tests.api.conftest import Api


def test_a_meeting_is_readable_in_its_territory(api: Api) -> None:
    w = api.world
    meeting_id = w.do(w.county_head, "convene_meeting", unit_id=w.county, chair_id=w.county_head).aggregate_id
    got = api.get(f"/meetings/{meeting_id}", "county_clerk")
    assert got.status_code == 200, got.text
    assert got.json()["chair_id"] == str(w.county_head)
    assert got.json()["concluded"] is False
    assert api.get(f"/meetings/{meeting_id}", "henan_clerk").status_code == 403


def test_a_dispute_is_readable_in_its_territory(api: Api) -> None:
    w = api.world
    dispute_id = w.do(w.handler, "record_dispute", source="visit", category="land").aggregate_id
    got = api.get(f"/disputes/{dispute_id}", "township_clerk")
    assert got.status_code == 200, got.text
    assert got.json()["status"] == "open"
    assert api.get(f"/disputes/{dispute_id}", "outsider").status_code == 403
    assert api.get(f"/meetings/{dispute_id}", "township_clerk").status_code == 404  # not a meeting


def test_an_inquiry_is_read_by_inspectors_and_administrators_only(api: Api) -> None:
    w = api.world
    case_id = w.accepted()
    inquiry_id = w.do(w.inspector, "open_inquiry", case_ids=frozenset({case_id})).aggregate_id
    inspector = api.keys.create(PrincipalKind.INSPECTOR, cadre_id=w.inspector, scope_unit_ids=[w.city])[1]
    got = api.client.get(f"/inquiries/{inquiry_id}", headers={"Authorization": f"Bearer {inspector}"})
    assert got.status_code == 200, got.text
    assert got.json()["case_ids"] == [str(case_id)]
    assert api.get(f"/inquiries/{inquiry_id}", "admin", PrincipalKind.ADMINISTRATOR).status_code == 200
    assert api.get(f"/inquiries/{inquiry_id}", "township_clerk").status_code == 403


def test_an_inspector_sees_only_the_part_of_an_inquiry_within_its_units(api: Api) -> None:
    w = api.world
    mine, theirs = w.accepted(), w.register(actor=w.cadres["henan_clerk"])
    inquiry_id = w.do(
        w.inspector, "open_inquiry", case_ids=frozenset({mine, theirs}),
        cadre_ids=frozenset({w.township_clerk, w.cadres["henan_clerk"]}),
    ).aggregate_id  # fmt: skip
    county = api.keys.create(PrincipalKind.INSPECTOR, cadre_id=w.inspector, scope_unit_ids=[w.county])[1]
    got = api.client.get(f"/inquiries/{inquiry_id}", headers={"Authorization": f"Bearer {county}"})
    assert got.status_code == 200, got.text
    assert (got.json()["case_ids"], got.json()["cadre_ids"]) == ([str(mine)], [str(w.township_clerk)])
    everything = api.get(f"/inquiries/{inquiry_id}", "admin", PrincipalKind.ADMINISTRATOR).json()
    assert len(everything["case_ids"]) == len(everything["cadre_ids"]) == 2


def test_an_administrator_publishes_a_holiday_calendar(api: Api) -> None:
    example = next(r for r in ROUTES if r.command == "publish_holidays").example
    body = example | {"holidays": example["holidays"] | {"source": "国务院办公厅通知（更正）"}}
    assert api.post("/rules/holidays", body, "township_clerk").status_code == 403
    answer = api.post("/rules/holidays", body, "admin")
    assert answer.status_code == 200, answer.text
    assert date.fromisoformat(body["holidays"]["holidays"][0]).year == body["holidays"]["year"]


def test_an_inspector_key_opens_inquiries_and_records_findings_only_within_its_units(api: Api) -> None:
    w = api.world
    mine, theirs = w.accepted(), w.register(actor=w.cadres["henan_clerk"])
    county = api.keys.create(PrincipalKind.INSPECTOR, cadre_id=w.inspector, scope_unit_ids=[w.county])[1]
    headers = {"Authorization": f"Bearer {county}"}

    def refused(path: str, body: dict[str, object]) -> None:
        before = api.positions()
        answer = api.client.post(path, json=body, headers=headers)
        assert answer.status_code == 403, answer.text
        assert answer.json()["type"] == "urn:problem-type:dutyledger:not-allowed"
        assert api.positions() == before

    refused("/inquiries", {"narrative": "问责调查", "case_ids": [str(mine), str(theirs)]})
    refused("/inquiries", {"narrative": "问责调查", "cadre_ids": [str(w.cadres["henan_clerk"])]})
    opened = api.client.post(
        "/inquiries", json={"narrative": "问责调查", "case_ids": [str(mine)]}, headers=headers
    )
    assert opened.status_code == 201, opened.text
    findings = f"/inquiries/{opened.json()['aggregate_id']}/findings"
    finding = {
        "narrative": "受理迟延",
        "obligation": "delay",
        "proof": [{"aggregate_id": str(mine), "version": 2}],
    }
    refused(findings, finding | {"cadre_id": str(w.cadres["henan_clerk"])})
    refused(findings, finding | {"cadre_id": str(w.township_clerk), "case_id": str(theirs)})
    within = finding | {"cadre_id": str(w.township_clerk), "case_id": str(mine)}
    assert api.client.post(findings, json=within, headers=headers).status_code == 200
    # The inspector's own cadre key is not limited to units: it reaches the cadre's whole jurisdiction.
    wide = api.post("/inquiries", {"narrative": "问责调查", "case_ids": [str(theirs)]}, "inspector")
    assert wide.status_code == 201, wide.text
