"""The outcome of a case: reply, satisfaction, review, finality, reopening, closure, ending."""

from datetime import date
from typing import Any
from uuid import UUID

import pytest

from domain.case import Case, CaseStatus, ReviewStage
from domain.errors import InvalidTransition, LedgerError, MatterFinal, NotAllowed, OutsideWindow, RoleRequired
from domain.rules import Period, RuleName, RuleRef
from domain.rules.defaults import packaged_rule_sets
from domain.values import ClosureKind, ReplyOutcome, ReviewLevel, ReviewOutcome, Satisfaction
from tests.support import World

FIRST, SECOND = ReviewLevel.FIRST, ReviewLevel.SECOND
UPHELD = ReviewOutcome.UPHELD


def refused(world: World, error: type[LedgerError], command: str, case_id: UUID, **arguments: Any) -> Any:
    """Run `command` on the case as `by` (default: the township clerk); it must fail with exactly `error`."""
    by = arguments.pop("by", world.township_clerk)
    return world.refuse(error, by, command, case_id=case_id, **arguments)


def request(world: World, case_id: UUID, level: ReviewLevel) -> None:
    world.do(world.township_clerk, "request_review", case_id=case_id, level=level)


def decide(
    world: World, case_id: UUID, level: ReviewLevel, outcome: ReviewOutcome = ReviewOutcome.UPHELD
) -> None:
    reviewer = world.county_head if level is FIRST else world.city_leader
    world.do(reviewer, "decide_review", case_id=case_id, level=level, outcome=outcome)


def first_review_decided(world: World, outcome: ReviewOutcome = ReviewOutcome.UPHELD) -> UUID:
    """Replied Thursday 5 March, first review requested 6 March and decided Monday 16 March."""
    case_id = world.replied()
    world.advance(days=1)
    request(world, case_id, FIRST)
    world.advance(days=10)
    decide(world, case_id, FIRST, outcome)
    return case_id


# --- reply and closure ------------------------------------------------------------------------


def test_no_reply_before_acceptance(world: World) -> None:
    case_id = world.register()
    refused(world, InvalidTransition, "issue_reply", case_id, outcome=ReplyOutcome.SUPPORT)


def test_a_reply_opens_the_first_review_window(world: World) -> None:
    case_id = world.replied(outcome=ReplyOutcome.NOT_SUPPORT)
    case = world.case(case_id)
    assert (case.status, case.reply_outcome, case.reply_no) == (
        CaseStatus.REPLIED,
        ReplyOutcome.NOT_SUPPORT,
        1,
    )
    # replied Thursday 5 March + 30 days = Saturday 4 April, Qingming: the window runs to Tuesday 7 April
    assert case.review_request_until == date(2026, 4, 7)
    event = world.events(case_id)[-1]
    assert type(event) is Case.ReplyIssued
    assert event.review_request_until == date(2026, 4, 7)


def test_no_closure_before_a_reply(world: World) -> None:
    case_id = world.accepted()
    refused(world, InvalidTransition, "close_case", case_id, closure=ClosureKind.PROCEDURAL)


def test_a_case_is_closed_once(world: World) -> None:
    case_id = world.replied()
    world.do(world.township_clerk, "close_case", case_id=case_id, closure=ClosureKind.SUBSTANTIVE)
    assert world.case(case_id).closure is ClosureKind.SUBSTANTIVE
    refused(world, InvalidTransition, "close_case", case_id, closure=ClosureKind.SUBSTANTIVE)


def test_a_case_under_review_cannot_be_closed(world: World) -> None:
    case_id = world.replied()
    request(world, case_id, FIRST)
    refused(world, InvalidTransition, "close_case", case_id, closure=ClosureKind.PROCEDURAL)


# --- satisfaction and ending ------------------------------------------------------------------


def test_satisfaction_is_rated_once_per_reply(world: World) -> None:
    case_id = world.replied()
    world.do(
        world.township_clerk, "rate_satisfaction", case_id=case_id, rating=Satisfaction.BASICALLY_SATISFIED
    )
    assert world.case(case_id).rating is Satisfaction.BASICALLY_SATISFIED
    rated = world.events(case_id)[-1]
    assert type(rated) is Case.SatisfactionRated
    assert (rated.rating, rated.reply_no) == (Satisfaction.BASICALLY_SATISFIED, 1)
    refused(world, InvalidTransition, "rate_satisfaction", case_id, rating=Satisfaction.UNSATISFIED)


def test_each_new_reply_can_be_rated_again(world: World) -> None:
    case_id = world.replied()
    world.do(world.township_clerk, "rate_satisfaction", case_id=case_id, rating=Satisfaction.UNSATISFIED)
    world.advance(days=1)
    request(world, case_id, FIRST)
    world.advance(days=1)
    decide(world, case_id, FIRST, ReviewOutcome.OVERTURNED)
    world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
    world.do(world.township_clerk, "rate_satisfaction", case_id=case_id, rating=Satisfaction.SATISFIED)
    ratings = [(e.reply_no, e.rating) for e in world.events(case_id) if type(e) is Case.SatisfactionRated]
    assert ratings == [(1, Satisfaction.UNSATISFIED), (2, Satisfaction.SATISFIED)]


def test_satisfaction_cannot_be_rated_before_a_reply(world: World) -> None:
    refused(world, InvalidTransition, "rate_satisfaction", world.accepted(), rating=Satisfaction.SATISFIED)


def test_a_petition_ends_once(world: World) -> None:
    case_id = world.replied()
    world.do(world.township_clerk, "end_petition", narrative="the petitioner withdrew", case_id=case_id)
    assert world.case(case_id).ended
    refused(world, InvalidTransition, "end_petition", case_id)


def test_a_petition_cannot_end_before_a_reply(world: World) -> None:
    refused(world, InvalidTransition, "end_petition", world.accepted())


# --- review windows and order ---------------------------------------------------------------


def test_a_first_review_may_be_requested_on_the_last_day_of_its_window(world: World) -> None:
    case_id = world.replied()
    world.advance_to(date(2026, 4, 7), hour=17)
    request(world, case_id, FIRST)
    case = world.case(case_id)
    assert case.review_stage is ReviewStage.FIRST_REQUESTED
    assert case.review_answer_due == date(2026, 5, 7)  # 7 April + 30 days
    assert case.review_request_until is None


def test_a_first_review_requested_after_its_window_is_refused(world: World) -> None:
    case_id = world.replied()
    world.advance_to(date(2026, 4, 8), hour=9)
    refused(world, OutsideWindow, "request_review", case_id, level=FIRST)


def test_a_second_review_may_be_requested_within_thirty_days_of_the_first_decision(world: World) -> None:
    case_id = first_review_decided(world)
    assert world.case(case_id).review_request_until == date(2026, 4, 15)  # decided Monday 16 March
    world.advance_to(date(2026, 4, 15), hour=17)
    request(world, case_id, SECOND)
    assert world.case(case_id).review_stage is ReviewStage.SECOND_REQUESTED


def test_a_second_review_requested_after_its_window_is_refused(world: World) -> None:
    case_id = first_review_decided(world)
    world.advance_to(date(2026, 4, 16), hour=9)
    refused(world, OutsideWindow, "request_review", case_id, level=SECOND)


def test_a_second_review_before_the_first_is_refused(world: World) -> None:
    refused(world, InvalidTransition, "request_review", world.replied(), level=SECOND)


@pytest.mark.parametrize("level", [FIRST, SECOND])
def test_only_one_review_is_pending_at_a_time(world: World, level: ReviewLevel) -> None:
    case_id = world.replied()
    request(world, case_id, FIRST)
    refused(world, InvalidTransition, "request_review", case_id, level=level)


def test_no_review_can_be_requested_before_a_reply(world: World) -> None:
    refused(world, InvalidTransition, "request_review", world.accepted(), level=FIRST)


# --- deciding reviews --------------------------------------------------------------------------


def test_the_county_decides_a_first_review_and_the_city_the_second(world: World) -> None:
    case_id = first_review_decided(world)
    world.advance(days=1)
    request(world, case_id, SECOND)
    decide(world, case_id, SECOND)
    case = world.case(case_id)
    assert case.reviewing_unit_ids == [world.county, world.city]
    decisions = [
        (e.level, e.reviewing_unit_id) for e in world.events(case_id) if type(e) is Case.ReviewDecided
    ]
    assert decisions == [(FIRST, world.county), (SECOND, world.city)]


@pytest.mark.parametrize("actor", ["township_head", "township_leader"])
def test_a_cadre_of_the_township_cannot_decide_its_first_review(world: World, actor: str) -> None:
    case_id = world.replied()
    request(world, case_id, FIRST)
    refused(
        world, NotAllowed, "decide_review", case_id, level=FIRST, outcome=UPHELD, by=getattr(world, actor)
    )


def test_the_body_that_decided_the_first_review_cannot_decide_the_second(world: World) -> None:
    case_id = first_review_decided(world)
    world.advance(days=1)
    request(world, case_id, SECOND)
    refused(world, NotAllowed, "decide_review", case_id, level=SECOND, outcome=UPHELD, by=world.county_head)


@pytest.mark.parametrize("level", [FIRST, SECOND])
def test_a_review_cannot_be_decided_when_none_is_pending(world: World, level: ReviewLevel) -> None:
    case_id, by = world.replied(), world.city_leader
    refused(world, InvalidTransition, "decide_review", case_id, level=level, outcome=UPHELD, by=by)


def test_an_overturned_first_review_sends_the_case_back_with_a_new_reply_due(world: World) -> None:
    case_id = first_review_decided(world, ReviewOutcome.OVERTURNED)
    case = world.case(case_id)
    assert case.status is CaseStatus.ACCEPTED
    assert case.reply_due == date(2026, 5, 15)  # decided 16 March + 60 days
    assert not case.extended
    assert case.review_request_until is None
    world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.EXPLAIN)
    assert world.case(case_id).reply_no == 2


def test_after_the_second_review_the_matter_is_final(world: World) -> None:
    case_id = world.finally_decided()
    case = world.case(case_id)
    assert case.is_final
    assert case.review_stage is ReviewStage.SECOND_DECIDED
    for level in (FIRST, SECOND):
        refused(world, MatterFinal, "request_review", case_id, level=level)


# --- reopening by re-examination ---------------------------------------------------------------


@pytest.mark.parametrize("actor", ["township_head", "city_bureau_head", "county_head"])
def test_only_a_reexaminer_may_reopen_a_case(world: World, actor: str) -> None:
    refused(world, RoleRequired, "reopen_case", world.finally_decided(), by=getattr(world, actor))


def test_reopening_a_final_case_resets_its_review_and_sets_a_new_reply_due(world: World) -> None:
    case_id = world.finally_decided()
    world.advance_to(date(2026, 3, 20))
    world.do(world.reexaminer, "reopen_case", narrative="回头看: facts not established", case_id=case_id)
    case = world.case(case_id)
    assert (case.status, case.review_stage, case.reopen_count) == (CaseStatus.ACCEPTED, ReviewStage.NONE, 1)
    assert not case.is_final
    assert case.reply_due == date(2026, 5, 19)  # 20 March + 60 days
    world.do(world.township_clerk, "issue_reply", case_id=case_id, outcome=ReplyOutcome.SUPPORT)
    request(world, case_id, FIRST)
    assert world.case(case_id).review_stage is ReviewStage.FIRST_REQUESTED


def test_reopening_uses_the_rules_in_force_at_that_time(world: World) -> None:
    case_id = world.replied()
    national = next(r for r in packaged_rule_sets() if r.jurisdiction == "CN")
    periods = {**national.periods, RuleName.REPLY: Period(days=45)}
    revised = national.model_copy(update={"version": 2, "effective_from": world.today(), "periods": periods})
    world.do(world.admin, "publish_rule_set", rule_set=revised)
    world.do(world.reexaminer, "reopen_case", case_id=case_id)
    reopened = world.events(case_id)[-1]
    assert type(reopened) is Case.Reopened
    assert reopened.rules == RuleRef(jurisdiction="CN", version=2)
    assert reopened.reply_due == date(2026, 4, 20)  # 5 March + 45 days = Sunday 19 April, rolled to Monday
    assert world.case(case_id).rules == RuleRef(jurisdiction="CN", version=2)


def test_an_open_case_cannot_be_reopened(world: World) -> None:
    refused(world, InvalidTransition, "reopen_case", world.accepted(), by=world.reexaminer)
