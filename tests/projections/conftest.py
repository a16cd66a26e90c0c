"""A demo ledger per backend, shared by a module's tests (loading it takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.demo import demo_clock, load_demo
from domain.ledger import Ledger
from tests.conftest import fresh_store

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """The demo ledger (seed 7) on a fresh store; its views are not built yet."""
    with fresh_store(request.param, tmp_path_factory.mktemp("demo")) as url:
        clock = demo_clock()
        ledger = Ledger(url, clock=clock)
        load_demo(ledger, clock)
        yield ledger
        ledger.close()
