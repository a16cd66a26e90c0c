"""The base of every aggregate: pydantic events, an event-name history, corrections.

Aggregates validate in their public (imperative) methods and change state only in
the `apply` of their (past-tense) events, so replaying old events never re-runs
today's validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self, cast
from uuid import UUID

from eventsourcing.domain import BaseAggregate, CanMutateAggregate
from pydantic import JsonValue, TypeAdapter

from domain.errors import InvalidArgument, InvalidTime, InvalidTransition
from domain.events import LedgerEvent, Stamp


class LedgerAggregate(BaseAggregate[UUID]):
    """An event-sourced aggregate of the ledger."""

    TOPIC: ClassVar[str]
    CORRECTABLE: ClassVar[Mapping[str, frozenset[str]]] = {}
    """Per event class name, the fields a later `Corrected` event may amend."""

    class Event(LedgerEvent, CanMutateAggregate[UUID]):
        pass

    def clone(self) -> Self:
        """A private copy to change in a command, leaving the cached original untouched.

        Aggregate state holds only immutable values, or lists, sets and dicts of them,
        so copying each container one level deep is a full copy, at a fraction of
        `copy.deepcopy`'s cost.
        """
        state = self.__dict__.copy()
        for name, value in state.items():
            if type(value) in _CONTAINERS:
                state[name] = value.copy()
        state["_pending_events"] = []
        twin = object.__new__(type(self))
        twin.__dict__ = state
        return twin

    def refuse(self, action: str, status: object) -> InvalidTransition:
        """The error for a command that does not apply in the current status."""
        kind = type(self).__name__.lower()
        return InvalidTransition(
            f"cannot {action} a {kind} that is {status}",
            aggregate_id=str(self.id),
            status=str(status),
        )

    def correct(self, stamp: Stamp, original: LedgerEvent, changes: Mapping[str, Any]) -> None:
        """Record a correction of fields of the earlier event `original`; the narrative says why.

        A corrected moment obeys what recording the event obeyed: never after it was recorded,
        never before the aggregate's business began (`business_start`).
        """
        corrects, event_name = original.originator_version, type(original).__name__
        if not 1 <= corrects <= self.version:
            raise InvalidArgument(f"version {corrects} does not exist (latest is {self.version})")
        allowed = self.CORRECTABLE.get(event_name, frozenset())
        if not changes:
            raise InvalidArgument("a correction must change at least one field")
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidArgument(
                f"{event_name} fields {unknown} cannot be corrected"
                + (f"; correctable: {sorted(allowed)}" if allowed else ""),
                event=event_name,
            )
        event_class = cast(type[LedgerEvent], getattr(type(self), event_name))
        checked: dict[str, JsonValue] = {}
        for name, value in changes.items():
            adapter = _field_adapter(event_class, name)
            try:
                valid = adapter.validate_python(value)
            except ValueError as error:
                raise InvalidArgument(f"{name}: {error}") from None
            if isinstance(valid, datetime):
                if valid.tzinfo is None or valid > stamp.recorded_at:
                    raise InvalidTime(f"{name} must be a past moment with a time zone offset")
                if valid > original.timestamp:
                    raise InvalidTime(
                        f"{name} cannot be after the event was recorded ({original.timestamp.isoformat()})"
                    )
                start = self.business_start()
                if start is not None and valid < start[0]:
                    raise InvalidTime(f"{name} cannot be before {start[1]} ({start[0].isoformat()})")
            checked[name] = adapter.dump_python(valid, mode="json")
        self.trigger_event(
            getattr(type(self), "Corrected"),  # noqa: B009 (defined on each subclass)
            **stamp.fields(),
            corrects=corrects,
            corrected_event=event_name,
            changes=checked,
        )

    def check_recusal(self, actor_id: UUID, served: frozenset[UUID]) -> None:
        """Refuse an actor who must not act on this aggregate (a case's accused); by default nobody."""

    def business_start(self) -> tuple[datetime, str] | None:
        """The earliest business time an event of this aggregate may carry, and what it was; None if any."""
        return None

    def corrected(self, event_name: str, changes: Mapping[str, Any]) -> None:
        """Amend current state after a correction of `event_name`; by default nothing to amend."""


_CONTAINERS = frozenset({list, dict, set})


def as_corrected(events: Iterable[LedgerEvent]) -> list[LedgerEvent]:
    """An aggregate's events as known today: every correction folded into the event it corrects.

    The `Corrected` events themselves are left out; the others keep their order. Business-time
    readers (what had happened by an instant, who acted before whom) read this history.
    """
    known: dict[int, LedgerEvent] = {}
    for event in events:
        if isinstance(event, CorrectedEvent):
            target = known.get(event.corrects)
            if target is not None:
                amended = {
                    name: _field_adapter(type(target), name).validate_python(value)
                    for name, value in event.changes.items()
                }
                known[event.corrects] = target.model_copy(update=amended)
            continue
        known[event.originator_version] = event
    return list(known.values())


def _field_adapter(event_class: type[LedgerEvent], name: str) -> TypeAdapter[Any]:
    """Validates a value exactly as the event's field does, constraints included."""
    field = event_class.model_fields[name]
    annotation: Any = field.annotation or Any
    if field.metadata:
        annotation = Annotated[annotation, *field.metadata]
    return TypeAdapter(annotation)


class CorrectedEvent(LedgerEvent):
    """Fields of every aggregate's `Corrected` event."""

    corrects: int
    corrected_event: str
    changes: dict[str, JsonValue]

    def apply(self, aggregate: LedgerAggregate) -> None:
        aggregate.corrected(self.corrected_event, self.changes)
