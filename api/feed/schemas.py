"""The published schemas of the event feed, generated from the event classes.

- **Data schemas**: one JSON Schema (Draft 2020-12) per event type and version, for the
  CloudEvent's `data`: the pydantic event class's serialisation schema, without the
  originator id and version (they are the envelope's `subject` and `aggregateversion`).
  Served at `/schemas/<type>.json`; each CloudEvent's `dataschema` names its own.
- **Envelope**: `/schemas/cloudevent.json`, the CloudEvents 1.0 envelope of the feed with
  its extension attributes (`api.feed.envelope`).
- **AsyncAPI 3.0**: `/asyncapi.json`, the two channels integrators follow: the SSE stream
  (`GET /events/stream`) and webhook deliveries (Standard Webhooks headers), with one
  message per event type whose payload references the envelope and the type's data schema.

Versioning: the committed `docs/schemas/` is the archive. The schema of a type never
changes: a payload change bumps the event class's `class_version` (with an
`upcast_v<n>_v<n+1>`), which makes a new type `….v<n+1>` and a new file; the old file
stays, and is still served from the archive for events integrators stored long ago (the
feed itself upcasts old events to the current version). `tests/api/test_schemas.py` fails
when a current type's generated schema differs from its committed file.

`python -m api.feed.schemas` writes the files of new types, the envelope and
`docs/asyncapi.json`; it refuses to rewrite an archived schema that differs (`--force`
only after review, for a generator change that accepts exactly the same payloads).
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from api.feed.envelope import BATCH_MEDIA, ENVELOPE, EVENT_MEDIA, schema_path
from api.settings import Settings
from domain.catalogue import by_topic, class_version, event_type
from domain.events import LedgerEvent

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_MEDIA = "application/schema+json"
ENVELOPE_NAME = "cloudevent"
ENVELOPE_PATH = schema_path(ENVELOPE_NAME)
ASYNCAPI_PATH = "/asyncapi.json"
FEED_VERSION = "1.0.0"
"""The version of the feed contract the AsyncAPI document describes (the envelope's shape)."""
DOCS = Path(__file__).resolve().parents[2] / "docs"
ARCHIVE = DOCS / "schemas"
"""The committed schemas: every version of every type ever published."""
ASYNCAPI_FILE = DOCS / "asyncapi.json"
DEFAULT_PUBLIC_URL: str = Settings.model_fields["public_url"].default
"""The committed AsyncAPI document names the default server; the served one, the configured URL."""
TYPE_PATTERN = r"^cn\.petition\.[a-z0-9_]+\.[a-z0-9_]+\.v[1-9][0-9]*$"
_VERSION = re.compile(r"^(?P<base>.+)\.v(?P<version>[1-9][0-9]*)$")
SIGNATURE_PATTERN = r"^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$"


def encode(document: dict[str, Any]) -> bytes:
    """A schema or document as its committed and served bytes: indented UTF-8 JSON, a final newline."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def split_type(kind: str) -> tuple[str, int]:
    """`cn.petition.case.accepted.v2` → (`cn.petition.case.accepted`, 2)."""
    found = _VERSION.match(kind)
    if found is None:
        raise ValueError(f"{kind!r} is not a versioned event type")
    return found["base"], int(found["version"])


def _first_line(obj: object) -> str:
    return next(iter((inspect.getdoc(obj) or "").splitlines()), "")


@cache
def data_schema(event: type[LedgerEvent]) -> dict[str, Any]:
    """The JSON Schema of the `data` of the event class's current type (do not change the result)."""
    kind = event_type(event)
    version = class_version(event)
    generated = event.model_json_schema(mode="serialization")
    properties = {k: v for k, v in generated["properties"].items() if k not in ENVELOPE}
    if version > 1:
        properties["class_version"] = {
            "const": version,
            "description": "The class version that stored the payload; absent when an older one was upcast.",
        }
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": schema_path(kind),
        "title": kind,
        "description": _first_line(event),
        "type": "object",
        "properties": properties,
        "required": [name for name in generated.get("required", []) if name not in ENVELOPE],
    }
    taken = {*schema, "properties", "required"}
    schema |= {k: v for k, v in generated.items() if k not in taken}  # additionalProperties, $defs
    return schema


@cache
def _data_bytes(event: type[LedgerEvent]) -> bytes:
    return encode(data_schema(event))


def current_events() -> dict[str, type[LedgerEvent]]:
    """Every current event type and its class, in catalogue order."""
    return {event_type(event): event for event in by_topic().values()}


def archived(folder: Path = ARCHIVE) -> dict[str, bytes]:
    """The committed data schemas by type (none when the docs are not shipped beside the code)."""
    if not folder.is_dir():
        return {}
    return {
        path.name.removesuffix(".json"): path.read_bytes()
        for path in sorted(folder.glob("cn.petition.*.json"))
    }


@cache
def _archive() -> dict[str, bytes]:
    return archived()


def schema_bytes(kind: str) -> bytes | None:
    """The published data schema of a type at any version: generated if current, else archived."""
    event = current_events().get(kind)
    if event is not None:
        return _data_bytes(event)
    return _archive().get(kind)


@dataclass(frozen=True)
class Published:
    """One published data schema: its type and version, and the event it belongs to."""

    type: str
    version: int
    event: str | None
    """The event class as `<Aggregate>.<Event>` (None for an archived type no class names any more)."""
    topic: str | None
    current: bool
    """Whether the feed emits this version (older ones are upcast to the current)."""


def published() -> list[Published]:
    """Every published data schema: each type's versions, oldest first, in catalogue order."""
    current = current_events()
    bases = {split_type(kind)[0]: event for kind, event in current.items()}
    kinds = set(current) | set(_archive())
    found: list[Published] = []
    for kind in kinds:
        base, version = split_type(kind)
        event = bases.get(base)
        name = event.TOPIC.removeprefix("dutyledger:") if event is not None else None
        topic = event.TOPIC if event is not None else None
        found.append(Published(kind, version, name, topic, kind in current))
    order = {split_type(kind)[0]: n for n, kind in enumerate(current)}
    return sorted(found, key=lambda p: (order.get(split_type(p.type)[0], len(order)), p.type, p.version))


def _uuid(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "uuid", "description": description}


def _time(description: str) -> dict[str, Any]:
    return {"type": "string", "format": "date-time", "description": description}


@cache
def envelope_schema() -> dict[str, Any]:
    """The JSON Schema of every feed item: a CloudEvents 1.0 structured JSON event of this ledger."""
    properties: dict[str, Any] = {
        "specversion": {"const": "1.0", "description": "CloudEvents 1.0."},
        "id": {
            "type": "string",
            "pattern": "^[^:]+:[1-9][0-9]*$",
            "description": "`<subject>:<aggregateversion>`: stable and unique; also the `webhook-id`.",
        },
        "source": {
            "type": "string",
            "minLength": 1,
            "format": "uri-reference",
            "description": "The ledger's URI (`DUTYLEDGER_SOURCE`, default its public URL).",
        },
        "type": {
            "type": "string",
            "pattern": TYPE_PATTERN,
            "description": "`cn.petition.<aggregate>.<event>.v<version>` (`GET /schemas` lists them).",
        },
        "subject": _uuid("The aggregate (case, unit, cadre, …) the event belongs to."),
        "time": _time("Record time: when the ledger recorded the event."),
        "datacontenttype": {"const": "application/json"},
        "dataschema": {
            "type": "string",
            "format": "uri",
            "pattern": r"/schemas/cn\.petition\.[a-z0-9_.]+\.json$",
            "description": "The URL of the JSON Schema that `data` follows (`/schemas/<type>.json`).",
        },
        "logindex": {
            "type": "integer",
            "minimum": 0,
            "description": "The event's log index: its public position, contiguous from 0; the SSE `id:`.",
        },
        "aggregateversion": {
            "type": "integer",
            "minimum": 1,
            "description": "The event's position in its aggregate's history.",
        },
        "occurredat": _time("Business time: when it happened (may precede record time)."),
        "actorid": _uuid("The authenticated cadre who did it."),
        "actorunitid": _uuid("The unit that cadre served in at `occurredat`."),
        "correlationid": {
            "type": "string",
            "minLength": 1,
            "description": "The chain of work the event belongs to.",
        },
        "causationid": {"type": "string", "minLength": 1, "description": "The command that recorded it."},
        "data": {
            "type": "object",
            "description": "The event's payload: it follows the schema named by `dataschema`.",
        },
    }
    return {
        "$schema": DIALECT,
        "$id": ENVELOPE_PATH,
        "title": "Duty Ledger CloudEvent",
        "description": (
            "One event of the ledger's public log as a CloudEvents 1.0 JSON event "
            f"(`{EVENT_MEDIA}`; a batch is a JSON array of them, `{BATCH_MEDIA}`). "
            "Petitioners appear only as pseudonymous ids."
        ),
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "patternProperties": {"^[a-z0-9]{1,20}$": {"description": "A later extension attribute."}},
        "additionalProperties": False,
    }


def _server(public_url: str) -> dict[str, Any]:
    url = urlsplit(public_url.rstrip("/"))
    server: dict[str, Any] = {
        "host": url.netloc,
        "protocol": url.scheme or "http",
        "title": "The ledger's API",
        "description": "Where integrators read the feed (`DUTYLEDGER_PUBLIC_URL`).",
        "security": [{"$ref": "#/components/securitySchemes/apiKey"}],
    }
    if url.path:
        server["pathname"] = url.path
    return server


def _message(kind: str, event: type[LedgerEvent], channel: str) -> dict[str, Any]:
    name = event.TOPIC.removeprefix("dutyledger:")
    message: dict[str, Any] = {
        "name": kind,
        "title": name,
        "summary": _first_line(event),
        "contentType": EVENT_MEDIA,
        "payload": {"$ref": f"#/components/schemas/{kind}"},
        "correlationId": {"$ref": "#/components/correlationIds/correlation"},
    }
    if channel == "webhook":
        message["headers"] = {"$ref": "#/components/schemas/webhookHeaders"}
    return message


WEBHOOK_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Standard Webhooks 1.0 headers of every delivery attempt.",
    "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
    "properties": {
        "webhook-id": {
            "type": "string",
            "description": "The CloudEvent's `id`: the same on every attempt; deduplicate on it.",
        },
        "webhook-timestamp": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "When this attempt was signed, in Unix seconds; refuse one far from now.",
        },
        "webhook-signature": {
            "type": "string",
            "pattern": SIGNATURE_PATTERN,
            "description": (
                "Space-separated `v1,<base64 HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>.<body>` "
                "with the endpoint's secret; one per live secret while a secret is rotated."
            ),
        },
        "content-type": {"const": EVENT_MEDIA},
    },
}


@cache
def asyncapi_document(public_url: str = DEFAULT_PUBLIC_URL) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the SSE and webhook channels (do not change the result).

    Schema references are relative (`schemas/<type>.json`), so they resolve both on the
    server (`/asyncapi.json` → `/schemas/…`) and in the repository (`docs/asyncapi.json`).
    Only current types have messages: the feed upcasts older events before sending them.
    """
    current = current_events()
    schemas: dict[str, Any] = {
        "CloudEvent": {"$ref": f"schemas/{ENVELOPE_NAME}.json"},
        "webhookHeaders": WEBHOOK_HEADERS,
    }
    messages: dict[str, Any] = {}
    channel_messages: dict[str, dict[str, Any]] = {"eventStream": {}, "webhook": {}}
    for kind, event in current.items():
        schemas[kind] = {
            "description": f"A `{kind}` CloudEvent: {_first_line(event)}",
            "allOf": [
                {"$ref": f"schemas/{ENVELOPE_NAME}.json"},
                {
                    "type": "object",
                    "properties": {"type": {"const": kind}, "data": {"$ref": f"schemas/{kind}.json"}},
                },
            ],
        }
        for channel, prefix in (("eventStream", "sse"), ("webhook", "webhook")):
            messages[f"{prefix}.{kind}"] = _message(kind, event, channel)
            channel_messages[channel][kind] = {"$ref": f"#/components/messages/{prefix}.{kind}"}
    query = {
        "type": "object",
        "properties": {
            "after": {
                "type": "integer",
                "minimum": -1,
                "description": "The last log index already read; `Last-Event-ID` wins when sent.",
            },
            "type": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Only these event types (repeatable; `*` wildcards).",
            },
            "unit": {
                "type": "array",
                "items": {"type": "string", "format": "uuid"},
                "description": "Only events whose actor served in one of these units or below (repeatable).",
            },
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Duty Ledger event feed",
            "version": FEED_VERSION,
            "description": (
                "Every event of the ledger, once, in log-index order, as a CloudEvents 1.0 JSON event. "
                "Follow it live over Server-Sent Events or receive it by webhook; catch up or re-read "
                "with `GET /events?after=<index>`. The JSON Schema of each type's `data` is at "
                "`/schemas/<type>.json` (`GET /schemas` lists every type and version); the envelope's "
                f"at `{ENVELOPE_PATH}`."
            ),
        },
        "defaultContentType": EVENT_MEDIA,
        "servers": {
            "ledger": _server(public_url),
            "receiver": {
                "host": "{receiver}",
                "protocol": "https",
                "title": "An integrator's webhook endpoint",
                "description": "The URL an integrator registers (https or http); deliveries are POSTed to it",
                "variables": {"receiver": {"description": "The host of the registered endpoint URL."}},
            },
        },
        "channels": {
            "eventStream": {
                "address": "/events/stream",
                "title": "The live feed (Server-Sent Events)",
                "description": (
                    "`GET /events/stream` (`text/event-stream`) with an integrator's or administrator's "
                    "key. Each SSE message is one event: `id:` its log index, `data:` the CloudEvent "
                    "as one line of JSON. Resume with `Last-Event-ID` (or `?after=`): nothing is lost "
                    "or repeated across reconnects. Comments (`: keep-alive`) arrive every 15 s when "
                    "idle; `retry:` says how long to wait before reconnecting."
                ),
                "servers": [{"$ref": "#/servers/ledger"}],
                "messages": channel_messages["eventStream"],
            },
            "webhook": {
                "address": None,
                "title": "Webhook deliveries",
                "description": (
                    "An HTTP POST of one CloudEvent (`application/cloudevents+json`) to each registered "
                    "endpoint whose type and unit filters let the event through, signed per Standard "
                    "Webhooks 1.0. At least once: a receiver answers 2xx, and deduplicates on "
                    "`webhook-id`; failures are retried with exponential back-off."
                ),
                "servers": [{"$ref": "#/servers/receiver"}],
                "messages": channel_messages["webhook"],
            },
        },
        "operations": {
            "streamEvents": {
                "action": "send",
                "channel": {"$ref": "#/channels/eventStream"},
                "title": "Stream the log",
                "summary": "The ledger sends every event after the resumed position, then each new one.",
                "bindings": {"http": {"method": "GET", "query": query, "bindingVersion": "0.3.0"}},
                "messages": [{"$ref": f"#/channels/eventStream/messages/{kind}"} for kind in current],
            },
            "deliverWebhooks": {
                "action": "send",
                "channel": {"$ref": "#/channels/webhook"},
                "title": "Deliver by webhook",
                "summary": "The ledger POSTs each event its filters let through to a registered endpoint.",
                "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
                "messages": [{"$ref": f"#/channels/webhook/messages/{kind}"} for kind in current],
            },
        },
        "components": {
            "schemas": schemas,
            "messages": messages,
            "correlationIds": {
                "correlation": {
                    "description": "The chain of work the event belongs to.",
                    "location": "$message.payload#/correlationid",
                }
            },
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <API key>` of an integrator or administrator.",
                }
            },
        },
    }


@cache
def asyncapi_bytes(public_url: str) -> bytes:
    return encode(asyncapi_document(public_url))


def generated_files() -> Iterator[tuple[str, bytes]]:
    """Every generated file, relative to `docs/`: current types, the envelope, the AsyncAPI document."""
    for kind, event in current_events().items():
        yield f"schemas/{kind}.json", _data_bytes(event)
    yield f"schemas/{ENVELOPE_NAME}.json", encode(envelope_schema())
    yield "asyncapi.json", encode(asyncapi_document(DEFAULT_PUBLIC_URL))


def write(docs: Path = DOCS, force: bool = False) -> tuple[list[str], list[str]]:
    """Write the generated files under `docs`; (written, refused): an archived schema is never rewritten."""
    written, refused = [], []
    for name, content in generated_files():
        path = docs / name
        old = path.read_bytes() if path.exists() else None
        if old == content:
            continue
        archived_type = name.startswith("schemas/cn.petition.")
        if old is not None and archived_type and not force and json.loads(old) != json.loads(content):
            refused.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(name)
    return written, refused


def main(argv: Sequence[str] = ()) -> int:
    force = "--force" in argv
    written, refused = write(force=force)
    for name in written:
        print(f"wrote docs/{name}")
    for name in refused:
        print(
            f"refused docs/{name}: its payload changed; bump the event class's class_version "
            "(with an upcaster) to publish a new type, or pass --force if only the generator changed",
            file=sys.stderr,
        )
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
