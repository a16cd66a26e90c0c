"""Stored topics are permanent contracts: this list pins every one of them.

A stored event names its class by topic. Renaming or moving a class must not orphan
rows already in the store, so each aggregate and event declares an explicit TOPIC.
If this test fails because a topic changed, the change breaks every existing ledger:
keep the old topic (and evolve the payload with class_version and an upcaster).
Adding an event type means adding its topic here, deliberately.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from eventsourcing.utils import get_topic, resolve_topic

import domain
from domain.aggregate import LedgerAggregate
from domain.events import LedgerEvent

PINNED_TOPICS = {
    "dutyledger:Case",
    "dutyledger:Case.Registered",
    "dutyledger:Case.Forwarded",
    "dutyledger:Case.Assigned",
    "dutyledger:Case.AssignmentObjected",
    "dutyledger:Case.Accepted",
    "dutyledger:Case.Declined",
    "dutyledger:Case.OwningLeaderAppointed",
    "dutyledger:Case.ResponsibilityAssigned",
    "dutyledger:Case.HandlerAssigned",
    "dutyledger:Case.StudiedAtMeeting",
    "dutyledger:Case.ActionRecorded",
    "dutyledger:Case.HearingHeld",
    "dutyledger:Case.DeadlineExtended",
    "dutyledger:Case.ReplyIssued",
    "dutyledger:Case.SatisfactionRated",
    "dutyledger:Case.ReviewRequested",
    "dutyledger:Case.ReviewDecided",
    "dutyledger:Case.Closed",
    "dutyledger:Case.PetitionEnded",
    "dutyledger:Case.Reopened",
    "dutyledger:Case.LeapfrogRecorded",
    "dutyledger:Case.SupervisionIssued",
    "dutyledger:Case.SupervisionAnswered",
    "dutyledger:Case.Corrected",
    "dutyledger:Dispute",
    "dutyledger:Dispute.Recorded",
    "dutyledger:Dispute.Mediated",
    "dutyledger:Dispute.Resolved",
    "dutyledger:Dispute.Escalated",
    "dutyledger:Dispute.Corrected",
    "dutyledger:Inquiry",
    "dutyledger:Inquiry.Opened",
    "dutyledger:Inquiry.FindingRecorded",
    "dutyledger:Inquiry.SanctionRecorded",
    "dutyledger:Inquiry.Closed",
    "dutyledger:Inquiry.Corrected",
    "dutyledger:Petitioner",
    "dutyledger:Petitioner.Identified",
    "dutyledger:Petitioner.IdentityAccessed",
    "dutyledger:Petitioner.IdentityErased",
    "dutyledger:Petitioner.Corrected",
    "dutyledger:Cadre",
    "dutyledger:Cadre.Registered",
    "dutyledger:Cadre.Transferred",
    "dutyledger:Cadre.RolesChanged",
    "dutyledger:Cadre.Retired",
    "dutyledger:Cadre.Corrected",
    "dutyledger:Unit",
    "dutyledger:Unit.Registered",
    "dutyledger:Unit.Renamed",
    "dutyledger:Unit.HeadAppointed",
    "dutyledger:Unit.HeadVacated",
    "dutyledger:Unit.Corrected",
    "dutyledger:Credential",
    "dutyledger:Credential.Issued",
    "dutyledger:Credential.Revoked",
    "dutyledger:Credential.Corrected",
    "dutyledger:RuleBook",
    "dutyledger:RuleBook.Opened",
    "dutyledger:RuleBook.RuleSetPublished",
    "dutyledger:RuleBook.HolidaysPublished",
    "dutyledger:RuleBook.Corrected",
    "dutyledger:Meeting",
    "dutyledger:Meeting.Convened",
    "dutyledger:Meeting.CaseStudied",
    "dutyledger:Meeting.Concluded",
    "dutyledger:Meeting.Corrected",
}


def _import_all_of_domain() -> None:
    for module in pkgutil.walk_packages(domain.__path__, f"{domain.__name__}."):
        importlib.import_module(module.name)


def aggregate_classes() -> list[type[LedgerAggregate]]:
    """Every LedgerAggregate subclass defined under `domain` (test doubles elsewhere are ignored)."""
    _import_all_of_domain()
    found: list[type[LedgerAggregate]] = []
    stack: list[type[LedgerAggregate]] = [LedgerAggregate]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith(f"{domain.__name__}.") and sub not in found:
                found.append(sub)
    return found


def event_classes(aggregate: type[LedgerAggregate]) -> list[type[LedgerEvent]]:
    """The event classes nested in an aggregate, bar its `Event` base."""
    return [
        value
        for name, value in vars(aggregate).items()
        if isinstance(value, type) and issubclass(value, LedgerEvent) and name != "Event"
    ]


def stored_classes() -> list[type]:
    classes: list[type] = []
    for aggregate in aggregate_classes():
        classes.append(aggregate)
        classes.extend(event_classes(aggregate))
    return classes


def test_the_stored_topics_are_exactly_the_pinned_list() -> None:
    actual = {get_topic(cls) for cls in stored_classes()}
    assert sorted(actual - PINNED_TOPICS) == [], "new or renamed topics: pin them here, deliberately"
    assert sorted(PINNED_TOPICS - actual) == [], "pinned topics vanished: stored rows would be orphaned"


def test_no_two_classes_share_a_topic() -> None:
    topics = [get_topic(cls) for cls in stored_classes()]
    assert len(topics) == len(set(topics))


@pytest.mark.parametrize("cls", stored_classes(), ids=lambda cls: cls.__qualname__)
def test_each_class_declares_its_own_explicit_topic(cls: type) -> None:
    """Not inherited and not derived from the module path, which would change if the class moved."""
    own = vars(cls).get("TOPIC")
    assert isinstance(own, str)
    assert own == get_topic(cls)
    assert own.startswith("dutyledger:")
    assert cls.__module__ not in own


@pytest.mark.parametrize("topic", sorted(PINNED_TOPICS))
def test_each_pinned_topic_resolves_to_its_class(topic: str) -> None:
    _import_all_of_domain()
    resolved = resolve_topic(topic)
    assert isinstance(resolved, type)
    assert get_topic(resolved) == topic
    assert resolved in stored_classes()
    aggregate_name, _, event_name = topic.removeprefix("dutyledger:").partition(".")
    assert resolved.__qualname__ == (f"{aggregate_name}.{event_name}" if event_name else aggregate_name)


def test_every_aggregate_event_uses_the_aggregates_own_event_base() -> None:
    """So each event mutates its own aggregate type, and pinning one aggregate pins all its events."""
    for aggregate in aggregate_classes():
        for event in event_classes(aggregate):
            assert issubclass(event, vars(aggregate)["Event"]), event.__qualname__
