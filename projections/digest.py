"""A deterministic hash of a view's content: the same log gives the same digest, on either backend."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from projections.columns import as_json
from projections.store import ViewConnection
from projections.tracking import live_track
from projections.view import View


@dataclass(frozen=True)
class Digest:
    """A view's content hash at the position it has applied."""

    view: str
    position: int
    rows: int
    sha256: str


def digest(connection: ViewConnection, view: View) -> Digest:
    """Hash every row of every table of the view's live generation, in key order, as canonical JSON.

    Position and rows are read in one snapshot, so a runner committing meanwhile cannot pair
    new rows with an old position; a view not built yet hashes as an empty one.
    """
    hashed = hashlib.sha256()
    count = 0
    with connection.snapshot():
        track = live_track(connection, view.name)
        for table in view.tables:
            hashed.update(f"table {table.name}\n".encode())
            if track is None:
                continue
            rows = connection.execute(
                f"SELECT * FROM {table.physical(track.generation)} ORDER BY {', '.join(table.key)}"
            )
            for row in rows:
                hashed.update(as_json([_plain(value) for value in row]).encode() + b"\n")
                count += 1
    return Digest(view.name, track.position if track else 0, count, hashed.hexdigest())


def _plain(value: object) -> object:
    """The same Python value whichever driver read it (booleans as 0/1, large ints as ints)."""
    if isinstance(value, bool):
        return int(value)
    return value
