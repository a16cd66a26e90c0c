"""A random walk through the case commands, on both backends, checking the ledger after every step.

Hypothesis drives random sequences of case commands, by random cadres of the test world
(outsiders, accused cadres and unit heads among them), at random business times, with
the clock moving forward by hours or weeks, against a few cases at once. Every command
must either succeed or be refused with a `LedgerError`; anything else fails. After every
step:

1. replay = live: each case as a fresh `Ledger` on the same store rebuilds it from its
   stored events (and as that ledger's following cache serves it) equals the case the
   writing ledger serves from its cache;
2. the stored history of each case obeys the rules of petition work (see `check_history`);
3. a refused command wrote nothing: the notification log did not move and no command
   record was kept.

Random commands by random cadres rarely get a case past acceptance, so "by the book"
steps also take the natural next step of a case, by a cadre placed to take it, into
replies, reviews, finality and reopening.

The world is costly to build, so each backend builds it once per test and every example
registers its own new cases in it; the ManualClock only goes forward, which suits it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from domain.aggregate import LedgerAggregate
from domain.case import Case, CaseStatus, Intake, ReviewStage
from domain.clock import ManualClock
from domain.errors import LedgerError
from domain.ledger import CommandResult, Ledger
from domain.registry import Unit
from domain.rules.book import RuleBook
from domain.rules.model import RuleName, RuleRef
from domain.values import (
    ActionKind,
    BureauLevel,
    Campaign,
    Channel,
    ClosureKind,
    DeclineReason,
    KeyArea,
    ReplyOutcome,
    ReviewLevel,
    ReviewOutcome,
    Satisfaction,
    Source,
)
from projections import build_views
from projections.digest import Digest, digest
from projections.rebuild import rebuild_together
from projections.runner import Runner
from projections.store import ViewStore
from projections.views.cadre_accountability import CadreAccountabilityView
from tests.conftest import POSTGRES_URL, START, require_postgres
from tests.projections.replay import assert_case_views_equal_replay
from tests.support import World, build_world

SETTINGS = settings(
    max_examples=40,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    report_multiple_bugs=False,
)
LOCAL = ZoneInfo("Asia/Shanghai")
"""The time zone of every rule set in the test world (review windows are local dates)."""

CADRES = (
    "admin",
    "city_head",
    "city_leader",
    "city_clerk",
    "city_bureau_head",
    "reexaminer",
    "inspector",
    "county_head",
    "county_leader",
    "county_clerk",
    "dept_clerk",
    "township_head",
    "township_leader",
    "township_clerk",
    "handler",
    "village_head",
    "outsider",
    "henan_head",
    "henan_clerk",
)
UNITS = (
    "city",
    "city_bureau",
    "discipline",
    "county",
    "county_bureau",
    "county_dept",
    "township",
    "village",
    "other_township",
    "henan_county",
    "henan_township",
)
HEADS = ("city_head", "city_bureau_head", "county_head", "township_head", "village_head", "henan_head")
TOWNSHIP = ("township_head", "township_leader", "township_clerk", "handler")
ABOVE = ("county_head", "county_leader", "county_clerk", "city_clerk", "city_bureau_head", "city_head")
LEADERS = ("city_leader", "reexaminer", "county_leader", "township_leader", *HEADS)

anyone = st.sampled_from(CADRES)
township_cadre = st.sampled_from(TOWNSHIP) | anyone
head = st.sampled_from(HEADS) | anyone
reviewer = st.sampled_from(ABOVE) | anyone
reexaminer = st.just("reexaminer") | anyone
appointee = st.sampled_from(TOWNSHIP) | st.sampled_from(LEADERS) | anyone
unit = st.sampled_from(UNITS)
# Business time, in seconds before the ledger's clock: mostly now, sometimes backdated,
# sometimes (negative) ahead of it: within the clock skew the ledger tolerates, or beyond it.
back = st.sampled_from([0] * 12 + [60, 1800, 6 * 3600, 3 * 86400, 20 * 86400, -3, -7200])
wait = st.one_of(
    st.integers(1, 23).map(lambda h: timedelta(hours=h)),
    st.integers(1, 40).map(lambda d: timedelta(days=d)),
)
step_wait = st.sampled_from([timedelta(0)] * 6 + [timedelta(hours=2), timedelta(days=2), timedelta(days=31)])
intakes = st.builds(
    Intake,
    channel=st.sampled_from(Channel),
    category=st.just("land_compensation"),
    campaign=st.just(Campaign()) | st.builds(Campaign, key_area=st.sampled_from(KeyArea)),
    headcount=st.integers(1, 3),
)


@dataclass
class Setting:
    """The world one backend's machine runs in, and facts about it the checks need."""

    world: World
    reader: Ledger
    """A second ledger on the same store: it only ever reads what the first one wrote."""
    unit_of: dict[UUID, UUID]
    """Each cadre's unit (nobody is transferred in this world)."""
    names: dict[UUID, str]
    extension_max: dict[RuleRef, int]
    units: dict[UUID, Unit]
    scope_of: dict[str, UUID]
    """Each cadre's territory (by cadre name)."""
    views: Runner
    """Keeps the projections up to date; they must equal the replay too."""

    def serving_in(self, unit_id: UUID) -> str:
        """A cadre of `unit_id`, or failing that the nearest cadre whose territory covers it."""
        for key in CADRES:
            if key != "admin" and self.unit_of[self.world.cadres[key]] == unit_id:
                return key
        return self.above(unit_id, inclusive=True)

    def above(self, unit_id: UUID, *, inclusive: bool = False) -> str:
        """A cadre of the nearest territory above `unit_id` (a reviewing body), else the city head."""
        path = self.units[unit_id].path if inclusive else self.units[unit_id].ancestors
        for territory in reversed(path):
            for key in ABOVE + CADRES:
                if key != "admin" and self.scope_of[key] == territory:
                    return key
        return "city_head"

    def head_of(self, unit_id: UUID) -> str:
        head_id = self.units[unit_id].head_id
        return self.names[head_id] if head_id else self.serving_in(unit_id)

    @property
    def ledger(self) -> Ledger:
        return self.world.ledger


@contextmanager
def setting_on(database_url: str) -> Iterator[Setting]:
    clock = ManualClock(START)
    ledger = Ledger(database_url, clock=clock)
    reader: Ledger | None = None
    views: Runner | None = None
    try:
        world = build_world(ledger, clock)
        reader = Ledger(database_url, clock=clock)
        cadres = {world.cadres[key]: ledger.repository.get(world.cadres[key]) for key in CADRES}
        units: dict[UUID, Unit] = {
            unit_id: ledger.repository.get(unit_id) for unit_id in world.units.values()
        }
        book: RuleBook = ledger.repository.get(RuleBook.ID)
        unit_of = {cadre_id: cadre.posting.unit_id for cadre_id, cadre in cadres.items()}
        views = Runner(ledger, build_views(ledger))
        yield Setting(
            world=world,
            reader=reader,
            unit_of=unit_of,
            names={**{v: k for k, v in world.units.items()}, **{v: k for k, v in world.cadres.items()}},
            extension_max={
                rule_set.ref: rule_set.period(RuleName.EXTENSION).days
                for versions in book.rule_sets.values()
                for rule_set in versions
            },
            units=units,
            scope_of={key: units[unit_of[world.cadres[key]]].scope_id for key in CADRES},
            views=views,
        )
    finally:
        if views is not None:
            views.close()
        if reader is not None:
            reader.close()
        ledger.close()


def public_state(aggregate: LedgerAggregate) -> dict[str, Any]:
    return {k: v for k, v in aggregate.__dict__.items() if k != "_pending_events"}


def differences(live: dict[str, Any], replayed: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}: live {live.get(k)!r} vs replayed {replayed.get(k)!r}"
        for k in sorted(live.keys() | replayed.keys())
        if live.get(k) != replayed.get(k)
    )


class CaseMachine(RuleBasedStateMachine):
    """Random case commands by random cadres; the checks are the invariants below."""

    setting: ClassVar[Setting]
    cases = Bundle("cases")

    def __init__(self) -> None:
        super().__init__()
        self.world = self.setting.world
        self.ledger = self.setting.ledger
        self.case_ids: list[UUID] = []
        self.checked_up_to = self.ledger.recorder.max_notification_id() or 0
        self.replayed: dict[UUID, dict[str, Any]] = {}
        """Each case as last rebuilt from its stored events (valid while none are added)."""

    # --- running a command ------------------------------------------------------------

    def run(self, actor: str, command: str, back: int = 0, **kwargs: Any) -> CommandResult | None:
        """Run `command` as the cadre named `actor`; None when it was refused (and wrote nothing)."""
        log = self.ledger.recorder
        before = log.max_notification_id() or 0
        options: dict[str, Any] = {"command_id": f"machine-{uuid4()}"}
        if back:
            options["occurred_at"] = self.world.clock.now() - timedelta(seconds=back)
        result: CommandResult | None = None
        refusal: LedgerError | None = None
        try:
            result = self.world.do(self.world.cadres[actor], command, ctx_options=options, **kwargs)
        except LedgerError as error:
            refusal = error
        after = log.max_notification_id() or 0
        if result is None:
            note(f"  {command} by {actor} refused: {type(refusal).__name__}: {refusal}")
            assert after == before, (
                f"{command} by {actor} was refused ({type(refusal).__name__}: {refusal}) "
                f"but the log moved from {before} to {after}"
            )
            assert self.ledger.command_log.select_command(options["command_id"]) is None, (
                f"{command} by {actor} was refused but its command record was kept"
            )
            return None
        note(f"  {command} by {actor} -> version {result.version}")
        positions = f"{command} answered positions {result.positions}; the log went from {before} to {after}"
        assert before < min(result.positions), positions
        assert max(result.positions) == result.position == after, positions
        return result

    def case_run(self, case_id: UUID, actor: str, command: str, back: int, **kwargs: Any) -> None:
        result = self.run(actor, command, back, case_id=case_id, **kwargs)
        if result is not None:
            assert result.aggregate_id == case_id

    # --- intake -----------------------------------------------------------------------

    @initialize(target=cases, intake=intakes)
    def first_case(self, intake: Intake) -> Any:
        result = self.run("township_clerk", "register_case", intake=intake, petitioner_id=uuid4())
        assert result is not None, "the township clerk could not register a plain petition"
        self.case_ids.append(result.aggregate_id)
        return result.aggregate_id

    @rule(
        target=cases,
        actor=township_cadre,
        intake=intakes,
        assigned_by=st.none() | st.sampled_from(BureauLevel),
        due_in=st.none() | st.integers(-5, 90),
        accused=st.just(frozenset()) | st.frozensets(anyone, max_size=3),
        accused_units=st.just(frozenset()) | st.frozensets(unit, max_size=2),
        repeat=st.none() | st.integers(0, 10),
        back=back,
    )
    def register(
        self,
        actor: str,
        intake: Intake,
        assigned_by: BureauLevel | None,
        due_in: int | None,
        accused: frozenset[str],
        accused_units: frozenset[str],
        repeat: int | None,
        back: int,
    ) -> Any:
        if len(self.case_ids) >= 4:
            return multiple()
        today = self.world.clock.now().astimezone(LOCAL).date()
        source = Source(
            assigned_by=assigned_by,
            due=None if due_in is None else today + timedelta(days=due_in),
        )
        result = self.run(
            actor,
            "register_case",
            back,
            intake=intake.model_copy(update={"source": source}),
            petitioner_id=uuid4(),
            accused_cadre_ids=frozenset(self.world.cadres[c] for c in accused),
            accused_unit_ids=frozenset(self.world.units[u] for u in accused_units),
            repeat_of=None if repeat is None else self.case_ids[repeat % len(self.case_ids)],
        )
        if result is None:
            return multiple()
        self.case_ids.append(result.aggregate_id)
        return result.aggregate_id

    @rule(case=cases, actor=anyone, to=unit, back=back)
    def forward(self, case: UUID, actor: str, to: str, back: int) -> None:
        self.case_run(case, actor, "forward_case", back, to_unit_id=self.world.units[to])

    @rule(case=cases, actor=anyone, to=unit, due_in=st.none() | st.integers(-3, 60), back=back)
    def assign(self, case: UUID, actor: str, to: str, due_in: int | None, back: int) -> None:
        today = self.world.clock.now().astimezone(LOCAL).date()
        due = None if due_in is None else today + timedelta(days=due_in)
        self.case_run(case, actor, "assign_case", back, to_unit_id=self.world.units[to], due=due)

    @rule(case=cases, actor=anyone, back=back)
    def object_to_assignment(self, case: UUID, actor: str, back: int) -> None:
        self.case_run(case, actor, "object_to_assignment", back)

    @rule(case=cases, actor=township_cadre, back=back)
    def accept(self, case: UUID, actor: str, back: int) -> None:
        self.case_run(case, actor, "accept_case", back)

    @rule(case=cases, actor=township_cadre, reason=st.sampled_from(DeclineReason), back=back)
    def decline(self, case: UUID, actor: str, reason: DeclineReason, back: int) -> None:
        self.case_run(case, actor, "decline_case", back, reason=reason)

    # --- responsibility -----------------------------------------------------------------

    @rule(case=cases, actor=township_cadre, leader=appointee, back=back)
    def appoint_owning_leader(self, case: UUID, actor: str, leader: str, back: int) -> None:
        self.case_run(case, actor, "appoint_owning_leader", back, leader_id=self.world.cadres[leader])

    @rule(case=cases, actor=township_cadre, handler=appointee, back=back)
    def assign_handler(self, case: UUID, actor: str, handler: str, back: int) -> None:
        self.case_run(case, actor, "assign_handler", back, handler_id=self.world.cadres[handler])

    @rule(case=cases, actor=township_cadre, person=appointee, back=back)
    def assign_responsibility(self, case: UUID, actor: str, person: str, back: int) -> None:
        self.case_run(case, actor, "assign_responsibility", back, cadre_id=self.world.cadres[person])

    # --- handling -----------------------------------------------------------------------

    @rule(
        case=cases,
        actor=township_cadre,
        kind=st.sampled_from([k.value for k in ActionKind]) | st.sampled_from(["phone_call", "Not A Kind"]),
        back=back,
    )
    def record_action(self, case: UUID, actor: str, kind: str, back: int) -> None:
        self.case_run(case, actor, "record_action", back, kind=kind)

    @rule(
        case=cases,
        pick=st.integers(0, 10),
        earlier=st.sampled_from([60, 3600, 3 * 86400, 20 * 86400]),
        kind=st.none() | st.sampled_from([k.value for k in ActionKind]),
        intake=intakes,
    )
    def correct_a_record(self, case: UUID, pick: int, earlier: int, kind: str | None, intake: Intake) -> None:
        """The cadre who recorded one of the case's events corrects it: an earlier date, a kind, an intake."""
        correctable = [
            e
            for e in self.world.events(case)
            if isinstance(e, Case.Registered | Case.ActionRecorded | Case.HearingHeld | Case.LeapfrogRecorded)
        ]
        target = correctable[pick % len(correctable)]
        changes: dict[str, Any]
        if isinstance(target, Case.Registered):
            changes = {"intake": intake.model_dump(mode="json")}
        else:
            changes = {"occurred_at": (target.occurred_at - timedelta(seconds=earlier)).isoformat()}
            if kind is not None and isinstance(target, Case.ActionRecorded):
                changes["kind"] = kind
        recorder = next(name for name, cadre in self.world.cadres.items() if cadre == target.actor_id)
        self.run(
            recorder, "correct_record", aggregate_id=case, corrects=target.originator_version, changes=changes
        )

    @rule(case=cases, actor=township_cadre, days=st.integers(0, 95), back=back)
    def hold_hearing(self, case: UUID, actor: str, days: int, back: int) -> None:
        self.case_run(case, actor, "hold_hearing", back, days=days)

    @rule(case=cases, actor=head, days=st.integers(0, 65), back=back)
    def extend_deadline(self, case: UUID, actor: str, days: int, back: int) -> None:
        self.case_run(case, actor, "extend_deadline", back, days=days)

    @rule(case=cases, actor=township_cadre, outcome=st.sampled_from(ReplyOutcome), back=back)
    def issue_reply(self, case: UUID, actor: str, outcome: ReplyOutcome, back: int) -> None:
        self.case_run(case, actor, "issue_reply", back, outcome=outcome)

    @rule(case=cases, actor=township_cadre, rating=st.sampled_from(Satisfaction), back=back)
    def rate_satisfaction(self, case: UUID, actor: str, rating: Satisfaction, back: int) -> None:
        self.case_run(case, actor, "rate_satisfaction", back, rating=rating)

    # --- review, closure, finality --------------------------------------------------------

    @rule(case=cases, actor=township_cadre, back=back)
    def request_first_review(self, case: UUID, actor: str, back: int) -> None:
        self.case_run(case, actor, "request_review", back, level=ReviewLevel.FIRST)

    @rule(case=cases, actor=township_cadre | reviewer, back=back)
    def request_second_review(self, case: UUID, actor: str, back: int) -> None:
        self.case_run(case, actor, "request_review", back, level=ReviewLevel.SECOND)

    @rule(
        case=cases,
        actor=reviewer,
        level=st.sampled_from(ReviewLevel),
        outcome=st.sampled_from(ReviewOutcome),
        back=back,
    )
    def decide_review(
        self, case: UUID, actor: str, level: ReviewLevel, outcome: ReviewOutcome, back: int
    ) -> None:
        self.case_run(case, actor, "decide_review", back, level=level, outcome=outcome)

    @rule(case=cases, actor=township_cadre, closure=st.sampled_from(ClosureKind), back=back)
    def close_case(self, case: UUID, actor: str, closure: ClosureKind, back: int) -> None:
        self.case_run(case, actor, "close_case", back, closure=closure)

    @rule(case=cases, actor=township_cadre, back=back)
    def end_petition(self, case: UUID, actor: str, back: int) -> None:
        self.case_run(case, actor, "end_petition", back)

    @rule(case=cases, actor=reexaminer, back=back)
    def reopen_case(self, case: UUID, actor: str, back: int) -> None:
        self.case_run(case, actor, "reopen_case", back)

    # --- oversight ------------------------------------------------------------------------

    @rule(case=cases, actor=anyone, level=st.sampled_from(BureauLevel), back=back)
    def record_leapfrog(self, case: UUID, actor: str, level: BureauLevel, back: int) -> None:
        self.case_run(case, actor, "record_leapfrog", back, level=level)

    @rule(case=cases, actor=reviewer, due_in=st.none() | st.integers(-2, 30), back=back)
    def issue_supervision(self, case: UUID, actor: str, due_in: int | None, back: int) -> None:
        today = self.world.clock.now().astimezone(LOCAL).date()
        due = None if due_in is None else today + timedelta(days=due_in)
        self.case_run(case, actor, "issue_supervision", back, due=due)

    @rule(case=cases, actor=township_cadre, order_no=st.integers(0, 3), back=back)
    def answer_supervision(self, case: UUID, actor: str, order_no: int, back: int) -> None:
        self.case_run(case, actor, "answer_supervision", back, order_no=order_no)

    # --- by the book: the next natural step of a case, by a cadre placed to take it ---------
    # Five rules share this step so that Hypothesis picks it often enough to go deep.

    def next_step(self, case_id: UUID, choice: int, variant: int, wait: timedelta, back: int) -> None:
        self.world.clock.advance(wait)
        setting = self.setting
        case = self.ledger.cache.get(case_id)
        assert case.unit_id is not None
        local = setting.serving_in(case.unit_id)
        township = self.world.units["township"]
        steps: list[tuple[str, str, dict[str, Any]]] = []
        status, stage = case.status, case.review_stage
        if status is CaseStatus.REGISTERED:
            steps += [(local, "accept_case", {})] * 3
            if case.assignment is not None and not case.assignment.objected:
                steps.append((local, "object_to_assignment", {}))
            if case.unit_id != township:
                steps.append(("county_clerk", "forward_case", {"to_unit_id": township}))
            else:
                steps.append(("county_clerk", "assign_case", {"to_unit_id": self.world.units["county_dept"]}))
        elif status is CaseStatus.ACCEPTED:
            outcome = list(ReplyOutcome)[variant % 3]
            steps += [(local, "issue_reply", {"outcome": outcome})] * 3
            steps.append((setting.head_of(case.unit_id), "extend_deadline", {"days": 1 + variant * 6}))
            steps.append((local, "hold_hearing", {"days": 1 + variant}))
            steps.append((local, "assign_handler", {"handler_id": self.world.cadres["handler"]}))
        elif status in (CaseStatus.REPLIED, CaseStatus.CLOSED):
            outcome = list(ReviewOutcome)[variant % 3]
            if stage is ReviewStage.NONE:
                steps += [(local, "request_review", {"level": ReviewLevel.FIRST})] * 4
            elif stage is ReviewStage.FIRST_REQUESTED:
                decide = {"level": ReviewLevel.FIRST, "outcome": outcome}
                steps += [(setting.above(case.unit_id), "decide_review", decide)] * 4
                steps.append((local, "hold_hearing", {"days": 2}))
            elif stage is ReviewStage.FIRST_DECIDED:
                steps += [(local, "request_review", {"level": ReviewLevel.SECOND})] * 4
            elif stage is ReviewStage.SECOND_REQUESTED:
                decide = {"level": ReviewLevel.SECOND, "outcome": outcome}
                steps += [(setting.above(case.reviewing_unit_ids[-1]), "decide_review", decide)] * 4
            if status is CaseStatus.REPLIED:
                steps.append((local, "close_case", {"closure": list(ClosureKind)[variant % 2]}))
            steps.append((local, "rate_satisfaction", {"rating": list(Satisfaction)[variant % 3]}))
            steps.append((local, "end_petition", {}))
            steps.append(("reexaminer", "reopen_case", {}))
        else:
            steps.append(("reexaminer", "reopen_case", {}))
        if status is not CaseStatus.DECLINED:
            steps.append((setting.above(case.unit_id), "issue_supervision", {"due": None}))
            unanswered = [no for no, order in case.supervision.items() if order.answered_at is None]
            if unanswered:
                answer = {"order_no": unanswered[variant % len(unanswered)]}
                steps.append((local, "answer_supervision", answer))
        actor, command, kwargs = steps[choice % len(steps)]
        self.case_run(case_id, actor, command, back, **kwargs)

    @rule(case=cases, choice=st.integers(0, 11), variant=st.integers(0, 5), wait=step_wait, back=back)
    def by_the_book(self, case: UUID, choice: int, variant: int, wait: timedelta, back: int) -> None:
        self.next_step(case, choice, variant, wait, back)

    @rule(case=cases, choice=st.integers(0, 11), variant=st.integers(0, 5), wait=step_wait, back=back)
    def again_by_the_book(self, case: UUID, choice: int, variant: int, wait: timedelta, back: int) -> None:
        self.next_step(case, choice, variant, wait, back)

    @rule(case=cases, choice=st.integers(0, 11), variant=st.integers(0, 5), wait=step_wait, back=back)
    def once_more(self, case: UUID, choice: int, variant: int, wait: timedelta, back: int) -> None:
        self.next_step(case, choice, variant, wait, back)

    @rule(case=cases, choice=st.integers(0, 11), variant=st.integers(0, 5), wait=step_wait, back=back)
    def still_by_the_book(self, case: UUID, choice: int, variant: int, wait: timedelta, back: int) -> None:
        self.next_step(case, choice, variant, wait, back)

    @rule(case=cases, choice=st.integers(0, 11), variant=st.integers(0, 5), wait=step_wait, back=back)
    def to_the_end(self, case: UUID, choice: int, variant: int, wait: timedelta, back: int) -> None:
        self.next_step(case, choice, variant, wait, back)

    # --- time -----------------------------------------------------------------------------

    @rule(delta=wait)
    def time_passes(self, delta: timedelta) -> None:
        self.world.clock.advance(delta)

    @rule(delta=wait)
    def more_time_passes(self, delta: timedelta) -> None:
        self.world.clock.advance(delta)

    # --- the checks -----------------------------------------------------------------------

    @invariant()
    def replay_equals_live_and_histories_obey_the_rules(self) -> None:
        """Checks 1 and 2 for every case of the example.

        A case whose stored events did not change since the last check is compared with
        its replay from then (as good as replaying again, and much cheaper on PostgreSQL);
        a case with new events is replayed by the fresh ledger and its history re-checked.
        """
        reader = self.setting.reader
        self.ledger.cache.refresh()
        reader.cache.refresh()
        changed = self.recorded_since_last_check()
        for case_id in self.case_ids:
            live = self.ledger.cache.get(case_id)
            assert not live.pending_events, f"case {case_id}: the cached case holds unsaved events"
            expected = public_state(live)
            if case_id in changed or case_id not in self.replayed:
                self.replayed[case_id] = public_state(reader.repository.get(case_id))
                check_history(self.setting, list(self.ledger.events.get(case_id)))
            for source, actual in (
                ("the fresh ledger's replay", self.replayed[case_id]),
                ("the fresh ledger's following cache", public_state(reader.cache.get(case_id))),
            ):
                differ = differences(expected, actual)
                assert not differ, f"case {case_id}: {source} differs from the live case in {differ}"

    @invariant()
    def views_equal_the_replay(self) -> None:
        """Check 4: after catching up, each changed case's view rows equal its from-scratch replay."""
        views = self.setting.views
        start = views.position
        views.catch_up()
        touched = {
            UUID(str(n.originator_id))
            for n in self.ledger.recorder.select_notifications(
                start=start, limit=10_000, inclusive_of_start=False
            )
        }
        for case_id in touched & set(self.case_ids):
            assert_case_views_equal_replay(self.setting.reader, views.connection, case_id)

    def recorded_since_last_check(self) -> set[UUID]:
        """The aggregates that gained events since the last check."""
        log = self.ledger.recorder
        changed: set[UUID] = set()
        while True:
            page = log.select_notifications(start=self.checked_up_to, limit=100, inclusive_of_start=False)
            if not page:
                return changed
            changed.update(UUID(str(n.originator_id)) for n in page)
            self.checked_up_to = page[-1].id


def check_history(setting: Setting, events: list[Any]) -> None:
    """The rules of petition work, checked over one case's stored events."""
    names = [type(e).__name__ for e in events]
    trail = " → ".join(names)
    assert names[0] == "Registered", trail
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1)), trail
    registered = events[0]
    accused = set(registered.accused_cadre_ids)
    accused_units = set(registered.accused_unit_ids)

    handling = False  # accepted (or reopened, or overturned) and not yet replied to
    replied = False  # a reply was issued in the current handling cycle
    closed = False
    extended = False
    rules: RuleRef | None = None
    stage = "none"  # none, first_requested, first_decided, second_requested, second_decided
    window: date | None = None  # review_request_until of the latest ReplyIssued / ReviewDecided
    reply_no = 0
    rated: set[int] = set()
    holder = registered.unit_id  # the unit holding the case
    orders: dict[int, Any] = {}  # supervision orders by number: the SupervisionIssued event
    answered: set[int] = set()

    for i, event in enumerate(events):
        name = names[i]
        where = f"event {i + 1} ({name}) in {trail}"
        assert event.occurred_at <= event.timestamp, f"{where}: occurred_at is after its record time"
        assert setting.unit_of[event.actor_id] == event.actor_unit_id, (
            f"{where}: actor {setting.names.get(event.actor_id)} served in "
            f"{setting.names.get(setting.unit_of[event.actor_id])}, "
            f"not {setting.names.get(event.actor_unit_id)}"
        )
        appointed = {
            "OwningLeaderAppointed": "leader_id",
            "HandlerAssigned": "handler_id",
            "ResponsibilityAssigned": "cadre_id",
        }.get(name)
        if appointed:
            cadre_id = getattr(event, appointed)
            assert cadre_id not in accused, f"{where}: accused cadre {setting.names.get(cadre_id)} appointed"
            assert setting.unit_of[cadre_id] not in accused_units, f"{where}: cadre of an accused unit"
        if i > 0:
            # Recusal (Art. 28) binds everyone the petition accuses, not only appointees: after
            # its registration, nobody accused, nor any cadre of an accused unit, acts on the case.
            assert event.actor_id not in accused, (
                f"{where}: recorded by {setting.names.get(event.actor_id)}, whom the petition accuses"
            )
            assert event.actor_unit_id not in accused_units, (
                f"{where}: recorded by {setting.names.get(event.actor_id)} of "
                f"{setting.names.get(event.actor_unit_id)}, a unit the petition accuses"
            )
        if name in ("Forwarded", "Assigned"):
            assert event.to_unit_id not in accused_units, f"{where}: sent to the accused unit"
        if name == "ResponsibilityAssigned":
            assert event.unit_id not in accused_units, f"{where}: the accused unit made responsible"

        if name in ("Forwarded", "Assigned"):
            holder = event.to_unit_id
        elif name == "ResponsibilityAssigned":
            holder = event.unit_id
        elif name == "SupervisionIssued":
            assert event.actor_unit_id != holder, f"{where}: the holding unit supervised itself"
            assert event.order_no == len(orders) + 1, f"{where}: order {event.order_no} after {len(orders)}"
            orders[event.order_no] = event
        elif name == "SupervisionAnswered":
            order = orders.get(event.order_no)
            assert order is not None, f"{where}: answered order {event.order_no}, which was never issued"
            assert event.order_no not in answered, f"{where}: order {event.order_no} answered twice"
            assert event.actor_unit_id != order.actor_unit_id, f"{where}: answered by the issuing unit"
            assert event.occurred_at >= order.occurred_at, f"{where}: answered before it was issued"
            answered.add(event.order_no)

        opens = name in ("Accepted", "Reopened") or (
            name == "ReviewDecided" and event.outcome is ReviewOutcome.OVERTURNED
        )
        if name == "ReplyIssued":
            assert handling, f"{where}: a reply without an acceptance, reopening or overturn before it"
            reply_no += 1
            assert event.reply_no == reply_no, f"{where}: reply number {event.reply_no}, expected {reply_no}"
            handling, replied, closed = False, True, False
            window = event.review_request_until
        elif name == "Closed":
            assert replied, f"{where}: closed without a reply in the current handling cycle"
            assert not closed, f"{where}: closed twice"
            assert stage not in ("first_requested", "second_requested"), f"{where}: closed under review"
            closed = True
        elif name == "DeadlineExtended":
            assert handling, f"{where}: extended outside a handling cycle"
            assert not extended, f"{where}: a second extension in one handling cycle"
            assert rules is not None
            assert 1 <= event.days <= setting.extension_max[rules], (
                f"{where}: extended by {event.days} days under {rules}"
            )
            extended = True
        elif name == "ReviewRequested":
            expected = {ReviewLevel.FIRST: "none", ReviewLevel.SECOND: "first_decided"}[event.level]
            assert stage == expected, f"{where}: a {event.level} review requested at review stage {stage}"
            assert window is not None, f"{where}: no review window was open"
            local = event.occurred_at.astimezone(LOCAL).date()
            assert local <= window, f"{where}: requested on {local}, the window closed on {window}"
            stage = f"{event.level}_requested"
        elif name == "ReviewDecided":
            assert stage == f"{event.level}_requested", f"{where}: decided at review stage {stage}"
            stage = f"{event.level}_decided"
            window = event.review_request_until
        elif name == "SatisfactionRated":
            assert replied, f"{where}: rated with no reply in the current handling cycle"
            assert event.reply_no == reply_no, f"{where}: rated reply {event.reply_no}, latest is {reply_no}"
            assert event.reply_no not in rated, f"{where}: reply {event.reply_no} rated twice"
            rated.add(event.reply_no)
        if opens:
            handling, replied, closed, extended = True, False, False, False
            if name != "ReviewDecided":
                rules = event.rules
            if name == "Reopened":
                stage, window = "none", None
            else:
                window = None


# --- the tests, one per backend ----------------------------------------------------------------


def run_machine(setting: Setting) -> None:
    """Run the examples, then check that every view followed live equals a rebuild from scratch."""
    machine = type("CaseMachine", (CaseMachine,), {"setting": setting})
    run_state_machine_as_test(machine, settings=SETTINGS)
    views, ledger = setting.views, setting.world.ledger
    views.catch_up()
    live = {view.name: digest(views.connection, view) for view in views.views}
    rebuild_together(ledger, build_views(ledger))
    rebuilt = {view.name: digest(views.connection, view) for view in views.views}
    assert rebuilt == live
    assert all(found.rows > 0 for found in live.values())
    assert canonical_cadre_digest(ledger) == live["cadre_accountability"]


class EveryCaseRedone(CadreAccountabilityView):
    """The accountability view deriving a case's rows from its whole history at every event."""

    @staticmethod
    def _out_of_order(memory: Any, envelope: Any) -> bool:
        return True


def canonical_cadre_digest(ledger: Ledger) -> Digest:
    """cadre_accountability as every case's history in business order gives it (a store of its own)."""
    with tempfile.TemporaryDirectory() as folder:
        runner = Runner(ledger, [EveryCaseRedone(ledger)], ViewStore(f"sqlite:///{folder}/canonical.sqlite"))
        try:
            runner.catch_up()
            return digest(runner.connection, runner.views[0])
        finally:
            runner.close()


def test_case_commands_keep_replay_and_history_consistent_on_sqlite(tmp_path: Path) -> None:
    with setting_on(f"sqlite:///{tmp_path}/ledger.sqlite") as setting:
        run_machine(setting)


@pytest.mark.postgres
def test_case_commands_keep_replay_and_history_consistent_on_postgres() -> None:
    require_postgres()
    schema = f"test_sm_{uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        with setting_on(f"{POSTGRES_URL}?schema={schema}") as setting:
            run_machine(setting)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
