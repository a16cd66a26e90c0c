"""Petitioners' identities: outside the events, never shown to the accused, every read recorded, erasable."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from api.identity import IdentityStore
from api.keys import PrincipalKind
from domain.petitioner import Petitioner
from tests.api.conftest import Api, registration
from tests.api.test_cli import dutyledger

IDENTITY = {"name": "张三", "phone": "13800000000", "id_number": "412723199001011234", "address": "东村3组"}


def file_identity(api: Api, cadre: str = "county_clerk", **headers: str) -> Any:
    return api.post("/petitioners", {"narrative": "来访登记身份信息", **IDENTITY}, cadre, **headers)


def case_of_identified_petitioner(api: Api) -> tuple[UUID, UUID]:
    """A case at the county bureau, accusing the county leader and the county department."""
    filed = file_identity(api)
    assert filed.status_code == 201, filed.text
    petitioner_id = UUID(filed.json()["petitioner_id"])
    case_id = api.register(
        "county_clerk",
        petitioner_id=str(petitioner_id),
        accused_unit_ids=[str(api.world.county_dept)],
        accused_cadre_ids=[str(api.world.county_leader)],
    )
    api.get(f"/cases/{case_id}", "county_clerk", min_position=api.positions())
    return case_id, petitioner_id


def every_stored_byte(api: Api) -> bytes:
    """Every event payload in the ledger, as stored."""
    rows = api.world.ledger.command_log.read_log(0, 1_000_000)
    return b"".join(bytes(row[4]) for row in rows)


def test_an_identity_is_filed_outside_the_events(api: Api) -> None:
    case_id, petitioner_id = case_of_identified_petitioner(api)
    stored = every_stored_byte(api)
    for value in IDENTITY.values():
        assert value.encode() not in stored
    (identified,) = api.world.events(petitioner_id)
    assert isinstance(identified, Petitioner.Identified)
    assert identified.actor_id == api.world.county_clerk
    case = api.get(f"/cases/{case_id}", "county_clerk").json()
    assert case["petitioner_identity"] == "on_file"


def test_reading_the_identity_records_who_read_it_for_which_case_and_why(api: Api) -> None:
    case_id, petitioner_id = case_of_identified_petitioner(api)
    got = api.get(f"/cases/{case_id}/petitioner", "county_clerk", reason="回访核实诉求")
    assert got.status_code == 200, got.text
    assert got.json()["identity"] == IDENTITY
    accessed = api.world.events(petitioner_id)[-1]
    assert isinstance(accessed, Petitioner.IdentityAccessed)
    assert (accessed.actor_id, accessed.case_id, accessed.narrative) == (
        api.world.county_clerk,
        case_id,
        "回访核实诉求",
    )
    api.get(f"/cases/{case_id}/petitioner", "county_clerk", reason="第二次核实")
    assert len(api.world.events(petitioner_id)) == 3  # every read is recorded


def test_a_read_without_a_reason_is_refused_and_not_recorded(api: Api) -> None:
    case_id, petitioner_id = case_of_identified_petitioner(api)
    assert api.get(f"/cases/{case_id}/petitioner", "county_clerk").status_code == 422
    assert len(api.world.events(petitioner_id)) == 1


def test_the_accused_cannot_obtain_the_identity_through_any_endpoint(api: Api) -> None:
    case_id, petitioner_id = case_of_identified_petitioner(api)
    for cadre in ("county_leader", "dept_clerk"):
        assert api.get(f"/cases/{case_id}/petitioner", cadre, reason="想知道").status_code == 403
        answers = [
            api.get(f"/cases/{case_id}", cadre),
            api.get("/cases", cadre),
            api.get(f"/cases/{case_id}/timeline", cadre),
            api.get(f"/cases/{case_id}/as-of", cadre, at=api.world.clock.now().isoformat()),
            api.get(f"/cases/{case_id}/responsibility", cadre, at=api.world.clock.now().isoformat()),
            api.get(
                f"/cadres/{api.world.county_leader}/accountability",
                cadre,
                **{"from": "2020-01-01T00:00:00+00:00", "to": "2030-01-01T00:00:00+00:00"},
            ),
        ]
        for answer in answers:
            text = answer.text
            assert str(petitioner_id) not in text, (cadre, answer.url)
            for value in IDENTITY.values():
                assert value not in text
    assert len(api.world.events(petitioner_id)) == 1  # refused reads record nothing


def test_a_cadre_transferred_out_of_the_accused_unit_is_still_refused_the_identity_and_the_accusation(
    api: Api,
) -> None:
    """Art. 28: a petition against a unit accuses who served in it, wherever they serve now."""
    case_id, petitioner_id = case_of_identified_petitioner(api)
    body = {"narrative": "调任", "unit_id": str(api.world.county_bureau), "position": "科员"}
    moved = api.post(f"/cadres/{api.world.dept_clerk}/transfer", body, "admin")
    assert moved.status_code == 200, moved.text
    api.get(f"/cases/{case_id}", "county_clerk", min_position=api.positions())
    assert api.get(f"/cases/{case_id}/petitioner", "dept_clerk", reason="核实").status_code == 403
    case = api.get(f"/cases/{case_id}", "dept_clerk").json()
    assert (case["petitioner_withheld"], case["petitioner_id"]) == (True, None)
    timeline = api.get(f"/cases/{case_id}/timeline", "dept_clerk")
    assert timeline.status_code == 200, timeline.text
    assert registration()["narrative"] not in timeline.text
    assert len(api.world.events(petitioner_id)) == 1  # refused reads record nothing


def test_the_accused_cannot_read_the_identity_through_another_case_of_the_same_petitioner(api: Api) -> None:
    """The petitioner's id is no secret to an administrator (the event feed carries it), and anyone
    may register a case for a known petitioner; recusal follows the petitioner, not one case."""
    _, petitioner_id = case_of_identified_petitioner(api)
    for cadre in ("dept_clerk", "county_leader"):
        other = api.register(cadre, petitioner_id=str(petitioner_id))
        api.get(f"/cases/{other}", cadre, min_position=api.positions())
        refused = api.get(f"/cases/{other}/petitioner", cadre, reason="核实身份")
        assert refused.status_code == 403, refused.text
        assert not any(value in refused.text for value in IDENTITY.values())
    assert len(api.world.events(petitioner_id)) == 1  # refused reads record nothing


def test_the_accused_reads_neither_the_accusation_nor_its_materials_in_any_view(api: Api) -> None:
    """信访工作条例 Art. 28: the accusation and what concerns it never reach those it accuses."""
    case_id, _ = case_of_identified_petitioner(api)
    accusation = registration()["narrative"]
    seen_by_clerk = api.get(f"/cases/{case_id}/timeline", "county_clerk").text
    assert accusation in seen_by_clerk
    for cadre in ("county_leader", "dept_clerk"):
        now = api.world.clock.now().isoformat()
        for path, params in (
            (f"/cases/{case_id}/timeline", {}),
            (f"/cases/{case_id}", {}),
            ("/cases", {}),
            (f"/cases/{case_id}/as-of", {"at": now}),
            (f"/cases/{case_id}/responsibility", {"at": now}),
        ):
            answer = api.get(path, cadre, **params)
            assert answer.status_code == 200, answer.text
            assert accusation not in answer.text, (cadre, path)
        timeline = orjson.loads(api.get(f"/cases/{case_id}/timeline", cadre).content)
        assert timeline[0]["type"] == "Registered"
        assert "withheld" in timeline[0]["narrative"]
        assert timeline[0]["evidence"] == []


def test_an_outsider_cannot_read_the_identity(api: Api) -> None:
    case_id, _ = case_of_identified_petitioner(api)
    assert api.get(f"/cases/{case_id}/petitioner", "outsider", reason="好奇").status_code == 403


def test_a_retried_filing_answers_the_same_id_and_another_identity_under_its_key_conflicts(api: Api) -> None:
    first = file_identity(api, **{"Idempotency-Key": "file-1"})
    again = file_identity(api, **{"Idempotency-Key": "file-1"})
    assert again.json()["petitioner_id"] == first.json()["petitioner_id"]
    assert again.json()["replayed"] is True
    other = api.post("/petitioners", {"narrative": "登记", **IDENTITY, "name": "李四"}, "county_clerk",
                     **{"Idempotency-Key": "file-1"})  # fmt: skip
    assert other.status_code == 409


def test_a_filing_retried_after_its_identity_was_erased_is_a_conflict_not_a_crash(api: Api) -> None:
    first = file_identity(api, **{"Idempotency-Key": "file-3"})
    petitioner_id = first.json()["petitioner_id"]
    admin = api.headers("admin", PrincipalKind.ADMINISTRATOR)
    erased = api.client.post(
        f"/petitioners/{petitioner_id}/erase", json={"narrative": "信访人申请删除"}, headers=admin
    )
    assert erased.status_code == 200, erased.text
    before = api.positions()
    again = file_identity(api, **{"Idempotency-Key": "file-3"})
    assert again.status_code == 409, again.text
    assert again.json()["type"] == "urn:problem-type:dutyledger:idempotency-conflict"
    assert "erased" in again.json()["detail"]
    assert api.positions() == before


def test_a_refused_filing_leaves_no_identity_behind(api: Api, database_url: str) -> None:
    api.world.do(api.world.admin, "retire_cadre", cadre_id=api.world.handler)
    refused = file_identity(api, "handler", **{"Idempotency-Key": "file-2"})
    assert refused.status_code == 403
    store = IdentityStore(database_url)
    try:
        from domain.ids import derived_id

        assert store.statuses([derived_id("petitioner", "file-2")]) == {
            derived_id("petitioner", "file-2"): "none"
        }
    finally:
        store.close()


def test_erasing_deletes_the_identity_and_the_case_shows_it_erased(api: Api, database_url: str) -> None:
    case_id, petitioner_id = case_of_identified_petitioner(api)
    done = dutyledger("petitioners", "erase", str(petitioner_id), "--reason", "信访人申请删除个人信息",
                      "--admin", str(api.world.admin), database_url=database_url)  # fmt: skip
    assert done.returncode == 0, done.stderr
    erased = api.world.events(petitioner_id)[-1]
    assert isinstance(erased, Petitioner.IdentityErased)
    assert erased.actor_id == api.world.admin
    got = api.get(f"/cases/{case_id}/petitioner", "county_clerk", reason="核实").json()
    assert got == {"petitioner_id": str(petitioner_id), "status": "erased", "identity": None}
    case = api.get(f"/cases/{case_id}", "county_clerk").json()
    assert case["petitioner_identity"] == "erased"
    assert case["petitioner_id"] == str(petitioner_id)  # the events and views stay valid
    rows = IdentityStore(database_url)
    try:
        assert rows.get(petitioner_id) == "erased"
    finally:
        rows.close()
    assert (
        orjson.loads(api.get(f"/cases/{case_id}/timeline", "county_clerk").content)[0]["type"] == "Registered"
    )


def test_only_an_administrator_erases(api: Api, database_url: str) -> None:
    _, petitioner_id = case_of_identified_petitioner(api)
    done = dutyledger("petitioners", "erase", str(petitioner_id), "--reason", "删除",
                      "--admin", str(api.world.county_clerk), database_url=database_url)  # fmt: skip
    assert done.returncode == 1
    assert "administrator" in done.stderr
    refused = api.post(f"/petitioners/{petitioner_id}/erase", {"narrative": "删除"}, "county_clerk")
    assert refused.status_code == 403
