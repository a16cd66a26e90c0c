"""The human event catalogue is generated from the event classes and never goes stale."""

from __future__ import annotations

from pathlib import Path

from domain.catalogue import AGGREGATES, event_classes, render

CATALOGUE = Path(__file__).parents[2] / "docs" / "events.md"


def test_the_committed_catalogue_matches_the_code() -> None:
    assert CATALOGUE.read_text(encoding="utf-8") == render(), (
        "docs/events.md is stale: run `python -m domain.catalogue > docs/events.md`"
    )


def test_every_event_class_has_a_one_line_docstring() -> None:
    for aggregate in AGGREGATES:
        for event in event_classes(aggregate):
            assert event.__doc__, f"{event.__qualname__} needs a docstring: it becomes the catalogue entry"
            assert event.__doc__.strip().splitlines()[0].endswith((".", ")", "…")), event.__qualname__
