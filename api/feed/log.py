"""Reading the public log by log index: pages of the sequence, filtered by event type and unit subtree.

A page is decided by its request alone once the log has grown past it, so complete pages
never change (the feed serves them as immutable). Unfiltered, the page after index `a` of
`n` events is `a+1 … a+n`. Filtered, it is the first `n` matching events after `a` among
the next `SCAN` indexes; its `next` cursor is the last index it looked at, so a consumer
whose filter matches nothing for a while still moves on, and never re-reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TypeVar
from uuid import UUID

import orjson

from api.feed.envelope import CLASS_VERSION, Attributes, Envelopes, Sequenced, body_sql
from api.feed.withholding import Recusal, Withheld, withheld_from
from api.reading import ViewReader
from domain.catalogue import topics_of
from domain.ledger import Ledger
from domain.storage.sqlite import dashed
from projections.store import ViewConnection, ViewStore
from projections.views.event_log import ATTRIBUTES, EVENT_LOG, EVENT_LOG_UNITS

SELECTED = ", ".join("l." + column for column in ("log_index", "position", *ATTRIBUTES))
MAX_PAGE = 1000
SCAN = 100_000
"""A filtered page looks at most this many indexes past its cursor."""


@dataclass(frozen=True)
class FeedFilter:
    """Which events a reader gets: every constraint must hold (the key's and the request's)."""

    topics: frozenset[str] | None = None
    """None: every type."""
    unit_scopes: tuple[frozenset[UUID], ...] = ()
    """Each a set of subtree roots; an event's actor unit must lie in one root's subtree of each."""
    recused: Recusal | None = None
    """A reader petitions may accuse: what would show them an accusation is withheld, as read."""
    pinned: Withheld | None = None
    """What `recused` withholds, decided once for a whole request (`PublicLog.pin`), else per page."""

    @classmethod
    def of(cls, types: Iterable[str] = (), units: Iterable[UUID] = ()) -> FeedFilter:
        types, units = list(types), frozenset(units)
        return cls(topics_of(types) if types else None, (units,) if units else ())

    def narrowed(self, other: FeedFilter) -> FeedFilter:
        """Both filters at once."""
        if self.topics is None or other.topics is None:
            topics = self.topics if other.topics is None else other.topics
        else:
            topics = self.topics & other.topics
        return FeedFilter(
            topics,
            self.unit_scopes + other.unit_scopes,
            self.recused or other.recused,
            self.pinned or other.pinned,
        )

    @property
    def everything(self) -> bool:
        return self.topics is None and not self.unit_scopes and self.recused is None

    @property
    def stable(self) -> bool:
        """Whether a complete page stays as served for ever (not when a later accusation may withhold
        some of it from this reader)."""
        return self.recused is None


@dataclass(frozen=True)
class Lines:
    """A page of the feed, each event as its CloudEvents JSON."""

    lines: list[bytes]
    next: int
    end: int
    complete: bool


@dataclass(frozen=True)
class Page:
    """Events after a cursor, where to go on from, and whether the page can never change."""

    events: list[Sequenced]
    next: int
    """The index to read after next time (-1: nothing sequenced yet)."""
    end: int
    """How many events the log had sequenced when the page was read."""
    complete: bool


class PublicLog:
    """The sequenced log, read from the `event_log` view and the ledger's stored events."""

    def __init__(self, ledger: Ledger, reader: ViewReader) -> None:
        self.ledger = ledger
        self.reader = reader
        self._joined = _events_beside(ledger, reader.store)
        """How to read the stored events in the same query, when the views live beside them."""

    def length(self, chosen: FeedFilter | None = None) -> int:
        """How many events have a log index (that `chosen` may be shown yet, see `withheld_from`)."""
        with self.reader.connection() as connection:
            withheld = None if chosen is None else _withheld(connection, chosen)
            return _length(connection, None if withheld is None else withheld.position)

    def pin(self, chosen: FeedFilter) -> FeedFilter:
        """`chosen` with what it withholds decided now, for a request of many pages (a bulk read):
        the accusations are looked up once, not for every page."""
        if chosen.recused is None or chosen.pinned is not None:
            return chosen
        with self.reader.connection() as connection:
            return replace(chosen, pinned=withheld_from(connection, chosen.recused))

    def page(self, after: int, limit: int, chosen: FeedFilter, until: int | None = None) -> Page:
        """The events after index `after` that `chosen` lets through: at most `limit`, none past `until`."""

        def select(connection: ViewConnection, condition: str, params: list[object]) -> Selected[Sequenced]:
            events = self._select(connection, condition, params)
            return events, events[-1].index if events else None

        events, after, end, complete = self._read(after, limit, chosen, until, select)
        return Page(events, after, end, complete)

    def encoded(
        self, after: int, limit: int, chosen: FeedFilter, envelopes: Envelopes, until: int | None = None
    ) -> Lines:
        """`page`, each event as its CloudEvents JSON: assembled by the database when the views live
        beside the events (bulk reads spend most of their time encoding), else by `envelopes`."""

        def select(connection: ViewConnection, condition: str, params: list[object]) -> Selected[bytes]:
            if self._joined is not None:
                return self._joined.encoded(connection, condition, params, envelopes, self._select)
            events = self._select(connection, condition, params)
            return [envelopes.encode(event) for event in events], events[-1].index if events else None

        lines, after, end, complete = self._read(after, limit, chosen, until, select)
        return Lines(lines, after, end, complete)

    def _read(
        self, after: int, limit: int, chosen: FeedFilter, until: int | None, select: Selector[Item]
    ) -> tuple[list[Item], int, int, bool]:
        """The selected events, the next cursor, the log's length, and whether the page is complete."""
        upper = after + (limit if chosen.everything else SCAN)
        if until is not None:
            upper = min(upper, until)
        with self.reader.connection() as connection:
            where = ["l.log_index > ?", "l.log_index <= ?"]
            params: list[object] = [after, upper]
            withheld = _withheld(connection, chosen)
            if withheld is None:
                end = _length(connection)
            else:
                end = _length(connection, withheld.position)
                if withheld.events:
                    where.append(f"(l.aggregate_id || ' ' || l.topic) NOT IN ({_listed(connection.dialect)})")
                    params.append(orjson.dumps(sorted(withheld.events)).decode())
            if chosen.topics is not None:
                marks = ", ".join("?" * len(chosen.topics))
                where.append(f"l.topic IN ({marks})" if chosen.topics else "1 = 0")
                params += sorted(chosen.topics)
            for scope in chosen.unit_scopes:
                units = _subtrees(connection, scope)
                where.append(f"l.actor_unit_id IN ({', '.join('?' * len(units))})" if units else "1 = 0")
                params += units
            events, found = select(
                connection, f"{' AND '.join(where)} ORDER BY l.log_index LIMIT ?", [*params, limit]
            )
        if found is not None and len(events) == limit:
            return events, found, end, True
        last = max(min(upper, end - 1), after if found is None else found)
        return events, last, end, upper <= end - 1

    def lets_through(self, event: Sequenced, chosen: FeedFilter) -> bool:
        """Whether `chosen` lets this event through."""
        return chosen.everything or bool(self.page(event.index - 1, 1, chosen, until=event.index).events)

    def at(self, index: int) -> Sequenced | None:
        """The event at a log index, if it has one yet."""
        with self.reader.connection() as connection:
            found = self._select(connection, "l.log_index = ?", [index])
        return found[0] if found else None

    def _select(self, connection: ViewConnection, condition: str, params: list[object]) -> list[Sequenced]:
        """The sequenced events the condition on `event_log l` selects, with their stored rows."""
        if self._joined is not None:
            return self._joined.read(connection, condition, params)
        found = connection.execute(f"SELECT {SELECTED} FROM {EVENT_LOG.name} l WHERE {condition}", params)
        positions = [int(row[1]) for row in found]
        rows = self.ledger.command_log.read_positions(positions)
        if [row[0] for row in rows] != positions:
            raise RuntimeError("the event_log view names events the store does not hold")
        return [
            Sequenced(int(sequenced[0]), row, Attributes(*sequenced[2:]))
            for sequenced, row in zip(found, rows, strict=True)
        ]


Item = TypeVar("Item", Sequenced, bytes)
Selected = tuple[list[Item], int | None]
"""What a page's query found, and the last log index among it (None: nothing)."""
Selector = Callable[[ViewConnection, str, list[object]], Selected[Item]]


class _Joined:
    """Reads the sequencer's rows and the stored events they name in one query (one database)."""

    def __init__(self, events_table: str, position: str, dashed: bool) -> None:
        self.select = (
            f"SELECT {SELECTED}, s.originator_id, s.originator_version, s.topic, s.state "
            f"FROM {EVENT_LOG.name} l JOIN {events_table} s ON s.{position} = l.position WHERE "
        )
        self.dashed = dashed
        self.events_table, self.position = events_table, position

    def encoded(
        self,
        connection: ViewConnection,
        condition: str,
        params: list[object],
        envelopes: Envelopes,
        select: Callable[[ViewConnection, str, list[object]], list[Sequenced]],
    ) -> Selected[bytes]:
        """The selected events with their envelopes assembled by the database (`envelope.body_sql`);
        those stored by an older class version are read whole, to be upcast in Python."""
        rows = connection.execute(
            f"SELECT l.log_index, l.topic, {body_sql(connection.dialect)} FROM {EVENT_LOG.name} l "
            f"JOIN {self.events_table} s ON s.{self.position} = l.position WHERE {condition}",
            params,
        )
        lines, older, heads = [], [], envelopes.heads_as_stored()
        for index, topic, body in rows:  # the loop every bulk read runs per event: kept lean
            head = heads.get(topic)
            if head is None or CLASS_VERSION in body:
                older.append(index)
                lines.append(b"")
            else:
                lines.append(head + body)
        if older:
            whole = select(connection, _among(len(older)), older)
            upcast = {event.index: envelopes.encode(event) for event in whole}
            lines = [upcast.get(row[0]) or line for row, line in zip(rows, lines, strict=True)]
        return lines, int(rows[-1][0]) if rows else None

    def read(self, connection: ViewConnection, condition: str, params: list[object]) -> list[Sequenced]:
        rows = connection.execute(self.select + condition, params)
        shape = dashed if self.dashed else str
        return [
            Sequenced(
                int(row[0]),
                (int(row[1]), shape(row[8]), int(row[9]), str(row[10]), bytes(row[11])),
                Attributes(*row[2:8]),
            )
            for row in rows
        ]


def _events_beside(ledger: Ledger, views: ViewStore) -> _Joined | None:
    """A joined reader if the views live in the ledger's own database (the default), else None."""
    if views.database_url != ledger.database_url:
        return None
    table = ledger.recorder.events_table_name  # type: ignore[attr-defined]
    if views.dialect == "sqlite":
        return _Joined(table, "rowid", dashed=True)
    return _Joined(table, "notification_id", dashed=False)


def _among(count: int) -> str:
    """The condition selecting `count` log indexes given as parameters."""
    return f"l.log_index IN ({', '.join('?' * count)}) ORDER BY l.log_index"


def _length(connection: ViewConnection, until_position: int | None = None) -> int:
    """How many events have a log index (of those at ledger positions up to `until_position`)."""
    if until_position is None:
        ((found,),) = connection.execute(f"SELECT MAX(log_index) FROM {EVENT_LOG.name}")
    else:
        last = connection.execute(
            f"SELECT log_index FROM {EVENT_LOG.name} WHERE position <= ? ORDER BY position DESC LIMIT 1",
            [until_position],
        )
        found = last[0][0] if last else None
    return 0 if found is None else int(found) + 1


def _withheld(connection: ViewConnection, chosen: FeedFilter) -> Withheld | None:
    """What `chosen` withholds now (None: nothing, and no bound on the position)."""
    if chosen.recused is None:
        return None
    return chosen.pinned or withheld_from(connection, chosen.recused)


def _listed(dialect: str) -> str:
    """The texts of one JSON array parameter, as a subquery (any number of them, one parameter)."""
    if dialect == "sqlite":
        return "SELECT value FROM json_each(?)"
    return "SELECT json_array_elements_text(?::json)"


def _subtrees(connection: ViewConnection, roots: frozenset[UUID]) -> list[str]:
    """Every unit in the subtrees of `roots` (each root included)."""
    units: set[str] = set()
    for root in sorted(roots, key=str):
        rows = connection.execute(
            f"SELECT unit_id FROM {EVENT_LOG_UNITS.name} WHERE path LIKE ?", (f"%/{root}/%",)
        )
        units |= {str(unit) for (unit,) in rows}
    return sorted(units)
