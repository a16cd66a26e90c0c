"""A rebuild writes the ledger's file in short transactions, so the ledger's writers get in between."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from projections import bulk
from projections.store import ViewConnection, ViewStore
from tests.projections.commits import counting


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[ViewConnection]:
    """A SQLite views' database with a table of numbers, empty."""
    connection = ViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}").connect()
    connection.execute("CREATE TABLE numbers (n INTEGER NOT NULL, seen INTEGER NOT NULL DEFAULT 0)")
    yield connection
    connection.close()


def test_chunks_cover_every_row_once_in_transactions_of_at_most_a_chunk(
    connection: ViewConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connection.transaction():
        connection.executemany("INSERT INTO numbers (n) VALUES (?)", [(n,) for n in range(40)])
        connection.execute("DELETE FROM numbers WHERE n BETWEEN 10 AND 19")  # a gap, as upserts leave
    changes: list[int] = []
    monkeypatch.setattr(bulk, "CHUNK", 3)
    monkeypatch.setattr(ViewConnection, "transaction", counting(changes))
    bulk.in_chunks(connection, "numbers", "UPDATE numbers SET seen = seen + 1 WHERE rowid >= ? AND rowid < ?")
    monkeypatch.undo()
    assert connection.execute("SELECT COUNT(*), MIN(seen), MAX(seen) FROM numbers") == [(30, 1, 1)]
    assert len(changes) == 14  # rowids 1–40 in chunks of 3, those of the gap included
    assert max(changes) == 3
    assert sum(changes) == 30


def test_an_empty_table_takes_no_transaction(
    connection: ViewConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ViewConnection, "transaction", lambda self: pytest.fail("a transaction began"))
    bulk.in_chunks(connection, "numbers", "DELETE FROM numbers WHERE rowid >= ? AND rowid < ?")


def test_the_rebuild_pauses_after_each_chunk_so_a_waiting_writer_can_take_the_lock(
    connection: ViewConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connection.transaction():
        connection.executemany("INSERT INTO numbers (n) VALUES (?)", [(n,) for n in range(10)])
    moments: list[str] = []
    real_transaction = ViewConnection.transaction

    def noted(self: ViewConnection) -> object:
        moments.append("transaction")
        return real_transaction(self)

    monkeypatch.setattr(bulk, "CHUNK", 4)
    monkeypatch.setattr(ViewConnection, "transaction", noted)
    monkeypatch.setattr(bulk.time, "sleep", lambda seconds: moments.append(f"pause {seconds}"))
    bulk.in_chunks(connection, "numbers", "DELETE FROM numbers WHERE rowid >= ? AND rowid < ?")
    monkeypatch.undo()
    assert moments == ["transaction", f"pause {bulk.PAUSE}"] * 3
