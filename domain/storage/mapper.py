"""Event ⇄ stored bytes: pydantic dumps to JSON types, orjson encodes, in exactly one place."""

from __future__ import annotations

from functools import cache
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

_ENVELOPE = {"originator_id", "originator_version"}


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson; pydantic has already reduced every value to a JSON type."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[UUID]):
    """Maps pydantic events to stored events and back, upcasting old class versions."""

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        event_class = type(domain_event)
        state = cast(BaseModel, domain_event).model_dump(mode="json", exclude=_ENVELOPE)
        class_version = getattr(event_class, "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        stored_state = self.transcoder.encode(state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(event_class),
            state=stored_state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        stored_state = stored_event.state
        if self.cipher:
            stored_state = self.cipher.decrypt(stored_state)
        if self.compressor:
            stored_state = self.compressor.decompress(stored_state)
        state: dict[str, Any] = self.transcoder.decode(stored_state)
        return self.from_state(
            stored_event.topic, stored_event.originator_id, stored_event.originator_version, state
        )

    def from_state(
        self, topic: str, originator_id: UUID | str, originator_version: int, state: dict[str, Any]
    ) -> DomainEventProtocol[UUID]:
        """The event from its stored fields, already parsed (upcast if stored by an older class version).

        `state` is consumed: pass a copy if it is needed afterwards.
        """
        event_class, current_version = _event_class(topic)
        from_version = state.pop("class_version", 1)
        while from_version < current_version:
            getattr(event_class, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        state["originator_id"] = originator_id
        state["originator_version"] = originator_version
        return cast(DomainEventProtocol[UUID], event_class.model_validate(state))


@cache
def _event_class(topic: str) -> tuple[type[BaseModel], int]:
    """The class a topic names and its current class version (looked up once per topic)."""
    event_class = resolve_topic(topic)
    return event_class, getattr(event_class, "class_version", 1)
