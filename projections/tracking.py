"""Where each view is up to: one row per view and generation, moved in the same transaction as its rows.

A batch claims its range by moving the position from where the runner read it to the
last event of the batch; if another runner moved it first, the claim changes no row and
the whole transaction is dropped. So every event is applied exactly once, however many
runners follow the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from projections.store import ViewConnection
from projections.view import View

TRACKING = "projection_tracking"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TRACKING} ("
    "view TEXT NOT NULL, generation INTEGER NOT NULL, schema_version INTEGER NOT NULL, "
    "position BIGINT NOT NULL, live INTEGER NOT NULL, updated_at TEXT NOT NULL, "
    "PRIMARY KEY (view, generation))"
)


class PositionMoved(Exception):
    """Another runner applied this batch first; re-read the position and go on."""


@dataclass(frozen=True)
class Track:
    """A view's generation and how far it has applied the log."""

    view: str
    generation: int
    schema_version: int
    position: int
    live: bool


def now_text() -> str:
    return datetime.now(UTC).isoformat()


def ensure_schema(connection: ViewConnection) -> None:
    """Create the tracking table if it is missing."""
    with connection.schema_change():
        connection.execute(SCHEMA)


def tracks(connection: ViewConnection, view: str) -> list[Track]:
    rows = connection.execute(
        f"SELECT view, generation, schema_version, position, live FROM {TRACKING} WHERE view = ? "
        "ORDER BY generation",
        (view,),
    )
    return [Track(r[0], int(r[1]), int(r[2]), int(r[3]), bool(r[4])) for r in rows]


def live_track(connection: ViewConnection, view: str) -> Track | None:
    return next((t for t in tracks(connection, view) if t.live), None)


def create_generation(connection: ViewConnection, view: View, *, live: bool) -> Track:
    """Create the tables of the view's next generation and its tracking row, in one transaction.

    Asked for a live generation when one exists (another runner was first), returns that one.
    Numbers are never reused: a failed rebuild's generation stays until a swap drops it.
    A live generation gets its secondary indexes at once; a rebuild's gets them before its swap.
    """
    with connection.schema_change():
        existing = tracks(connection, view.name)
        current = next((t for t in existing if t.live), None)
        if live and current is not None:
            return current
        generation = max((t.generation for t in existing), default=0) + 1
        for table in view.tables:
            for statement in table.create(generation, indexes=live):
                connection.execute(statement)
        connection.execute(
            f"INSERT INTO {TRACKING} (view, generation, schema_version, position, live, updated_at) "
            "VALUES (?, ?, ?, 0, ?, ?)",
            (view.name, generation, view.schema_version, int(live), now_text()),
        )
        if live:
            point_readers_at(connection, view, generation)
    return Track(view.name, generation, view.schema_version, 0, live)


def point_readers_at(connection: ViewConnection, view: View, generation: int) -> None:
    """(Re)define the SQL views readers query, over one generation's tables."""
    for table in view.tables:
        connection.execute(f"DROP VIEW IF EXISTS {table.name}")
        connection.execute(f"CREATE VIEW {table.name} AS SELECT * FROM {table.physical(generation)}")


def claim(connection: ViewConnection, track: Track, to_position: int) -> Track:
    """Move the position from where it was read to `to_position`, or raise PositionMoved."""
    changed = connection.count(
        f"UPDATE {TRACKING} SET position = ?, updated_at = ? "
        "WHERE view = ? AND generation = ? AND position = ? AND live = ?",
        (to_position, now_text(), track.view, track.generation, track.position, int(track.live)),
    )
    if changed != 1:
        raise PositionMoved(f"{track.view} g{track.generation} moved past {track.position}")
    return Track(track.view, track.generation, track.schema_version, to_position, track.live)
