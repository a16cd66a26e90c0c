"""A demo ledger per backend, shared by a module's tests (loading it takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.demo import demo_clock, load_demo
from domain.ledger import Ledger
from projections import build_views
from projections.runner import Runner
from tests.conftest import fresh_store
from tests.support import World

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


@pytest.fixture
def views(world: World) -> Iterator[Runner]:
    """Every view, followed by a runner over the test world's ledger (caught up when asked)."""
    runner = Runner(world.ledger, build_views(world.ledger))
    yield runner
    runner.close()
