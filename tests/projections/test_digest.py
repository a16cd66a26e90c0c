"""The digest of a view depends on the log alone: the same log gives the same digest on either backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.demo import demo_clock, load_demo
from domain.ledger import Ledger
from projections import build_views
from projections.digest import Digest, digest
from projections.runner import Runner
from tests.conftest import fresh_store


def demo_digests(backend: str, folder: Path) -> dict[str, Digest]:
    """Load the demo on a fresh store of `backend`, follow it with every view, and digest them."""
    with fresh_store(backend, folder) as url:
        clock = demo_clock()
        ledger = Ledger(url, clock=clock)
        try:
            load_demo(ledger, clock)
            runner = Runner(ledger, build_views(ledger))
            runner.catch_up()
            found = {view.name: digest(runner.connection, view) for view in runner.views}
            runner.close()
            return found
        finally:
            ledger.close()


@pytest.mark.postgres
def test_the_demo_gives_the_same_digest_of_every_view_on_sqlite_and_postgres(tmp_path: Path) -> None:
    on_sqlite = demo_digests("sqlite", tmp_path)
    on_postgres = demo_digests("postgres", tmp_path)
    assert on_postgres == on_sqlite
    assert all(found.rows > 0 for found in on_sqlite.values())
