"""One database URL says where the ledger lives; a bad one is refused without leaking its password."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from domain.storage.url import POSTGRES_FACTORY, SQLITE_FACTORY, BadDatabaseUrl, store_env

SECRET = "hunter2-secret"


def test_a_relative_sqlite_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = store_env("sqlite:///./var/ledger.sqlite")
    assert env["PERSISTENCE_MODULE"] == SQLITE_FACTORY
    assert Path(env["SQLITE_DBNAME"]) == Path("var/ledger.sqlite")
    assert (tmp_path / "var").is_dir(), "the parent directory is created so the file can be"


def test_a_bare_relative_sqlite_file_name_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert store_env("sqlite:///ledger.sqlite")["SQLITE_DBNAME"] == "ledger.sqlite"


def test_an_absolute_sqlite_path_keeps_its_leading_slash(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "ledger.sqlite"
    env = store_env(f"sqlite:///{target}")
    assert env["SQLITE_DBNAME"] == str(target)
    assert target.is_absolute()
    assert target.parent.is_dir()


def test_sqlite_waits_for_the_write_lock_instead_of_failing_at_once() -> None:
    assert float(store_env("sqlite:///:memory:")["SQLITE_LOCK_TIMEOUT"]) > 0


def test_an_in_memory_sqlite_url_names_a_fresh_shared_memory_database_each_time() -> None:
    first = store_env("sqlite:///:memory:")["SQLITE_DBNAME"]
    second = store_env("sqlite:///:memory:")["SQLITE_DBNAME"]
    assert first != second
    for name in (first, second):
        assert name.startswith("file:")
        assert "mode=memory" in name
        assert "cache=shared" in name


def test_a_postgresql_url_gives_every_connection_setting() -> None:
    env = store_env(f"postgresql://ledger_user:{SECRET}@db.example.org:6543/duty?schema=ledger_a")
    assert env["PERSISTENCE_MODULE"] == POSTGRES_FACTORY
    assert env["POSTGRES_DBNAME"] == "duty"
    assert env["POSTGRES_HOST"] == "db.example.org"
    assert env["POSTGRES_PORT"] == "6543"
    assert env["POSTGRES_USER"] == "ledger_user"
    assert env["POSTGRES_PASSWORD"] == SECRET
    assert env["POSTGRES_SCHEMA"] == "ledger_a"


def test_postgresql_defaults_fill_what_the_url_leaves_out() -> None:
    env = store_env("postgresql:///duty")
    assert env["POSTGRES_HOST"] == "127.0.0.1"
    assert env["POSTGRES_PORT"] == "5432"
    assert env["POSTGRES_USER"] == getpass.getuser()
    assert env["POSTGRES_PASSWORD"] == ""
    assert env["POSTGRES_SCHEMA"] == ""


def test_the_postgres_scheme_alias_is_accepted() -> None:
    assert store_env("postgres://u@h/duty")["PERSISTENCE_MODULE"] == POSTGRES_FACTORY


def test_percent_encoded_user_password_and_database_are_decoded() -> None:
    env = store_env("postgresql://us%40er:p%40ss%3Aw%2Fd@h/du%20ty")
    assert env["POSTGRES_USER"] == "us@er"
    assert env["POSTGRES_PASSWORD"] == "p@ss:w/d"
    assert env["POSTGRES_DBNAME"] == "du ty"


def test_pool_and_timeout_settings_come_from_the_query_string() -> None:
    env = store_env("postgresql://u@h/duty?pool_size=2&max_overflow=3&connect_timeout=4&lock_timeout=6")
    assert (env["POSTGRES_POOL_SIZE"], env["POSTGRES_MAX_OVERFLOW"]) == ("2", "3")
    assert (env["POSTGRES_CONNECT_TIMEOUT"], env["POSTGRES_LOCK_TIMEOUT"]) == ("4", "6")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite:ledger.sqlite",
        "sqlite://host/ledger.sqlite",
        "mysql://root@db/ledger",
        "ledger.sqlite",
        "",
        "postgresql://u@h",
        "postgresql://u@h/",
        "postgresql://u@h/db?pool_size=abc",
        "postgresql://u@h/db?connect_timeout=-1",
        "postgresql://u@h/db?lock_timeout=1.5",
        "postgresql://u@h/db?schema=bad-name",
        'postgresql://u@h/db?schema=x";drop',
        "postgresql://u@h/db?schema=1st",
    ],
)
def test_urls_that_name_no_store_are_refused(url: str) -> None:
    """Refused with the reason, before any connection: a bad number or schema gave a traceback or raw SQL."""
    with pytest.raises(BadDatabaseUrl):
        store_env(url)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://ledger:{SECRET}@db.example.org:5432/",
        f"postgresql://ledger:{SECRET}@db.example.org",
        f"mysql://root:{SECRET}@db.example.org/ledger",
        f"postgresql+psycopg://ledger:{SECRET}@db.example.org/duty",
        f"postgresql://:{SECRET}@db.example.org/",
    ],
    ids=["no-database", "no-path", "unknown-scheme", "sqlalchemy-style-scheme", "password-without-user"],
)
def test_a_refused_url_is_reported_with_its_password_masked(url: str) -> None:
    with pytest.raises(BadDatabaseUrl) as refused:
        store_env(url)
    message = str(refused.value)
    assert SECRET not in message
    assert "***" in message
    assert "db.example.org" in message, "the rest of the URL is shown, to help find the mistake"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://ledger:{SECRET}@db.example.org:notaport/duty",
        f"postgresql://ledger:{SECRET}@db.example.org:99999/duty",
    ],
    ids=["port-not-a-number", "port-out-of-range"],
)
def test_a_malformed_port_is_a_bad_database_url_with_its_password_masked(url: str) -> None:
    with pytest.raises(BadDatabaseUrl) as refused:
        store_env(url)
    assert SECRET not in str(refused.value)
