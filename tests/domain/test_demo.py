"""The demo data set: deterministic, realistic, and covering every lifecycle path."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from domain.case import Case, CaseStatus, ReviewStage
from domain.demo import DemoReport, demo_clock, load_demo
from domain.demo.cases import PATHS
from domain.ledger import Ledger


def load(path: Path) -> tuple[Ledger, DemoReport]:
    clock = demo_clock()
    ledger = Ledger(f"sqlite:///{path}", clock=clock)
    return ledger, load_demo(ledger, clock)


def digest(ledger: Ledger, *, with_timestamps: bool) -> str:
    """A hash of every stored event; without timestamps, the record time is left out."""
    hashed = hashlib.sha256()
    for notification in ledger.recorder.select_notifications(start=1, limit=10**7):
        event = ledger.mapper.to_domain_event(notification)
        payload = event.model_dump(mode="json", exclude=set() if with_timestamps else {"timestamp"})  # type: ignore[attr-defined]
        hashed.update(f"{notification.id}|{notification.topic}|{payload}".encode())
    return hashed.hexdigest()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ledger, DemoReport]:
    return load(tmp_path_factory.mktemp("demo") / "ledger.sqlite")


def test_the_demo_twice_from_scratch_gives_identical_events(
    demo: tuple[Ledger, DemoReport], tmp_path: Path
) -> None:
    again, _ = load(tmp_path / "again.sqlite")
    assert digest(again, with_timestamps=False) == digest(demo[0], with_timestamps=False)
    assert digest(again, with_timestamps=True) == digest(demo[0], with_timestamps=True)


def test_the_demo_is_as_large_as_promised(demo: tuple[Ledger, DemoReport]) -> None:
    _, report = demo
    assert len(report.cases) >= 300
    assert report.cadres >= 40
    assert report.meetings > 0
    assert report.disputes > 0
    assert report.inquiries > 0


def test_the_demo_walks_every_lifecycle_path(demo: tuple[Ledger, DemoReport]) -> None:
    _, report = demo
    assert set(report.paths) == set(PATHS)


def test_the_demo_holds_breaches_reopenings_reviews_and_finality(demo: tuple[Ledger, DemoReport]) -> None:
    ledger, _ = demo
    names: Counter[str] = Counter()
    statuses: Counter[CaseStatus] = Counter()
    final = 0
    for notification in ledger.recorder.select_notifications(start=1, limit=10**7):
        names[notification.topic.removeprefix("dutyledger:")] += 1
    for notification in ledger.recorder.select_notifications(
        start=1, limit=10**7, topics=[Case.Registered.TOPIC]
    ):
        case = ledger.repository.get(notification.originator_id)
        statuses[case.status] += 1
        final += case.review_stage is ReviewStage.SECOND_DECIDED
    for topic in (
        "Case.Reopened", "Case.ReviewDecided", "Case.DeadlineExtended", "Case.LeapfrogRecorded",
        "Case.SupervisionAnswered", "Case.AssignmentObjected", "Case.Corrected", "Case.HearingHeld",
        "Meeting.CaseStudied", "Dispute.Escalated", "Inquiry.SanctionRecorded", "Cadre.Transferred",
    ):  # fmt: skip
        assert names[topic] > 0, topic
    assert final > 0
    assert {CaseStatus.CLOSED, CaseStatus.ACCEPTED, CaseStatus.DECLINED, CaseStatus.REGISTERED} <= set(
        statuses
    )
