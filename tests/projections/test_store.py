"""The views' connection: transactions, and transactions within transactions."""

from __future__ import annotations

import pytest

from projections.store import ViewConnection, ViewStore


class Refused(Exception):
    pass


def insert_then_fail(connection: ViewConnection, table: str, *, nested: bool) -> None:
    """Insert 2 in a transaction (inside another one if `nested`) that then fails."""
    with connection.transaction():
        if nested:
            with connection.transaction():
                connection.execute(f"INSERT INTO {table} VALUES (2)")
        else:
            connection.execute(f"INSERT INTO {table} VALUES (2)")
        raise Refused


def test_a_failed_inner_transaction_undoes_only_its_own_rows(database_url: str) -> None:
    connection = ViewStore(database_url).connect()
    try:
        connection.execute("CREATE TABLE kept (n INTEGER)")
        with connection.transaction():
            connection.execute("INSERT INTO kept VALUES (1)")
            with pytest.raises(Refused):
                insert_then_fail(connection, "kept", nested=False)
            with connection.transaction():
                connection.execute("INSERT INTO kept VALUES (3)")
        assert connection.execute("SELECT n FROM kept ORDER BY n") == [(1,), (3,)]
    finally:
        connection.close()


def test_a_failed_outer_transaction_undoes_its_committed_inner_ones(database_url: str) -> None:
    connection = ViewStore(database_url).connect()
    try:
        connection.execute("CREATE TABLE dropped (n INTEGER)")
        with pytest.raises(Refused):
            insert_then_fail(connection, "dropped", nested=True)
        assert connection.execute("SELECT n FROM dropped") == []
    finally:
        connection.close()
