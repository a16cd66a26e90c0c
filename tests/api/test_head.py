"""HEAD answers what GET would, without the body; the event stream and the identity read keep refusing it."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.test_petitioners import case_of_identified_petitioner


def test_head_on_a_resource_answers_the_gets_status_and_headers_without_a_body(api: Api) -> None:
    case_id = api.register()
    got = api.get(f"/cases/{case_id}", "township_clerk", min_position=api.positions())
    head = api.client.head(f"/cases/{case_id}", headers=api.headers("township_clerk"))
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert api.client.head("/health/live").status_code == 200
    missing = api.client.head(
        "/cases/00000000-0000-0000-0000-000000000000", headers=api.headers("township_clerk")
    )
    assert (missing.status_code, missing.content) == (404, b"")
    assert missing.headers["content-type"] == "application/problem+json"


def test_head_reads_no_identity_and_records_no_read_of_one(api: Api) -> None:
    case_id, petitioner_id = case_of_identified_petitioner(api)
    head = api.client.head(f"/cases/{case_id}/petitioner?reason=核实", headers=api.headers("county_clerk"))
    assert head.status_code == 405
    assert len(api.world.events(petitioner_id)) == 1  # filed; no IdentityAccessed


def test_head_on_the_event_stream_is_refused_not_left_running(api: Api) -> None:
    assert api.client.head("/events/stream", headers=api.headers("admin")).status_code == 405
