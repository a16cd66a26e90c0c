"""Writers of one SQLite file queue on one lock, in every process: the ledger's saves, the views' writes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from threading import Lock
from typing import Any

import pytest

from domain.storage.writers import queued, write_lock
from projections.store import ViewStore
from tests.support import World


def test_every_spelling_of_a_file_gets_the_same_lock_and_other_files_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ledger = write_lock(str(tmp_path / "ledger.sqlite"))
    assert write_lock("ledger.sqlite") is ledger
    assert write_lock(f".{os.sep}ledger.sqlite") is ledger
    assert write_lock("other.sqlite") is not ledger


def test_a_view_transaction_on_sqlite_holds_the_files_lock_until_it_commits(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    connection = ViewStore(f"sqlite:///{path}").connect()
    try:
        with connection.transaction():
            assert write_lock(str(path)).locked()
            with connection.transaction():  # a savepoint inside: already queued
                assert write_lock(str(path)).locked()
        assert not write_lock(str(path)).locked()
    finally:
        connection.close()


def test_a_scratch_view_store_takes_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "share.sqlite"
    connection = ViewStore(f"sqlite:///{path}", scratch=True).connect()
    try:
        with connection.transaction():
            assert not write_lock(str(path)).locked()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "database_url", ["sqlite"], indirect=True
)  # PostgreSQL orders writers by a table lock
def test_the_ledgers_save_on_sqlite_holds_the_files_lock(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder: Any = world.ledger.recorder
    lock: Lock = write_lock(recorder.datastore.pool.db_name)
    held: list[bool] = []
    insert = recorder._insert_events

    def spied(*args: Any, **kwargs: Any) -> Any:
        held.append(lock.locked())
        return insert(*args, **kwargs)

    monkeypatch.setattr(recorder, "_insert_events", spied)
    world.do(world.handler, "record_action", case_id=world.accepted(), kind="visit")
    assert held
    assert all(held)
    assert not lock.locked()


def test_a_writer_waits_for_the_files_lock_no_longer_than_sqlite_would_then_is_told_it_is_locked() -> None:
    lock = Lock()
    lock.acquire()
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"), queued(lock, 0.05):
            pass
    finally:
        lock.release()
    with queued(lock, 0.05):
        assert lock.locked()
    assert not lock.locked()


HOLDER = """
import sys, time
from domain.storage.writers import write_lock
with write_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_writer_in_another_process_holds_the_files_lock_until_it_lets_go(tmp_path: Path) -> None:
    """This process's first writer waits for the other process in the kernel, taking the lock the
    moment it is let go; the writers queued behind it in this process keep their timeout."""
    path = str(tmp_path / "ledger.sqlite")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, "0.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        lock = write_lock(path)
        refused: list[Exception] = []

        def queued_behind() -> None:
            time.sleep(0.1)
            try:
                with queued(lock, 0.05):
                    pass
            except sqlite3.OperationalError as error:
                refused.append(error)

        other = threading.Thread(target=queued_behind)
        other.start()
        began = time.monotonic()
        with queued(lock, 0.05):
            waited = time.monotonic() - began
        other.join()
        assert waited > 0.3  # it waited for the other process to let go (it held the lock 0.5 s)
        assert len(refused) == 1
        assert "database is locked" in str(refused[0])
        assert not lock.locked()
    finally:
        holder.wait(timeout=10)


def test_a_database_in_memory_has_no_file_lock() -> None:
    lock = write_lock("file:dutyledger-test?mode=memory&cache=shared")
    with lock:
        assert lock.locked()
    assert not lock.locked()
