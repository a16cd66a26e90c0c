"""The application core: run a command once, atomically, and answer retries with the first answer."""

from __future__ import annotations

import functools
import hashlib
import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from uuid import UUID, uuid4

import orjson
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Recording
from eventsourcing.utils import Environment, EnvType, get_topic
from pydantic import BaseModel, ValidationError

from domain.aggregate import LedgerAggregate
from domain.clock import Clock, SystemClock
from domain.errors import (
    ConcurrencyConflict,
    IdempotencyConflict,
    InvalidArgument,
    LedgerError,
    NotFound,
    VersionConflict,
)
from domain.ledger.cache import FollowingCache, StripedLocks
from domain.ledger.work import Actor, CommandContext, Work, resolve_actor, typed
from domain.storage.commands import CommandLog, CommandRecord
from domain.storage.freshness import StaleRead
from domain.storage.mapper import OrjsonTranscoder, PydanticMapper
from domain.storage.url import store_env

MAX_ATTEMPTS = 16
"""How often a command without an expected version is retried after a concurrent write."""

BACKOFF = 0.004
"""Seconds: the first retry waits up to this long, each later one up to twice as long as the last…"""

BACKOFF_CAP = 0.25
"""…but never more than this."""

COMMAND_ID_MAX = 200


@dataclass(frozen=True)
class CommandResult:
    """The answer to a command: what it recorded and where in the log."""

    command_id: str
    aggregate_id: UUID
    version: int
    """The version the addressed aggregate reached."""
    position: int
    """The notification id of the last event recorded (read your writes from here)."""
    positions: tuple[int, ...]
    replayed: bool = False
    """True when this is the stored answer to an earlier, identical command."""


A = TypeVar("A", bound=LedgerAggregate)
P = ParamSpec("P")
L = TypeVar("L", bound="LedgerCore")


def command(
    body: Callable[Concatenate[L, Work, P], UUID],
) -> Callable[Concatenate[L, CommandContext, P], CommandResult]:
    """Turn `body(self, work, **args) -> aggregate id` into the public command `(self, ctx, **args)`.

    The command's name and arguments, with the context, make the digest that tells a
    retry (same digest: answered, not applied) from a misuse of its id (conflict).
    """
    name = body.__name__
    signature = inspect.signature(body)
    parameters = list(signature.parameters.values())[2:]
    names = [p.name for p in parameters]
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}

    @functools.wraps(body)
    def run(self: L, ctx: CommandContext, /, *args: P.args, **kwargs: P.kwargs) -> CommandResult:
        arguments = {**defaults, **dict(zip(names, args, strict=False)), **kwargs}
        missing = [n for n in names if n not in arguments]
        if missing or len(arguments) > len(names):
            signature.bind(self, ctx, *args, **kwargs)  # raises the usual TypeError, naming the problem
        return self.execute(name, ctx, arguments, lambda work: body(self, work, *args, **kwargs))

    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
            inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_ONLY, annotation=CommandContext),
            *list(signature.parameters.values())[2:],
        ],
        return_annotation=CommandResult,
    )
    return run


class LedgerCore(Application[UUID]):
    """The event-sourced application: load, decide, save; one transaction per command."""

    name = "DutyLedger"
    env = {  # noqa: RUF012
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
    }
    cache_size = 5000
    """Aggregates kept in memory between commands (see `FollowingCache`)."""

    def __init__(self, database_url: str = "sqlite:///./var/ledger.sqlite", *, clock: Clock | None = None):
        self.database_url = database_url
        self.clock: Clock = clock or SystemClock()
        super().__init__(env=store_env(database_url))
        self.cache = FollowingCache(self.repository, self.recorder, self.cache_size)
        self.aggregate_locks = StripedLocks()
        self.listeners: list[Callable[[int], None]] = []
        """Called with the last position after every save (e.g. to wake in-process projections)."""

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Configuration comes from the database URL alone, never from stray variables."""
        return Environment(name, {**type(self).env, **(env or {})})

    @property
    def command_log(self) -> CommandLog:
        return cast(CommandLog, self.recorder)

    def execute(
        self,
        name: str,
        ctx: CommandContext,
        arguments: dict[str, Any],
        body: Callable[[Work], UUID],
    ) -> CommandResult:
        """Run `body` in a fresh unit of work and save what it changed with the command's record."""
        command_id = ctx.command_id or str(uuid4())
        if not 0 < len(command_id) <= COMMAND_ID_MAX or "\x00" in command_id:
            raise InvalidArgument(f"a command id has 1 to {COMMAND_ID_MAX} characters, none of them NUL")
        digest = command_digest(name, ctx, arguments)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            work: Work | None = None
            try:
                if attempt > 1:
                    self.cache.refresh()
                work = Work(self, ctx, command_id)
                aggregate_id = body(work)
                touched = work.touched
                if not touched:
                    raise InvalidArgument(f"{name} would record nothing")
                events = tuple(
                    (e.originator_id, e.originator_version) for a in touched for e in a.pending_events
                )
                record = CommandRecord(command_id, name, digest, ctx.actor_id, aggregate_id, events, work.now)
                recordings = self.save(*touched, command=record, freshness=work.freshness)
                positions = tuple(r.notification.id for r in recordings)
                self.cache.saved(touched, positions, work.freshness.intervening)
            except LedgerError:
                earlier = self.earlier_answer(command_id, digest)
                if earlier is not None:
                    return earlier
                if work is None or attempt == MAX_ATTEMPTS:
                    raise
                if not self.cache.changed_since(work.freshness.after, work.freshness.read):
                    raise
                continue  # refused on a read that another writer had changed: decide again on fresh state
            except ValidationError as error:  # a value the command passed on that no event may hold
                raise InvalidArgument(_first_problem(error)) from None
            except StaleRead:
                if attempt == MAX_ATTEMPTS:
                    raise ConcurrencyConflict(f"{name} kept reading what others were changing") from None
                continue  # another writer changed what the command read: refresh, run again
            except IntegrityError:
                earlier = self.earlier_answer(command_id, digest)
                if earlier is not None:
                    return earlier
                if work is not None:
                    work.refuse_taken_ids()  # a derived id, given earlier to another record
                if ctx.expected_version is not None:
                    raise VersionConflict("the record changed while the command ran") from None
                if attempt == MAX_ATTEMPTS:
                    raise ConcurrencyConflict(
                        f"{name} collided with concurrent writers {attempt} times"
                    ) from None
            else:
                version = max(v for a, v in events if a == aggregate_id)
                return CommandResult(command_id, aggregate_id, version, max(positions), positions)
            finally:
                if work is not None:
                    work.release()
            # Another process wrote the same aggregate: wait a random while, then retry from a fresh load.
            time.sleep(random.uniform(0, min(BACKOFF * 2 ** (attempt - 1), BACKOFF_CAP)))
        raise AssertionError("unreachable")  # pragma: no cover

    def peek(self, cls: type[A], aggregate_id: UUID) -> A:
        """The current `cls` with this id, shared from the cache (never to be changed)."""
        try:
            shared = self.cache.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"no {cls.__name__.lower()} {aggregate_id}", kind=cls.__name__) from None
        return typed(cls, shared, aggregate_id)

    def actor_at(self, cadre_id: UUID, moment: datetime | None = None) -> Actor:
        """The cadre as the registry knows them at `moment` (default: now): posting, unit and scope."""
        self.cache.refresh()
        return resolve_actor(self.peek, cadre_id, moment or self.clock.now())

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """Record the aggregates' pending events in one transaction, with `kwargs` for the recorder.

        The library's `save` checks each object against runtime protocols, which costs
        more than the rest of a command on Python 3.11; the ledger saves only aggregates.
        """
        processing = ProcessingEvent[UUID]()
        for aggregate in objs:
            processing.aggregates[aggregate.id] = aggregate
            processing.events.extend(aggregate.collect_events())
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        self._notify(recordings)
        return recordings

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if recordings:
            position = recordings[-1].notification.id
            for listener in list(self.listeners):
                listener(position)

    def earlier_answer(self, command_id: str, digest: str) -> CommandResult | None:
        """The stored answer to `command_id`, if it was applied; a conflict if it was a different command."""
        record = self.command_log.select_command(command_id)
        if record is None:
            return None
        if record.digest != digest:
            raise IdempotencyConflict(
                f"command id {command_id!r} was already used for a different {record.name} command",
                command_id=command_id,
            )
        positions = tuple(self.command_log.positions_of(record.events))
        version = max(v for a, v in record.events if a == record.aggregate_id)
        return CommandResult(
            command_id, record.aggregate_id, version, max(positions), positions, replayed=True
        )


def command_digest(name: str, ctx: CommandContext, arguments: dict[str, Any]) -> str:
    """A stable hash of what was asked: the command, its context (bar the id) and its arguments."""
    context = {
        "actor_id": ctx.actor_id,
        "narrative": ctx.narrative,
        "correlation_id": ctx.correlation_id,
        "occurred_at": ctx.occurred_at,
        "expected_version": ctx.expected_version,
        "evidence": ctx.evidence,
    }
    payload = {"command": name, "context": context, "arguments": arguments}
    try:
        # No integer beyond ±(2**53 - 1), JSON's safe range: a larger one would be recorded, then
        # break the views' 64-bit columns for good (or an integrator's JavaScript) on every replay.
        encoded = orjson.dumps(
            payload, default=_jsonable, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
        )
    except TypeError as error:
        raise InvalidArgument(f"a value of the command cannot be recorded: {error}") from None
    if b"\\u0000" in encoded:  # PostgreSQL stores no NUL in text; neither backend may take one
        raise InvalidArgument("text may not contain NUL characters")
    return hashlib.sha256(encoded).hexdigest()


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem.get("loc", ())) or "value"
    return f"{where}: {problem.get('msg', 'invalid')}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot digest {type(value).__name__}")
