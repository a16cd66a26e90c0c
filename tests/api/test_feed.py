"""The pull feed: every event once, at a contiguous log index, in CloudEvents, filtered by the key."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import api.feed.log as feed_log
import api.routes.events as events_routes
from api.keys import PrincipalKind
from domain.catalogue import type_of_topic
from projections import build_views
from projections.digest import digest
from projections.rebuild import rebuild
from projections.store import ViewStore
from tests.api.conftest import Api
from tests.api.test_petitioners import IDENTITY, file_identity

ADMIN = {"cadre": "admin", "kind": PrincipalKind.ADMINISTRATOR}


def caught_up(api: Api) -> int:
    """Wait until the sequencer has applied every saved event; the log's length."""
    reader = api.client.app.state.reader  # type: ignore[attr-defined]
    assert reader.reached(api.positions(), 10)
    return int(api.client.app.state.public_log.length())  # type: ignore[attr-defined]


def integrator(api: Api, *, types: tuple[str, ...] = (), units: tuple[str, ...] = ()) -> dict[str, str]:
    _, token = api.keys.create(
        PrincipalKind.INTEGRATOR,
        event_types=types,
        scope_unit_ids=[api.world.units[u] for u in units],
        label="feed test",
    )
    return {"Authorization": f"Bearer {token}"}


def read(api: Api, headers: dict[str, str], **params: Any) -> Any:
    answer = api.client.get("/events", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer


def walk(api: Api, headers: dict[str, str], limit: int = 7, **params: Any) -> list[dict[str, Any]]:
    """Every event the key reads, following `next` cursors to the end."""
    seen: list[dict[str, Any]] = []
    after = -1
    while True:
        page = read(api, headers, after=after, limit=limit, **params).json()
        seen += page["events"]
        if not page["complete"]:
            return seen
        after = page["next"]


def busy(api: Api) -> None:
    """A few cases with some history, from two townships."""
    for _ in range(3):
        case_id = api.register()
        to_county = {"narrative": "转县局", "to_unit_id": str(api.world.county_bureau)}
        api.post(f"/cases/{case_id}/forward", to_county, "township_clerk")
    api.register("county_clerk")


def test_every_stored_event_has_a_log_index_from_zero_without_gaps_in_record_order(api: Api) -> None:
    busy(api)
    length = caught_up(api)
    seen = walk(api, integrator(api))
    stored = api.world.ledger.command_log.read_log(0, 100_000)
    assert [e["logindex"] for e in seen] == list(range(length)) == list(range(len(stored)))
    assert [(e["subject"], e["aggregateversion"]) for e in seen] == [(r[1], r[2]) for r in stored]
    assert [e["type"] for e in seen] == [type_of_topic(r[3]) for r in stored]


def test_each_event_is_a_cloudevent_with_the_ledgers_provenance(api: Api) -> None:
    case_id = api.register()
    caught_up(api)
    event = next(e for e in walk(api, integrator(api)) if e["subject"] == str(case_id))
    assert event["specversion"] == "1.0"
    assert event["id"] == f"{case_id}:1"
    assert event["type"] == "cn.petition.case.registered.v1"
    assert event["source"] == "http://127.0.0.1:8000"
    assert event["dataschema"].endswith("/schemas/cn.petition.case.registered.v1.json")
    assert event["actorid"] == str(api.world.township_clerk)
    assert event["actorunitid"] == str(api.world.township)
    assert event["time"] == event["data"]["timestamp"]
    assert event["occurredat"] == event["data"]["occurred_at"]
    assert event["causationid"] == event["data"]["command_id"]
    assert event["correlationid"] == event["data"]["correlation_id"]
    assert event["data"]["narrative"] == "来访反映征地补偿问题"


def test_a_complete_page_never_changes_and_says_so(api: Api) -> None:
    busy(api)
    length = caught_up(api)
    headers = integrator(api)
    first = read(api, headers, after=-1, limit=5)
    assert first.json()["complete"] is True
    assert first.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert first.headers["Next-After"] == "4"
    assert "after=4" in first.headers["Link"]
    api.register()
    caught_up(api)
    again = read(api, headers, after=-1, limit=5)
    assert again.content == first.content
    assert again.headers["ETag"] == first.headers["ETag"]
    unchanged = api.client.get("/events", params={"after": -1, "limit": 5},
                               headers={**headers, "If-None-Match": first.headers["ETag"]})  # fmt: skip
    assert unchanged.status_code == 304
    last = read(api, headers, after=length - 2, limit=100)
    assert last.json()["complete"] is False
    assert last.headers["Cache-Control"] == "no-cache"


def test_the_batch_and_ndjson_forms_carry_the_same_events_as_the_page(api: Api) -> None:
    busy(api)
    length = caught_up(api)
    headers = integrator(api)
    page = read(api, headers, after=2, limit=9).json()["events"]
    batch = api.client.get("/events", params={"after": 2, "limit": 9},
                           headers={**headers, "Accept": "application/cloudevents-batch+json"})  # fmt: skip
    assert batch.headers["content-type"] == "application/cloudevents-batch+json"
    assert batch.json() == page
    bulk = api.client.get("/events", params={"after": 2, "limit": 9},
                          headers={**headers, "Accept": "application/x-ndjson"})  # fmt: skip
    assert bulk.headers["content-type"].startswith("application/x-ndjson")
    assert [orjson.loads(line) for line in bulk.content.splitlines()] == page
    assert bulk.headers["Next-After"] == "11"
    everything = api.client.get("/events", params={"limit": 100_000},
                                headers={**headers, "Accept": "application/x-ndjson"})  # fmt: skip
    assert len(everything.content.splitlines()) == length
    assert everything.headers["Next-After"] == str(length - 1)


def test_a_page_holds_at_most_a_thousand_events(api: Api) -> None:
    caught_up(api)
    refused = api.client.get("/events", params={"limit": 1001}, headers=integrator(api))
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"/events?after={2**63}", {}),
        (f"/events/{2**63}", {}),
        (f"/events/stream?after={2**63}", {}),
        ("/events/stream", {"Last-Event-ID": str(2**63)}),
        (f"/ledger/proofs/consistency?from=1&to={2**63}", {}),
    ],
)
def test_a_log_index_beyond_any_log_is_refused_before_anything_is_read(
    api: Api, path: str, headers: dict[str, str]
) -> None:
    """Beyond SQL's 64-bit integers such a number broke the query, after a stream had begun."""
    caught_up(api)
    refused = api.client.get(path, headers={**integrator(api), **headers})
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == "urn:problem-type:dutyledger:validation-failed"


def test_one_event_is_read_by_its_log_index(api: Api) -> None:
    length = caught_up(api)
    headers = integrator(api)
    one = api.client.get("/events/3", headers=headers)
    assert one.status_code == 200
    assert one.headers["content-type"] == "application/cloudevents+json"
    assert one.json() == read(api, headers, after=2, limit=1).json()["events"][0]
    missing = api.client.get(f"/events/{length}", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:problem-type:dutyledger:not-found"


def test_a_key_limited_to_event_types_reads_only_those_and_still_moves_on(api: Api) -> None:
    busy(api)
    length = caught_up(api)
    headers = integrator(api, types=("cn.petition.case.*",))
    seen = walk(api, headers)
    assert {e["type"] for e in seen} == {"cn.petition.case.registered.v1", "cn.petition.case.forwarded.v1"}
    assert len(seen) == 7
    page = read(api, headers, after=-1, limit=1000).json()
    assert page["next"] == length - 1
    widened = read(api, headers, type="cn.petition.unit.*").json()
    assert widened["events"] == []


def test_a_key_limited_to_a_unit_subtree_reads_only_events_recorded_there(api: Api) -> None:
    busy(api)
    caught_up(api)
    seen = walk(api, integrator(api, units=("township",)))
    assert seen
    assert {e["actorunitid"] for e in seen} == {str(api.world.township)}
    county = walk(api, integrator(api, units=("county",)))
    assert {e["actorunitid"] for e in county} == {str(api.world.township), str(api.world.county_bureau)}
    narrowed = walk(api, integrator(api, units=("county",)), unit=str(api.world.county_bureau))
    assert {e["actorunitid"] for e in narrowed} == {str(api.world.county_bureau)}


def test_an_event_a_key_may_not_read_is_refused_by_index(api: Api) -> None:
    caught_up(api)
    refused = api.client.get("/events/0", headers=integrator(api, types=("cn.petition.case.*",)))
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:problem-type:dutyledger:out-of-scope"


def test_an_unknown_event_type_is_a_clear_error(api: Api) -> None:
    caught_up(api)
    refused = api.client.get("/events", params={"type": "cn.petition.nothing.v1"}, headers=integrator(api))
    assert refused.status_code == 422
    assert "matches no event type" in refused.json()["detail"]
    created = api.client.post("/admin/keys", json={"kind": "integrator", "event_types": ["nope"]},
                              headers=api.headers("admin", PrincipalKind.ADMINISTRATOR))  # fmt: skip
    assert created.status_code == 422


@pytest.mark.parametrize("kind", [PrincipalKind.CADRE, PrincipalKind.INSPECTOR])
def test_cadre_and_inspector_keys_do_not_read_the_feed(api: Api, kind: PrincipalKind) -> None:
    cadre = "inspector" if kind is PrincipalKind.INSPECTOR else "township_clerk"
    if kind is PrincipalKind.INSPECTOR:
        _, token = api.keys.create(kind, cadre_id=api.world.cadres[cadre], scope_unit_ids=[api.world.county])
        headers = {"Authorization": f"Bearer {token}"}
    else:
        headers = api.headers(cadre)
    assert api.client.get("/events", headers=headers).status_code == 403
    assert api.client.get("/events").status_code == 401


def test_an_administrator_reads_the_whole_feed(api: Api) -> None:
    length = caught_up(api)
    page = api.client.get("/events", params={"limit": 1000}, headers=api.headers(**ADMIN)).json()
    assert len(page["events"]) == length


def test_no_event_in_the_feed_carries_a_petitioners_identity(api: Api) -> None:
    filed = file_identity(api)
    assert filed.status_code == 201
    petitioner_id = filed.json()["petitioner_id"]
    case_id = api.register("county_clerk", petitioner_id=petitioner_id)
    caught_up(api)
    read_identity = api.client.get(f"/cases/{case_id}/petitioner", params={"reason": "回访核实诉求"},
                                   headers=api.headers("county_clerk"))  # fmt: skip
    assert read_identity.status_code == 200, read_identity.text
    caught_up(api)
    everything = api.client.get("/events", params={"limit": 100_000},
                                headers={**integrator(api), "Accept": "application/x-ndjson"})  # fmt: skip
    text = everything.content.decode()
    assert petitioner_id in text  # the pseudonymous id is the only trace
    for value in IDENTITY.values():
        assert value not in text


def test_the_sequence_is_the_same_after_a_rebuild(api: Api, database_url: str) -> None:
    busy(api)
    caught_up(api)
    before = read(api, integrator(api), limit=1000).json()["events"]
    (view,) = build_views(api.world.ledger, ["event_log"])
    store = ViewStore(database_url)
    connection = store.connect()
    try:
        was = digest(connection, view)
        rebuild(api.world.ledger, view, store)
        assert digest(connection, view) == was
    finally:
        connection.close()
    assert read(api, integrator(api), limit=1000).json()["events"] == before


ACCUSATION = "反映管理员违规收取费用"


def accusing_the_administrator(api: Api, **accused: list[str]) -> tuple[str, str]:
    """A case whose petition accuses the administrator (by default, their person), with an identity
    on file that the clerk has read; its id and its petitioner's."""
    filed = file_identity(api)
    assert filed.status_code == 201, filed.text
    petitioner_id = filed.json()["petitioner_id"]
    accused = accused or {"accused_cadre_ids": [str(api.world.cadres["admin"])]}
    case_id = api.register("county_clerk", petitioner_id=petitioner_id, narrative=ACCUSATION, **accused)
    read_identity = api.get(
        f"/cases/{case_id}/petitioner", "county_clerk", reason="回访核实诉求", min_position=api.positions()
    )
    assert read_identity.status_code == 200, read_identity.text
    accepted = api.post(f"/cases/{case_id}/accept", {"narrative": "予以受理"}, "county_clerk")
    assert accepted.status_code == 200, accepted.text
    return str(case_id), petitioner_id


def shown(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(e["subject"], e["type"].split(".")[-2]) for e in events}


def test_an_accused_administrator_is_not_shown_the_accusation_nor_its_petitioner_in_the_feed(
    api: Api,
) -> None:
    """信访工作条例 Art. 28 binds the feed too: an administrator the petition accuses reads the rest."""
    case_id, petitioner_id = accusing_the_administrator(api)
    other = str(
        api.register("county_clerk", narrative="反映副县长", accused_cadre_ids=[str(api.world.county_leader)])
    )
    caught_up(api)
    everything = walk(api, integrator(api))
    as_admin = walk(api, api.headers(**ADMIN))

    assert ACCUSATION in orjson.dumps(everything).decode()
    assert ACCUSATION not in orjson.dumps(as_admin).decode()
    assert petitioner_id not in orjson.dumps(as_admin).decode()
    withheld = shown(everything) - shown(as_admin)
    assert withheld == {
        (case_id, "registered"),
        (petitioner_id, "identified"),
        (petitioner_id, "identity_accessed"),
    }
    assert {(case_id, "accepted"), (other, "registered")} <= shown(as_admin)

    bulk = api.client.get("/events", params={"limit": 100_000},
                          headers={**api.headers(**ADMIN), "Accept": "application/x-ndjson"})  # fmt: skip
    lines = [orjson.loads(line) for line in bulk.content.splitlines()]
    assert [e["logindex"] for e in lines] == [e["logindex"] for e in as_admin]


def test_an_event_withheld_from_an_accused_administrator_is_refused_by_index_and_proved_without_its_bytes(
    api: Api,
) -> None:
    case_id, _ = accusing_the_administrator(api)
    length = caught_up(api)
    indexes = {(e["subject"], e["type"].split(".")[-2]): e["logindex"] for e in walk(api, integrator(api))}
    registered, accepted = indexes[(case_id, "registered")], indexes[(case_id, "accepted")]
    admin = api.headers(**ADMIN)
    for path in (f"/events/{registered}", f"/events/{registered}/proof"):
        refused = api.client.get(path, headers=admin)
        assert refused.status_code == 403, path
        assert refused.json()["type"] == "urn:problem-type:dutyledger:out-of-scope"
        assert ACCUSATION not in refused.text
    assert api.client.get(f"/events/{accepted}", headers=admin).status_code == 200
    params = {"index": registered, "tree_size": length}
    proved = api.client.get("/ledger/proofs/inclusion", params=params, headers=admin)
    assert proved.status_code == 200, proved.text
    assert "leaf" not in proved.json()
    assert "leaf" in api.client.get("/ledger/proofs/inclusion", params=params, headers=integrator(api)).json()


def test_a_unit_accused_withholds_the_accusation_from_the_administrator_serving_in_it(api: Api) -> None:
    admins_unit = api.world.ledger.actor_at(api.world.cadres["admin"]).unit_id
    case_id, _ = accusing_the_administrator(api, accused_unit_ids=[str(admins_unit)])
    caught_up(api)
    assert (case_id, "registered") not in shown(walk(api, api.headers(**ADMIN)))


def test_a_unit_accused_withholds_the_accusation_from_an_administrator_who_served_in_it_before(
    api: Api,
) -> None:
    admins_unit = api.world.ledger.actor_at(api.world.cadres["admin"]).unit_id
    body = {"narrative": "调任", "unit_id": str(api.world.county_bureau), "position": "科员"}
    moved = api.post(f"/cadres/{api.world.cadres['admin']}/transfer", body, "admin")
    assert moved.status_code == 200, moved.text
    case_id, _ = accusing_the_administrator(api, accused_unit_ids=[str(admins_unit)])
    caught_up(api)
    assert (case_id, "registered") not in shown(walk(api, api.headers(**ADMIN)))


def test_an_administrators_pages_are_never_immutable_a_later_accusation_may_withhold_from_them(
    api: Api,
) -> None:
    busy(api)
    caught_up(api)
    as_admin = read(api, api.headers(**ADMIN), limit=3)
    as_integrator = read(api, integrator(api), limit=3)
    assert as_integrator.headers["Cache-Control"].endswith("immutable")
    assert as_admin.headers["Cache-Control"] == "no-cache"
    one = api.client.get("/events/0", headers=api.headers(**ADMIN))
    assert one.headers["Cache-Control"] == "private, no-cache"


def test_a_bulk_read_by_an_accused_administrator_looks_up_the_accusations_once_not_per_page(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id, _ = accusing_the_administrator(api)
    busy(api)
    caught_up(api)
    looked: list[object] = []
    original = feed_log.withheld_from

    def counted(*args: Any) -> Any:
        looked.append(args)
        return original(*args)

    monkeypatch.setattr(feed_log, "withheld_from", counted)
    monkeypatch.setattr(events_routes, "MAX_PAGE", 5)
    bulk = api.client.get("/events", params={"limit": 100_000},
                          headers={**api.headers(**ADMIN), "Accept": "application/x-ndjson"})  # fmt: skip
    lines = [orjson.loads(line) for line in bulk.content.splitlines()]
    assert len(lines) > 3 * 5  # many pages
    assert (case_id, "cn.petition.case.registered.v1") not in {(e["subject"], e["type"]) for e in lines}
    assert len(looked) == 1
