"""Fixtures of the storage tests: a second ledger on the world's store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from domain.clock import ManualClock
from domain.ledger import Ledger
from tests.support import World


@pytest.fixture
def other(world: World, database_url: str, clock: ManualClock) -> Iterator[Ledger]:
    """Ledger B: another instance on the world ledger's database (a thread, process or replica)."""
    with Ledger(database_url, clock=clock) as app:
        yield app
