"""One command's unit of work: who acts, when, what is loaded, what will be saved."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from threading import Lock
from typing import TYPE_CHECKING, Protocol, TypeVar
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError

from domain.aggregate import LedgerAggregate
from domain.case import Appointee
from domain.errors import (
    AlreadyExists,
    InvalidArgument,
    InvalidTime,
    NotActive,
    NotFound,
    OutsideJurisdiction,
    RoleRequired,
    VersionConflict,
)
from domain.events import Stamp, check_free_text
from domain.ids import LEDGER_NAMESPACE
from domain.registry import Cadre, Posting, Unit
from domain.rules import Deadlines
from domain.rules.book import RuleBook
from domain.storage.freshness import Freshness
from domain.values import Evidence, Role

if TYPE_CHECKING:
    from domain.case import Case
    from domain.ledger.core import LedgerCore

A = TypeVar("A", bound=LedgerAggregate)


class Peek(Protocol):
    """Reads an aggregate of a given class, shared and never to be changed."""

    def __call__(self, cls: type[A], aggregate_id: UUID) -> A: ...


DUE_HORIZON = timedelta(days=3650)
"""A fixed deadline further than this from when it is set is a mistake (or a placeholder), not a deadline."""

CLOCK_SKEW = timedelta(seconds=5)
"""How far a caller's occurred_at may run ahead of the ledger's clock: drift, recorded as "now"."""


@dataclass(frozen=True)
class CommandContext:
    """Who asks, why, and how the ledger should treat the request.

    `actor_id` is the authenticated principal: the API sets it from the credential,
    never from the request body.
    """

    actor_id: UUID
    narrative: str
    command_id: str | None = None
    correlation_id: str | None = None
    occurred_at: datetime | None = None
    expected_version: int | None = None
    evidence: tuple[Evidence, ...] = ()
    within: frozenset[UUID] = frozenset()
    """The unit subtrees the credential is limited to (an inspector key's scope): the actor's
    jurisdiction narrowed to them. Empty: the cadre's whole jurisdiction."""


@dataclass(frozen=True)
class Actor:
    """The acting cadre as the registry knew them at occurred_at."""

    cadre: Cadre
    posting: Posting
    unit: Unit
    scope: Unit
    within: frozenset[UUID] = frozenset()
    """Subtrees the credential limits the actor to (`CommandContext.within`); empty: no limit."""

    @property
    def id(self) -> UUID:
        return self.cadre.id

    @property
    def unit_id(self) -> UUID:
        return self.unit.id

    @property
    def units_served(self) -> frozenset[UUID]:
        """Every unit the cadre has served in, this one included: whom a petition accuses."""
        return self.cadre.units_served

    def appointee(self) -> Appointee:
        """The cadre as proposed for a role on a case."""
        return Appointee(self.id, self.unit_id, self.units_served, self.posting.is_leader)

    def covers(self, unit: Unit) -> bool:
        """Whether `unit` lies in the territory this actor's unit acts on (and the credential reaches)."""
        return self.scope.id in unit.path and (not self.within or not self.within.isdisjoint(unit.path))

    def require(self, role: Role, action: str) -> None:
        if role not in self.cadre.roles:
            raise RoleRequired(f"only a cadre with the {role} role may {action}", role=str(role))


def typed(cls: type[A], aggregate: object, aggregate_id: UUID) -> A:
    """`aggregate` if it is a `cls`; else the id names no such thing."""
    if not isinstance(aggregate, cls):
        raise NotFound(f"no {cls.__name__.lower()} {aggregate_id}", kind=cls.__name__)
    return aggregate


def resolve_actor(peek: Peek, cadre_id: UUID, moment: datetime) -> Actor:
    """A cadre with the posting, unit and scope they held at `moment`, read through `peek`."""
    try:
        cadre = peek(Cadre, cadre_id)
    except NotFound:
        raise NotFound(f"no cadre {cadre_id}", kind="Cadre") from None
    posting = cadre.posting_at(moment)
    if posting is None:
        raise NotActive(f"{cadre.name} was not in service at {moment.isoformat()}", cadre_id=str(cadre_id))
    unit = peek(Unit, posting.unit_id)
    scope = unit if unit.scope_id == unit.id else peek(Unit, unit.scope_id)
    return Actor(cadre=cadre, posting=posting, unit=unit, scope=scope)


class Work:
    """Loads aggregates for one command, stamps its events, and collects what to save."""

    def __init__(self, ledger: LedgerCore, ctx: CommandContext, command_id: str) -> None:
        """Read the clock and check the context: the command's business time and narrative."""
        self.ledger = ledger
        self.ctx = ctx
        self.command_id = command_id
        self._held: Lock | None = None
        self.now = ledger.clock.now()
        occurred_at = ctx.occurred_at or self.now
        if occurred_at.tzinfo is None:
            raise InvalidArgument("occurred_at must carry a time zone offset")
        if occurred_at > self.now + CLOCK_SKEW:
            raise InvalidTime(
                f"occurred_at {occurred_at.isoformat()} is in the future", now=self.now.isoformat()
            )
        self.occurred_at = min(occurred_at, self.now)  # business time never after record time
        self.narrative = check_free_text(ctx.narrative, what="narrative")
        self._tracked: dict[UUID, LedgerAggregate] = {}
        self._derived: dict[UUID, str] = {}
        """Ids this command derived from its own id, with their kind."""
        self.freshness = Freshness(after=ledger.cache.position)
        """What the command read from the cache, checked by its save (`domain.storage.freshness`)."""
        self._actor: Actor | None = None
        self._stamp: Stamp | None = None

    def _after_waiting(self) -> None:
        """Another command on the aggregate just finished: see its effects, and record after it."""
        self.ledger.cache.refresh()
        if not self.freshness.read:
            self.freshness.after = self.ledger.cache.position
        self.now = max(self.now, self.ledger.clock.now())
        if self.ctx.occurred_at is None:
            self.occurred_at = self.now
        self._actor = None
        self._stamp = None

    def release(self) -> None:
        """Let the next command on the target aggregate proceed."""
        if self._held is not None:
            self._held.release()
            self._held = None

    # --- loading ------------------------------------------------------------------

    def get(self, cls: type[A], aggregate_id: UUID) -> A:
        """Load an aggregate this command will change (a private copy, saved at the end)."""
        tracked = self._tracked.get(aggregate_id)
        if tracked is None:
            tracked = self._load(cls, aggregate_id, private=True)
            self._tracked[aggregate_id] = tracked
        return self._typed(cls, tracked, aggregate_id)

    def target(self, cls: type[A], aggregate_id: UUID) -> A:
        """Load the aggregate the command is addressed to, checking the caller's expected version.

        Other commands of this process on the same aggregate wait until this one is saved.
        """
        if self._held is None:
            self._held = self.ledger.aggregate_locks.for_aggregate(aggregate_id)
            if not self._held.acquire(blocking=False):
                self._held.acquire()
                self._after_waiting()
        aggregate = self.get(cls, aggregate_id)
        expected = self.ctx.expected_version
        if expected is not None and aggregate.version != expected:
            raise VersionConflict(
                f"expected version {expected} but the record is at version {aggregate.version}",
                expected=expected,
                actual=aggregate.version,
            )
        return aggregate

    def peek(self, cls: type[A], aggregate_id: UUID) -> A:
        """Read an aggregate this command only consults (shared, never to be changed)."""
        tracked = self._tracked.get(aggregate_id)
        if tracked is not None:
            return self._typed(cls, tracked, aggregate_id)
        return self._load(cls, aggregate_id, private=False)

    def exists(self, aggregate_id: UUID) -> bool:
        if aggregate_id in self._tracked:
            return True
        self.freshness.read.add(aggregate_id)
        try:
            self.ledger.cache.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    def new_id(self, kind: str, given: UUID | None) -> UUID:
        """`given`, or an id derived from the command id, so a retried creation names the same thing."""
        if given is not None:
            return given
        derived = uuid5(LEDGER_NAMESPACE, f"{kind}/{self.command_id}")
        self._derived[derived] = kind
        return derived

    def create(self, aggregate: A) -> A:
        """Track a newly created aggregate for saving, refusing an id already taken.

        An id derived from this command's id is looked up only if the save collides
        (`refuse_taken_ids`): a fresh command id has not named anything yet, and a second
        use of the same command id is answered by the command log.
        """
        if aggregate.id not in self._derived and self.exists(aggregate.id):
            raise AlreadyExists(f"{type(aggregate).__name__.lower()} {aggregate.id} already exists")
        return self.add(aggregate)

    def refuse_taken_ids(self) -> None:
        """After a collision: `AlreadyExists` if an id derived from the command id was taken.

        Derived ids are predictable, and a caller may give any id explicitly, so another
        record can hold one; the store's key refused the save, and this says why.
        """
        for aggregate_id, kind in self._derived.items():
            try:
                self.ledger.cache.get(aggregate_id)  # not `exists`: this command tracks the id itself
            except AggregateNotFoundError:
                continue
            raise AlreadyExists(f"{kind} {aggregate_id} already exists")

    def add(self, aggregate: A) -> A:
        """Track a newly created aggregate for saving."""
        self._tracked[aggregate.id] = aggregate
        return aggregate

    @property
    def touched(self) -> list[LedgerAggregate]:
        return [a for a in self._tracked.values() if a.pending_events]

    def _load(self, cls: type[A], aggregate_id: UUID, *, private: bool) -> A:
        self.freshness.read.add(aggregate_id)
        shared = self.ledger.peek(cls, aggregate_id)
        return shared.clone() if private else shared

    @staticmethod
    def _typed(cls: type[A], aggregate: object, aggregate_id: UUID) -> A:
        return typed(cls, aggregate, aggregate_id)

    # --- the actor and the stamp ---------------------------------------------------

    @property
    def actor(self) -> Actor:
        if self._actor is None:
            self._actor = replace(self.resolve_cadre(self.ctx.actor_id), within=self.ctx.within)
        return self._actor

    def resolve_cadre(self, cadre_id: UUID, at: datetime | None = None) -> Actor:
        """A cadre with the posting, unit and scope they held at `at` (default: occurred_at)."""
        return resolve_actor(self.peek, cadre_id, at or self.occurred_at)

    @property
    def stamp(self) -> Stamp:
        if self._stamp is None:
            self._stamp = self.stamp_as(self.actor.id, self.actor.unit_id)
        return self._stamp

    def stamp_as(self, actor_id: UUID, actor_unit_id: UUID) -> Stamp:
        """The stamp for an actor resolved by the command itself (only the ledger's genesis)."""
        return Stamp(
            actor_id=actor_id,
            actor_unit_id=actor_unit_id,
            occurred_at=self.occurred_at,
            recorded_at=self.now,
            command_id=self.command_id,
            correlation_id=self.ctx.correlation_id or self.command_id,
            narrative=self.narrative,
            evidence=self.ctx.evidence,
        )

    # --- rules and jurisdiction ----------------------------------------------------

    @property
    def rule_book(self) -> RuleBook:
        return self.peek(RuleBook, RuleBook.ID)

    def deadlines_for(self, unit: Unit) -> Deadlines:
        """The rules in force now for `unit`'s jurisdiction."""
        return self.rule_book.deadlines_for(unit.jurisdiction, self.occurred_at)

    def due(self, day: date | None) -> date | None:
        """A fixed deadline the caller set, if it lies within `DUE_HORIZON` of the business date."""
        if day is not None and abs(day - self.occurred_at.date()) > DUE_HORIZON:
            raise InvalidArgument(
                f"a due date must lie within {DUE_HORIZON.days} days of when it is set, not {day.isoformat()}"
            )
        return day

    def case_deadlines(self, case: Case) -> Deadlines:
        """The rules the case was accepted under; before acceptance, those of its current unit."""
        if case.rules is not None:
            return self.rule_book.deadlines(case.rules)
        assert case.unit_id is not None
        return self.deadlines_for(self.peek(Unit, case.unit_id))

    def check_jurisdiction(self, case: Case) -> None:
        """The actor's territory must contain the case's unit, unless the case was assigned to them."""
        assert case.unit_id is not None
        if case.involves(self.actor.id) or self.actor.covers(self.peek(Unit, case.unit_id)):
            return
        raise OutsideJurisdiction(
            "the case is held by a unit outside your jurisdiction and was not assigned to you",
            case_id=str(case.id),
        )
