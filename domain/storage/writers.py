"""One queue per SQLite file for the writers of this process.

SQLite admits one writer per file. A connection that finds the write lock taken waits in
its busy handler, which sleeps 1, 2, 5, 10 ms and longer between tries, so two threads of
one process writing the same file (the ledger's commands and the embedded views' runner)
could wait longer than the other held the lock. Writers that take this lock first queue
in the process instead, and the next one starts the moment the last commits (HTTP commands
at 8 clients: 271 -> 348/s). Other processes still meet at SQLite's own lock.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from threading import Lock

_locks: dict[str, Lock] = {}
_guard = Lock()


def write_lock(dbname: str) -> Lock:
    """The lock this process's writers of the SQLite database `dbname` take before they begin."""
    key = dbname if dbname.startswith("file:") else os.path.realpath(dbname)
    with _guard:
        return _locks.setdefault(key, Lock())


@contextmanager
def queued(lock: Lock, timeout: float, refuse: type[Exception] = sqlite3.OperationalError) -> Iterator[None]:
    """Hold `lock`, waiting at most `timeout` s (as SQLite's busy timeout would), else refuse: locked."""
    if not lock.acquire(timeout=timeout):
        raise refuse(f"database is locked: another writer of this process held it over {timeout:g} s")
    try:
        yield
    finally:
        lock.release()
