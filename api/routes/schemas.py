"""The published schemas: every event type's JSON Schema, the CloudEvents envelope, the AsyncAPI document.

Public (no key): a schema says what integrators may receive, never what the ledger holds.
A type's schema never changes (a payload change is a new version, a new type), so its
answer is cached for good; the index, the envelope and the AsyncAPI document may grow.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.feed import schemas
from api.feed.envelope import schema_path
from api.problems import MALFORMED_PATH, documented
from api.settings import Settings
from domain.errors import NotFound

router = APIRouter(tags=["schemas"], responses=MALFORMED_PATH)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=300"
JSON_OBJECT: dict[str, Any] = {"schema": {"type": "object"}}


class SchemaEntry(BaseModel):
    """One published data schema: an event type at one version."""

    type: str = Field(examples=["cn.petition.case.accepted.v1"])
    version: int = Field(ge=1, description="The event class version the type names.")
    url: str = Field(description="Where its JSON Schema is served (the CloudEvent's `dataschema`).")
    event: str | None = Field(
        examples=["Case.Accepted"], description="The event it belongs to: `<Aggregate>.<Event>`."
    )
    topic: str | None = Field(
        examples=["dutyledger:Case.Accepted"], description="Its permanent stored topic."
    )
    current: bool = Field(description="Whether the feed emits this version; older ones are upcast on read.")


class SchemaIndex(BaseModel):
    """Every published schema and document of the event feed."""

    envelope: str = Field(description="The JSON Schema of the CloudEvents envelope of every feed item.")
    asyncapi: str = Field(description="The AsyncAPI 3.0 document of the SSE and webhook channels.")
    schemas: list[SchemaEntry]


def _base(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.public_url.rstrip("/")


@router.get("/schemas", response_model=SchemaIndex, summary="List every published event schema.")
def list_schemas(request: Request) -> SchemaIndex:
    """Every event type at every version ever published, with its URL and event (no key needed).

    The current version of each event is the one the feed emits; older versions stay
    published for events integrators stored before a change.
    """
    base = _base(request)
    return SchemaIndex(
        envelope=base + schemas.ENVELOPE_PATH,
        asyncapi=base + schemas.ASYNCAPI_PATH,
        schemas=[
            SchemaEntry(
                type=entry.type,
                version=entry.version,
                url=base + schema_path(entry.type),
                event=entry.event,
                topic=entry.topic,
                current=entry.current,
            )
            for entry in schemas.published()
        ],
    )


@router.get(
    schemas.ENVELOPE_PATH,
    summary="Get the JSON Schema of the CloudEvents envelope.",
    response_class=Response,
    responses={
        200: {"description": "A JSON Schema (Draft 2020-12)", "content": {schemas.SCHEMA_MEDIA: JSON_OBJECT}}
    },
)
def envelope_schema() -> Response:
    """The envelope of every feed, stream and webhook item: CloudEvents 1.0 with the ledger's extensions."""
    body = schemas.encode(schemas.envelope_schema())
    return Response(body, media_type=schemas.SCHEMA_MEDIA, headers={"Cache-Control": REVALIDATE})


@router.get(
    "/schemas/{kind}.json",
    summary="Get the JSON Schema of one event type's data.",
    response_class=Response,
    responses={
        200: {"description": "A JSON Schema (Draft 2020-12)", "content": {schemas.SCHEMA_MEDIA: JSON_OBJECT}},
        **documented({404: "No event type has this name and version"}),
    },
)
def event_schema(
    kind: Annotated[str, Path(description="The event type, e.g. `cn.petition.case.accepted.v1`.")],
) -> Response:
    """The schema of the CloudEvent `data` of one type at one version; it never changes (no key needed)."""
    body = schemas.schema_bytes(kind)
    if body is None:
        raise NotFound(f"no event type {kind!r} (GET /schemas lists them)", kind="EventType")
    return Response(body, media_type=schemas.SCHEMA_MEDIA, headers={"Cache-Control": IMMUTABLE})


@router.get(
    schemas.ASYNCAPI_PATH,
    summary="Get the AsyncAPI 3.0 document of the live feed and webhooks.",
    response_class=Response,
    responses={
        200: {"description": "An AsyncAPI 3.0 document", "content": {"application/json": JSON_OBJECT}}
    },
)
def asyncapi(request: Request) -> Response:
    """The SSE stream and webhook channels, a message per event type, for code generators (no key needed)."""
    body = schemas.asyncapi_bytes(_base(request))
    return Response(body, media_type="application/json", headers={"Cache-Control": REVALIDATE})
