"""Each stored event as a CloudEvents 1.0 JSON object: the envelope of the feed, the stream and webhooks.

One envelope everywhere, built from the stored bytes: the payload is embedded as it was
stored (`orjson.Fragment`, never decoded and encoded again) unless it was stored by an older
class version, which is upcast first. So what integrators receive is exactly what the
ledger holds, and the Merkle log can later prove it.

| attribute | value |
|---|---|
| `id` | `<aggregate id>:<version>`: stable, unique, the same in every feed and webhook |
| `source` | the ledger's URI (`DUTYLEDGER_SOURCE`, default `DUTYLEDGER_PUBLIC_URL`) |
| `type` | `cn.petition.<aggregate>.<event>.v<class version>` (`domain.catalogue.event_type`) |
| `subject` | the aggregate's id (case, unit, cadre, …) |
| `time` | record time |
| `dataschema` | the URL of the type's JSON Schema (`/schemas/<type>.json`) |
| `logindex` | the event's log index: the public position |
| `aggregateversion` | its version in the aggregate's history |
| `occurredat` | business time |
| `actorid`, `actorunitid` | the cadre who did it and the unit they served in then |
| `correlationid` | the chain of work it belongs to |
| `causationid` | the command that recorded it |
"""

from __future__ import annotations

from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper

from domain.catalogue import by_topic, current_version, type_of_topic
from domain.storage.commands import LogRow
from domain.storage.mapper import PydanticMapper
from projections.views.event_log import FIELDS

EVENT_MEDIA = "application/cloudevents+json"
BATCH_MEDIA = "application/cloudevents-batch+json"
NDJSON_MEDIA = "application/x-ndjson"
ENVELOPE = {"originator_id", "originator_version"}
CLASS_VERSION = b'"class_version":'
"""What a payload stored by a class version past 1 holds (`domain.storage.mapper`)."""


def _text(value: str) -> str:
    """A JSON string (ids a caller chose may hold quotes or backslashes)."""
    return orjson.dumps(value).decode()


def event_id(aggregate_id: str, version: int) -> str:
    """The CloudEvents id (and webhook-id) of an event: its aggregate and version, for ever."""
    return f"{aggregate_id}:{version}"


def schema_path(kind: str) -> str:
    """Where the JSON Schema of an event type is served, below the public URL."""
    return f"/schemas/{kind}.json"


def body_sql(dialect: str) -> str:
    """The SQL spelling of what `Envelopes.encode` writes after the head, over `event_log l` joined
    with the stored events `s`: the database assembles each envelope around the stored payload.

    Byte for byte the same as `encode` for a payload stored by the current class version (a test
    compares the two over the demo ledger on both backends); `Envelopes.heads_as_stored` and
    `CLASS_VERSION` say when. The aggregate id and version are the sequencer's copies of the
    stored event's (spelling the SQLite recorder's 32 hex digits with dashes in SQL would cost
    more than the rest together).
    """
    if dialect == "sqlite":
        quote, state, whole = "json_quote({})", "CAST(s.state AS TEXT)", "CAST({} AS BLOB)"
    else:
        quote, state, whole = (
            "to_json({}::text)::text",
            "convert_from(s.state, 'UTF8')",
            "convert_to({}, 'UTF8')",
        )
    parts = (
        "'\"id\":\"'", "l.aggregate_id", "':'", "l.version", "'\",\"subject\":\"'", "l.aggregate_id",
        "'\",\"time\":'", quote.format("l.recorded_at"),
        "',\"logindex\":'", "l.log_index", "',\"aggregateversion\":'", "l.version",
        "',\"occurredat\":'", quote.format("l.occurred_at"),
        "',\"actorid\":\"'", "l.actor_id", "'\",\"actorunitid\":\"'", "l.actor_unit_id",
        "'\",\"correlationid\":'", quote.format("l.correlation_id"),
        "',\"causationid\":'", quote.format("l.command_id"), "',\"data\":'", state, "'}'",
    )  # fmt: skip
    return whole.format(" || ".join(parts))


class Attributes(NamedTuple):
    """The common fields of an event as stored (the `event_log` view keeps them beside its index)."""

    recorded_at: str
    occurred_at: str
    actor_id: str
    actor_unit_id: str
    correlation_id: str
    command_id: str


class Sequenced(NamedTuple):
    """A stored event at its log index, with its common fields when the sequencer gave them."""

    index: int  # type: ignore[assignment]  # a field, where a tuple has its index() method
    row: LogRow
    attributes: Attributes | None = None

    def common(self) -> Attributes:
        """The event's common fields: as sequenced, or read from its payload."""
        if self.attributes is not None:
            return self.attributes
        fields = orjson.loads(self.row[4])
        return Attributes(*(fields[name] for name in FIELDS))


class Envelopes:
    """Builds the CloudEvents envelope of sequenced events for one ledger."""

    def __init__(self, mapper: Mapper[UUID], source: str, public_url: str) -> None:
        assert isinstance(mapper, PydanticMapper)
        self.mapper = mapper
        self.source = source
        self.public_url = public_url.rstrip("/")
        self._heads: dict[str, bytes] = {}
        self._as_stored: dict[str, bytes] | None = None

    def of(self, event: Sequenced) -> dict[str, Any]:
        """The envelope as a dict."""
        envelope: dict[str, Any] = orjson.loads(self.encode(event))
        return envelope

    def encode(self, event: Sequenced) -> bytes:
        """The envelope as JSON bytes, built around the stored payload without decoding it.

        The payload is parsed only if an older class version may have stored it (the payload
        names its class version when it is not 1, or the class is past version 1).
        """
        _, aggregate_id, version, topic, payload = event.row
        data = payload
        if CLASS_VERSION in payload or current_version(topic) != 1:
            fields = orjson.loads(payload)
            if fields.get("class_version", 1) != current_version(topic):
                data = orjson.dumps(self._upcast(event.row, fields))
        common = event.common()
        fixed = (
            f'"id":"{event_id(aggregate_id, version)}","subject":"{aggregate_id}",'
            f'"time":{_text(common.recorded_at)},'
            f'"logindex":{event.index},"aggregateversion":{version},"occurredat":{_text(common.occurred_at)},'
            f'"actorid":"{common.actor_id}","actorunitid":"{common.actor_unit_id}",'
            f'"correlationid":{_text(common.correlation_id)},"causationid":{_text(common.command_id)},"data":'
        )
        return b"".join((self.head(topic), fixed.encode(), data, b"}"))

    def heads_as_stored(self) -> dict[str, bytes]:
        """`head(topic)` of each topic whose envelopes embed the payload as stored, as `encode`
        decides: those at class version 1 (an event whose payload names a class version aside)."""
        if self._as_stored is None:
            self._as_stored = {topic: self.head(topic) for topic in by_topic() if current_version(topic) == 1}
        return self._as_stored

    def head(self, topic: str) -> bytes:
        """The attributes every event of a topic shares, as the opening of its JSON object."""
        head = self._heads.get(topic)
        if head is None:
            kind = type_of_topic(topic)
            opening = orjson.dumps(
                {
                    "specversion": "1.0",
                    "source": self.source,
                    "type": kind,
                    "datacontenttype": "application/json",
                    "dataschema": self.public_url + schema_path(kind),
                }
            )
            head = self._heads[topic] = opening[:-1] + b","
        return head

    def _upcast(self, row: LogRow, fields: dict[str, Any]) -> dict[str, Any]:
        """The payload of an event stored by an older class version, as the current version has it."""
        _, aggregate_id, version, topic, _ = row
        upcast = self.mapper.from_state(topic, aggregate_id, version, fields)
        return upcast.model_dump(mode="json", exclude=ENVELOPE)  # type: ignore[attr-defined, no-any-return]
