"""Counting what each transaction of a views' connection commits, for tests of a rebuild's commits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from projections.store import ViewConnection


def counting(
    changes: list[int], when: Callable[[ViewConnection], bool] = lambda _: True
) -> Callable[[ViewConnection], AbstractContextManager[ViewConnection]]:
    """A stand-in for `ViewConnection.transaction` that records how many rows each outer SQLite
    transaction changed (those `when` picks, looking at the connection after the commit)."""
    real_transaction = ViewConnection.transaction

    @contextmanager
    def counted(connection: ViewConnection) -> Iterator[ViewConnection]:
        outer = connection.dialect == "sqlite" and not connection.raw.in_transaction
        before = connection.raw.total_changes if outer else 0
        with real_transaction(connection) as inside:
            yield inside
        if outer and when(connection):
            changes.append(connection.raw.total_changes - before)

    return counted
