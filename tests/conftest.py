"""Fixtures shared by the whole suite: both backends, a controllable clock, a small world.

Every test that takes `database_url` (directly or through `ledger`) runs twice: on a
fresh SQLite file and on a fresh PostgreSQL schema. Without a PostgreSQL server the
PostgreSQL half is skipped with the reason shown; when CI=true it fails instead, and
the session fails if any PostgreSQL test was skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from domain.clock import ManualClock
from domain.ledger import Ledger
from tests.support import World, build_world

POSTGRES_URL = os.environ.get("DUTYLEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
"""Monday 2 March 2026, 09:00 in Beijing: a working day clear of holidays."""

_postgres_problem: list[str | None] = []


@pytest.fixture(scope="session", autouse=True)
def no_signing_key_from_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fixtures of any scope find no signing key but one they made: never `./var/ledger-signing.key`.

    `dutyledger init` creates the key there by default, and the tests run it from the checkout:
    a test would leave a key behind that `make run` and the benchmarks then pick up, and a
    module's app would sign with a key left there by `make init`, or not, depending.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DUTYLEDGER_SIGNING_KEY_PATH", str(tmp_path_factory.mktemp("signing") / "absent.key"))
        patch.setenv("DUTYLEDGER_WEBHOOK_KEY_PATH", str(tmp_path_factory.mktemp("webhooks") / "sealing.key"))
        yield


@pytest.fixture(autouse=True)
def signing_key_outside_the_checkout(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test's signing key path is a fresh one of its own (an `init` it runs creates it there)."""
    key = tmp_path_factory.mktemp("signing") / "ledger-signing.key"
    monkeypatch.setenv("DUTYLEDGER_SIGNING_KEY_PATH", str(key))


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can (checked once)."""
    if not _postgres_problem:
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=3):
                _postgres_problem.append(None)
        except psycopg.Error as error:
            _postgres_problem.append(f"no PostgreSQL at {POSTGRES_URL}: {str(error).strip()}")
    return _postgres_problem[0]


def require_postgres() -> None:
    problem = postgres_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {problem}: PostgreSQL tests must run in CI")
    pytest.skip(problem)


@contextmanager
def fresh_store(backend: str, folder: Path) -> Iterator[str]:
    """A database URL for a fresh, empty store: a new SQLite file, or a new PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/ledger-{uuid4().hex[:8]}.sqlite"
        return
    require_postgres()
    schema = f"test_{uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def postgres_schema_url(tmp_path: Path) -> Iterator[str]:
    """A database URL pointing at a fresh PostgreSQL schema, dropped afterwards."""
    with fresh_store("postgres", tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, empty store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.sqlite"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def ledger(database_url: str, clock: ManualClock) -> Iterator[Ledger]:
    with Ledger(database_url, clock=clock) as app:
        yield app


@pytest.fixture
def world(ledger: Ledger, clock: ManualClock) -> World:
    """An established ledger with a city, a county, a township and the cadres tests need."""
    return build_world(ledger, clock)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    postgres_skips = [r for r in skipped if "postgres" in getattr(r, "keywords", {})]
    if postgres_skips:
        print(f"\nCI=true: {len(postgres_skips)} PostgreSQL test(s) were skipped; failing the run")
        session.exitstatus = 1
