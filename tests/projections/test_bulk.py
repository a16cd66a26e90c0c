"""A rebuild writes the ledger's file in short transactions, so the ledger's writers get in between."""

from __future__ import annotations

from pathlib import Path

import pytest

from projections import bulk
from projections.store import ViewConnection, ViewStore
from tests.projections.test_shares_review import counting


def test_chunks_cover_every_row_once_in_transactions_of_at_most_a_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = ViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}").connect()
    connection.execute("CREATE TABLE numbers (n INTEGER NOT NULL, seen INTEGER NOT NULL DEFAULT 0)")
    with connection.transaction():
        connection.executemany("INSERT INTO numbers (n) VALUES (?)", [(n,) for n in range(40)])
        connection.execute(
            "DELETE FROM numbers WHERE n BETWEEN 10 AND 19"
        )  # rowids with a gap, as upserts leave
    changes: list[int] = []
    monkeypatch.setattr(bulk, "CHUNK", 3)
    monkeypatch.setattr(ViewConnection, "transaction", counting(changes))
    bulk.in_chunks(connection, "numbers", "UPDATE numbers SET seen = seen + 1 WHERE rowid >= ? AND rowid < ?")
    monkeypatch.undo()
    try:
        assert connection.execute("SELECT COUNT(*), MIN(seen), MAX(seen) FROM numbers") == [(30, 1, 1)]
        assert len(changes) == 14  # rowids 1–40 in chunks of 3, those of the gap included
        assert max(changes) == 3
        assert sum(changes) == 30
    finally:
        connection.close()


def test_an_empty_table_takes_no_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = ViewStore(f"sqlite:///{tmp_path / 'views.sqlite'}").connect()
    connection.execute("CREATE TABLE numbers (n INTEGER NOT NULL)")
    monkeypatch.setattr(ViewConnection, "transaction", lambda self: pytest.fail("a transaction began"))
    try:
        bulk.in_chunks(connection, "numbers", "DELETE FROM numbers WHERE rowid >= ? AND rowid < ?")
    finally:
        monkeypatch.undo()
        connection.close()
