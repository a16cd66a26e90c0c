"""Published schemas: every feed item of the demo matches them, and a type's schema never changes.

The feed is checked as an integrator would check it: schemas are fetched from the app's
own `/schemas/…` routes (by each item's `dataschema`), validated with `jsonschema` (Draft
2020-12, formats checked), and each item is parsed with the CloudEvents SDK.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1.http import from_json as v1_from_json
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import register_topic
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api.app import create_app
from api.feed import schemas
from api.feed.log import FeedFilter
from api.feed.schemas import SCHEMA_MEDIA, data_schema, split_type
from api.keys import PrincipalKind
from api.settings import Settings
from domain.catalogue import all_event_classes, by_topic, class_version, event_type, type_of_topic
from domain.demo import demo_clock, load_demo
from domain.demo.world import build_org
from domain.events import LedgerEvent
from domain.ledger import Ledger
from tests.api.conftest import Api
from tests.conftest import START, fresh_store

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
DOCS = Path(__file__).parents[2] / "docs"
ARCHIVE = DOCS / "schemas"

FORMATS = FormatChecker()
"""Every format jsonschema knows (uuid, date, …), and RFC 3339 date-times without an extra package."""


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return "T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None


@dataclass
class SchemaClient:
    """Validators built from what the app serves, fetched over HTTP as an integrator would."""

    client: TestClient
    public_url: str
    validators: dict[str, Draft202012Validator] = field(default_factory=dict)
    fetched: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.public_url = self.public_url.rstrip("/")
        self.registry: Registry[Any] = Registry(retrieve=self._retrieve)  # type: ignore[call-arg]

    def fetch(self, url: str) -> Any:
        assert url.startswith(self.public_url + "/schemas/"), f"{url} is not one of this ledger's schemas"
        answer = self.client.get(url.removeprefix(self.public_url))
        assert answer.status_code == 200, (url, answer.text)
        assert answer.headers["content-type"] == SCHEMA_MEDIA
        return answer.json()

    def _retrieve(self, uri: str) -> Resource[Any]:
        """A `$ref` to another schema: fetched once (the registry itself keeps nothing it retrieves)."""
        if uri not in self.fetched:
            self.fetched[uri] = self.fetch(uri)
        return Resource.from_contents(self.fetched[uri], default_specification=DRAFT202012)

    def validator(
        self, url: str, schema: dict[str, Any] | None = None, key: str = ""
    ) -> Draft202012Validator:
        """The validator of the schema at `url` (fetched), or of `schema` with `url` as its base."""
        key = key or url
        if key not in self.validators:
            found = self.fetch(url) if schema is None else {**schema, "$id": url}
            Draft202012Validator.check_schema(found)
            self.validators[key] = Draft202012Validator(found, registry=self.registry, format_checker=FORMATS)
        return self.validators[key]

    def check(self, item: dict[str, Any], asyncapi: dict[str, Any]) -> None:
        """One feed item against its data schema and the envelope; the first of a type, also against
        its AsyncAPI message payload (which only combines those two: once per type shows the wiring)."""
        self.validator(item["dataschema"]).validate(item["data"])
        self.validator(self.public_url + schemas.ENVELOPE_PATH).validate(item)
        key = f"asyncapi {item['type']}"
        if key not in self.validators:
            message = asyncapi["components"]["schemas"][item["type"]]
            self.validator(self.public_url + schemas.ASYNCAPI_PATH, message, key=key).validate(item)


def parsed_alike(item: dict[str, Any]) -> None:
    """The item parses with the CloudEvents SDK (its current API and the v1 one) to the same attributes."""
    text = json.dumps(item, ensure_ascii=False)
    event = JSONFormat().read(None, text.encode())
    attributes = event.get_attributes()
    expected = {key: value for key, value in item.items() if key != "data"}
    assert attributes["time"] == datetime.fromisoformat(item["time"])
    assert {**attributes, "time": item["time"]} == expected
    assert event.get_data() == item["data"]
    legacy = v1_from_json(text)
    assert legacy.get_attributes() == expected
    assert legacy.get_data() == item["data"]


# --- the whole demo ledger through GET /events --------------------------------------------


@dataclass
class ServedDemo:
    client: TestClient
    ledger: Ledger
    headers: dict[str, str]
    public_url: str


@pytest.fixture(scope="module", params=BACKENDS)
def served_demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedDemo]:
    """The demo ledger (seed 7) served by the app, its sequencer caught up, with an administrator's key."""
    with fresh_store(request.param, tmp_path_factory.mktemp("demo")) as url:
        clock = demo_clock()
        ledger = Ledger(url, clock=clock)
        try:
            load_demo(ledger, clock)
            settings = Settings(database_url=url, rate_limit_per_second=0)
            app = create_app(settings, ledger=ledger)
            with TestClient(app) as client:
                admin = build_org(7).cadre_id("admin")
                _, token = app.state.keys.create(PrincipalKind.ADMINISTRATOR, cadre_id=admin, label="schemas")
                assert app.state.reader.reached(ledger.recorder.max_notification_id(), 120)
                yield ServedDemo(client, ledger, {"Authorization": f"Bearer {token}"}, settings.public_url)
        finally:
            ledger.close()


def walk(served: ServedDemo) -> Iterator[dict[str, Any]]:
    """Every item of the feed, a page of 1000 at a time, until a page comes back empty."""
    after = -1
    while True:
        answer = served.client.get("/events", params={"after": after, "limit": 1000}, headers=served.headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        if not page["events"]:
            return
        yield from page["events"]
        assert page["next"] > after, "the cursor must move on"
        after = page["next"]


def test_every_item_of_the_demo_feed_matches_its_published_schemas_and_parses_as_a_cloudevent(
    served_demo: ServedDemo,
) -> None:
    published = SchemaClient(served_demo.client, served_demo.public_url)
    asyncapi = served_demo.client.get(schemas.ASYNCAPI_PATH).json()
    indexes, types = [], set()
    for item in walk(served_demo):
        assert item["dataschema"] == f"{served_demo.public_url}/schemas/{item['type']}.json"
        published.check(item, asyncapi)
        parsed_alike(item)
        assert item["id"] == f"{item['subject']}:{item['aggregateversion']}"
        indexes.append(item["logindex"])
        types.add(item["type"])
    stored = served_demo.ledger.recorder.select_notifications(start=1, limit=10**6)
    assert indexes == list(range(len(stored))), "the walk covers the whole log, in order, once"
    assert len(types) > 30, f"the demo exercises most event types ({len(types)})"
    assert types <= {event_type(event) for event in all_event_classes()}


def test_the_envelopes_the_database_assembles_are_byte_for_byte_those_python_encodes(
    served_demo: ServedDemo,
) -> None:
    state = served_demo.client.app.state  # type: ignore[attr-defined]
    log, envelopes, everything = state.public_log, state.envelopes, FeedFilter()
    after, compared = -1, 0
    while (page := log.page(after, 1000, everything)).events:
        assembled = log.encoded(after, 1000, everything, envelopes)
        assert assembled.lines == [envelopes.encode(event) for event in page.events]
        assert (assembled.next, assembled.end, assembled.complete) == (page.next, page.end, page.complete)
        after, compared = page.next, compared + len(page.events)
    assert compared == log.length() > 1000, "every page of the demo ledger compared"


# --- an old version is upcast: the feed emits the current type and its data --------------


class NoteWritten(LedgerEvent):
    """A note was written (a throw-away test event at version 2: v1 had `text`; v2 has title and body)."""

    TOPIC: ClassVar[str] = "dutyledger:Scratch.NoteWritten"
    class_version: ClassVar[int] = 2
    title: str
    body: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        title, _, body = state.pop("text").partition("\n")
        state["title"], state["body"] = title, body


register_topic(NoteWritten.TOPIC, NoteWritten)


@pytest.fixture
def scratch_event(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[NoteWritten]]:
    """NoteWritten added to the catalogue's topics for one test (the domain's classes stay at version 1).

    The feed and the schema routes look event classes up by stored topic in
    `domain.catalogue.by_topic()`: adding the test class there, and nowhere else, is the
    narrowest way to have a class at version 2 without changing a domain class.
    """
    monkeypatch.setitem(by_topic(), NoteWritten.TOPIC, NoteWritten)
    type_of_topic.cache_clear()
    yield NoteWritten
    type_of_topic.cache_clear()


def test_an_event_stored_by_an_older_class_version_is_emitted_upcast_as_the_current_type(
    api: Api, scratch_event: type[NoteWritten]
) -> None:
    world = api.world
    note = uuid4()
    version_1 = {
        "timestamp": START.isoformat(),
        "actor_id": str(world.cadres["township_clerk"]),
        "actor_unit_id": str(world.units["township"]),
        "occurred_at": START.isoformat(),
        "command_id": "note-1",
        "correlation_id": "note-1",
        "narrative": "写了一张便条",
        "text": "标题\n正文",
    }
    world.ledger.recorder.insert_events(
        [
            StoredEvent(
                originator_id=note,
                originator_version=1,
                topic=NoteWritten.TOPIC,
                state=orjson.dumps(version_1),
            )
        ]
    )
    app = api.client.app
    assert app.state.reader.reached(world.ledger.recorder.max_notification_id(), 30)  # type: ignore[attr-defined]

    answer = api.get("/events", "admin", PrincipalKind.ADMINISTRATOR, limit=1000)
    assert answer.status_code == 200, answer.text
    (item,) = [item for item in answer.json()["events"] if item["subject"] == str(note)]
    assert item["type"] == "cn.petition.scratch.note_written.v2"
    assert item["data"]["title"] == "标题"
    assert item["data"]["body"] == "正文"
    assert "text" not in item["data"]
    settings: Settings = app.state.settings  # type: ignore[attr-defined]
    published = SchemaClient(api.client, settings.public_url)
    schema = published.fetch(item["dataschema"])
    assert schema["title"] == "cn.petition.scratch.note_written.v2"
    assert schema["properties"]["class_version"] == {
        "const": 2,
        "description": schema["properties"]["class_version"]["description"],
    }
    published.validator(item["dataschema"]).validate(item["data"])
    published.validator(settings.public_url.rstrip("/") + schemas.ENVELOPE_PATH).validate(item)
    parsed_alike(item)
    with pytest.raises(Exception, match="text"):  # the v1 shape does not pass as v2
        published.validator(item["dataschema"]).validate({**item["data"], "text": "标题\n正文"})


# --- the served schemas, the archive, the AsyncAPI document --------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app over an empty SQLite store: schemas need no ledger and no key."""
    url = f"sqlite:///{tmp_path_factory.mktemp('schemas')}/ledger.sqlite"
    with TestClient(create_app(Settings(database_url=url, rate_limit_per_second=0))) as served:
        yield served


def test_the_committed_schema_of_every_current_type_is_the_generated_one() -> None:
    """A type's schema never changes: a payload change needs a new class version, hence a new type."""
    for event in all_event_classes():
        kind = event_type(event)
        path = ARCHIVE / f"{kind}.json"
        assert path.exists(), f"docs/schemas/{path.name} is missing: run `python -m api.feed.schemas`"
        assert json.loads(path.read_text(encoding="utf-8")) == data_schema(event), (
            f"the payload of {event.__qualname__} no longer matches the published {kind}: bump its "
            "class_version (with an upcast_v<n>_v<n+1>) to publish a new type; published schemas never change"
        )


def test_every_version_of_every_type_stays_in_the_archive() -> None:
    current = {split_type(event_type(event))[0]: class_version(event) for event in all_event_classes()}
    for base, version in current.items():
        for older in range(1, version + 1):
            assert (ARCHIVE / f"{base}.v{older}.json").exists(), (
                f"{base}.v{older} was removed from the archive"
            )
    for path in ARCHIVE.glob("cn.petition.*.json"):
        base, version = split_type(path.name.removesuffix(".json"))
        assert base in current, f"{path.name} names an event no class has any more"
        assert version <= current[base], f"{path.name} is newer than its event class"
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        assert (schema["$id"], schema["title"]) == (f"/schemas/{path.name}", path.name.removesuffix(".json"))


def test_the_committed_envelope_and_asyncapi_documents_are_the_generated_ones() -> None:
    stale = "is stale: run `python -m api.feed.schemas`"
    committed = json.loads((ARCHIVE / "cloudevent.json").read_text(encoding="utf-8"))
    assert committed == schemas.envelope_schema(), f"docs/schemas/cloudevent.json {stale}"
    committed = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))
    assert committed == schemas.asyncapi_document(schemas.DEFAULT_PUBLIC_URL), f"docs/asyncapi.json {stale}"


def test_every_committed_schema_file_is_served_as_committed(client: TestClient) -> None:
    files = sorted(ARCHIVE.glob("*.json"))
    assert len(files) > 50
    for path in files:
        answer = client.get(f"/schemas/{path.name}")
        assert answer.status_code == 200, (path.name, answer.text)
        assert answer.headers["content-type"] == SCHEMA_MEDIA
        assert answer.json() == json.loads(path.read_text(encoding="utf-8")), path.name
    index = client.get("/schemas").json()
    listed = {entry["type"] for entry in index["schemas"]}
    assert listed == {path.name.removesuffix(".json") for path in files} - {"cloudevent"}
    public = Settings.model_fields["public_url"].default
    assert index["envelope"] == f"{public}/schemas/cloudevent.json"


def test_the_index_names_each_type_its_version_url_and_event(client: TestClient) -> None:
    entries = {entry["type"]: entry for entry in client.get("/schemas").json()["schemas"]}
    for event in all_event_classes():
        kind = event_type(event)
        assert entries[kind]["version"] == class_version(event)
        assert entries[kind]["url"].endswith(f"/schemas/{kind}.json")
        assert entries[kind]["topic"] == event.TOPIC
        assert entries[kind]["current"] is True
    assert entries["cn.petition.case.accepted.v1"]["event"] == "Case.Accepted"


def test_an_unknown_type_is_a_404_problem(client: TestClient) -> None:
    for path in ("/schemas/cn.petition.case.accepted.v99.json", "/schemas/nothing.json"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "urn:problem-type:dutyledger:not-found"


def test_the_asyncapi_document_describes_the_stream_and_webhooks(client: TestClient) -> None:
    document = client.get("/asyncapi.json").json()
    assert document["asyncapi"] == "3.0.0"
    channels = document["channels"]
    assert channels["eventStream"]["address"] == "/events/stream"
    assert "webhook" in channels
    kinds = {event_type(event) for event in all_event_classes()}
    for name, channel in channels.items():
        assert set(channel["messages"]) == kinds, name
    headers = document["components"]["schemas"]["webhookHeaders"]
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(headers["required"])
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"]
        assert all(ref["$ref"].startswith(channel + "/messages/") for ref in operation["messages"])
    for ref in references(document):
        if ref.startswith("#/"):
            assert resolve(document, ref) is not None, ref
        else:
            assert client.get(f"/{ref}").status_code == 200, ref


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def resolve(document: Any, ref: str) -> Any:
    for part in ref.removeprefix("#/").split("/"):
        document = document[part.replace("~1", "/").replace("~0", "~")]
    return document


def test_the_generator_adds_new_files_but_never_rewrites_a_published_schema(tmp_path: Path) -> None:
    written, refused = schemas.write(tmp_path)
    assert refused == []
    assert "asyncapi.json" in written
    assert f"schemas/{event_type(next(all_event_classes()))}.json" in written
    assert schemas.write(tmp_path) == ([], [])
    accepted = tmp_path / "schemas" / "cn.petition.case.accepted.v1.json"
    changed = json.loads(accepted.read_text(encoding="utf-8"))
    changed["properties"]["notice_on_time"] = {"type": "string"}
    accepted.write_text(json.dumps(changed), encoding="utf-8")
    assert schemas.write(tmp_path) == ([], ["schemas/cn.petition.case.accepted.v1.json"])
    assert json.loads(accepted.read_text(encoding="utf-8")) == changed, "the refused file is left alone"
