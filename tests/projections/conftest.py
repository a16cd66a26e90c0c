"""A demo ledger per backend, shared by a module's tests (loading it takes seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from domain.demo import demo_clock, load_demo
from domain.ledger import Ledger
from projections import build_views
from projections.runner import Runner
from projections.view import View
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


V = TypeVar("V", bound=View)


def every_case_redone(view: type[V]) -> type[V]:
    """The view deriving a case from its whole history at every event: the reference that the view
    followed live, in any batches, must equal."""
    return type(f"EveryCaseRedone{view.__name__}", (view,), {"_out_of_order": staticmethod(lambda *_: True)})


@contextmanager
def followed_event_by_event(world: World, view: View) -> Iterator[Runner]:
    """The view followed one event per batch, in the ledger's own database."""
    runner = Runner(world.ledger, [view], batch=1)
    try:
        yield runner
    finally:
        runner.close()
