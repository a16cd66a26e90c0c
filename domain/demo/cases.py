"""Case lifecycles for the demo: every path the domain knows, in realistic proportions."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.case import Intake
from domain.demo.meetings import MeetingPlan
from domain.demo.schedule import Step, Timeline
from domain.demo.world import Org
from domain.ids import derived_id
from domain.values import (
    BureauLevel,
    Campaign,
    Channel,
    ClosureKind,
    DeclineReason,
    KeyArea,
    Reception,
    ReplyOutcome,
    ReviewLevel,
    ReviewOutcome,
    Satisfaction,
    Source,
)

CATEGORIES = {
    "land_expropriation": ("征地补偿", KeyArea.LAND_EXPROPRIATION),
    "wage_arrears": ("拖欠农民工工资", None),
    "housing_demolition": ("房屋拆迁安置", KeyArea.REAL_ESTATE),
    "social_security": ("社保待遇", None),
    "rural_land_contract": ("土地承包经营", KeyArea.RURAL),
    "environment_pollution": ("企业排污", KeyArea.ENVIRONMENT),
    "illegal_fundraising": ("非法集资", KeyArea.ILLEGAL_FUNDRAISING),
    "enterprise_restructuring": ("企业改制遗留问题", KeyArea.LEGACY_ENTERPRISE),
    "neighbourhood": ("宅基地邻里纠纷", None),
    "village_affairs": ("村务公开", None),
}

PATHS: dict[str, int] = {
    "resolved": 30,
    "unsatisfied": 9,
    "first_review": 8,
    "second_review": 4,
    "overturned": 3,
    "late_reply": 8,
    "extended": 5,
    "declined": 4,
    "forwarded": 6,
    "assigned": 6,
    "objection": 2,
    "ignored": 3,
    "owned_unresolved": 3,
    "reopened": 3,
    "leapfrog": 4,
    "hearing": 2,
}

REPLY_DAYS = {"dancheng": 30, "huaiyang": 60}
"""The reply period of each county's rules (Henan's 2012 set for Dancheng, national for Huaiyang)."""


@dataclass
class CaseScript:
    """Builds the steps of one case, keeping a cursor in business time."""

    timeline: Timeline
    org: Org
    meetings: MeetingPlan
    rng: random.Random
    case_id: UUID
    county: str
    township: str
    cursor: datetime
    path: str
    accepted_at: datetime | None = None

    def who(self, unit: str, duty: str) -> str:
        return self.org.who(unit, duty, self.cursor.date())

    def step(self, after: float, actor: str, command: str, narrative: str, /, **arguments: Any) -> Step:
        """Add a step `after` days after the previous one, addressed to this case."""
        self.cursor = self.timeline.later(self.cursor, after, self.rng)
        actor_key = self.who(*actor.split(":")) if ":" in actor else actor
        return self.timeline.add(
            Step(self.cursor, actor_key, command, narrative, {"case_id": self.case_id, **arguments})
        )

    @property
    def town_clerk(self) -> str:
        return f"{self.township}:clerk"

    @property
    def bureau_clerk(self) -> str:
        return f"{self.county}_bureau:clerk"

    def at(self, moment: datetime, actor: str, command: str, narrative: str, /, **arguments: Any) -> Step:
        """Add a step at `moment` (or just after the previous step, if that is later)."""
        days = max((moment - self.cursor).total_seconds() / 86400, 0.01)
        return self.step(days, actor, command, narrative, **arguments)

    def accept_and_handle(
        self, *, late_notice: bool = False, owner: str | None = None, actions: int = 0
    ) -> None:
        self.step(
            18 if late_notice else self.rng.uniform(0.5, 4),
            self.town_clerk,
            "accept_case",
            "经审查属本机关职责范围，予以受理，已书面告知信访人",
        )
        self.accepted_at = self.cursor
        self.step(0.1, self.town_clerk, "assign_handler", "指定承办人", handler_id=self._id(self.town_clerk))
        if owner:
            self.step(
                0.5, self.town_clerk, "appoint_owning_leader", "落实领导包案责任", leader_id=self._id(owner)
            )
        for _ in range(actions or self.rng.randint(1, 3)):
            self.action()

    def action(self, late: bool = False) -> None:
        kind, text = self.rng.choice(ACTIONS)
        step = self.step(self.rng.uniform(1, 6), self.town_clerk, "record_action", text, kind=kind)
        if late:  # recorded a fortnight after the fact
            step.occurred_at = step.at
            step.at = self.timeline.later(step.at, 15, self.rng)

    def reply(self, days: float, outcome: ReplyOutcome = ReplyOutcome.SUPPORT) -> None:
        self.step(days, self.town_clerk, "issue_reply", REPLIES[outcome], outcome=outcome)

    def rate(self, rating: Satisfaction) -> None:
        self.step(
            self.rng.uniform(2, 6),
            self.bureau_clerk,
            "rate_satisfaction",
            "电话回访，记录信访人评价",
            rating=rating,
        )

    def close(self, closure: ClosureKind = ClosureKind.SUBSTANTIVE) -> None:
        self.step(self.rng.uniform(0.5, 3), self.town_clerk, "close_case", "办结归档", closure=closure)

    def end(self) -> None:
        self.step(self.rng.uniform(3, 20), self.town_clerk, "end_petition", "信访人签署息访承诺，问题已化解")

    def review(self, level: ReviewLevel, outcome: ReviewOutcome) -> None:
        requester = self.bureau_clerk if level is ReviewLevel.FIRST else "city_bureau:clerk"
        decider = f"{self.county}:leader" if level is ReviewLevel.FIRST else "city:leader"
        self.step(
            self.rng.uniform(3, 12),
            requester,
            "request_review",
            f"信访人不服处理意见，申请{'复查' if level is ReviewLevel.FIRST else '复核'}",
            level=level,
        )
        self.step(
            self.rng.uniform(8, 20), decider, "decide_review", REVIEWS[outcome], level=level, outcome=outcome
        )

    def study(self, level: str, owner: str) -> None:
        """Have the next joint meeting study the case, naming its owner and responsible person."""
        meeting = self.meetings.next_meeting(level, self.county if level == "county" else "city", self.cursor)
        self.cursor = meeting.study_slot()
        self.timeline.add(
            Step(
                self.cursor,
                meeting.convener,
                "study_case",
                "联席会议研判，明确包案领导、责任人和办结时限",
                {
                    "meeting_id": meeting.meeting_id,
                    "case_id": self.case_id,
                    "owning_leader_id": self._id(owner),
                    "responsible_cadre_id": self._id(self.town_clerk),
                    "due": (self.cursor + timedelta(days=30)).date(),
                },
            )
        )

    def _id(self, actor: str) -> UUID:
        return self.org.cadre_id(self.who(*actor.split(":")) if ":" in actor else actor)


ACTIONS = [
    ("visit", "入户走访，了解诉求"),
    ("talk", "约谈相关责任人"),
    ("coordination", "协调相关部门现场办公"),
    ("mediation", "组织双方调解"),
    ("investigation", "调查核实有关情况"),
    ("aid", "落实困难救助"),
    ("education", "释法明理，教育疏导"),
]
REPLIES = {
    ReplyOutcome.SUPPORT: "出具处理意见书：诉求合理，予以支持",
    ReplyOutcome.EXPLAIN: "出具处理意见书：对政策作出解释说明",
    ReplyOutcome.NOT_SUPPORT: "出具处理意见书：诉求缺乏依据，不予支持",
}
REVIEWS = {
    ReviewOutcome.UPHELD: "经复查（复核），维持原处理意见",
    ReviewOutcome.MODIFIED: "经复查，变更原处理意见",
    ReviewOutcome.OVERTURNED: "经复查，撤销原处理意见，责令重新办理",
}


def plan_case(
    timeline: Timeline, org: Org, meetings: MeetingPlan, number: int, registered: datetime, finals: list[UUID]
) -> tuple[UUID, str]:
    """Add the steps of case `number`, registered at `registered`; returns its id and path."""
    rng = random.Random(f"{timeline.seed}/case/{number}")
    path = rng.choices(list(PATHS), weights=list(PATHS.values()))[0]
    county = rng.choice(("dancheng", "huaiyang"))
    township = rng.choice(org.townships(county))
    case_id = derived_id("demo", timeline.seed, "case", number)
    script = CaseScript(timeline, org, meetings, rng, case_id, county, township, registered, path)
    PLANNERS[path](script, finals)
    return case_id, path


def intake_for(script: CaseScript, *, source: Source | None = None, channel: Channel | None = None) -> Intake:
    category = script.rng.choice(list(CATEGORIES))
    area = CATEGORIES[category][1]
    return Intake(
        channel=channel or script.rng.choice([Channel.VISIT, Channel.LETTER, Channel.PHONE, Channel.ONLINE]),
        category=category,
        campaign=Campaign(key_area=area, key_group=script.rng.random() < 0.1, key_issue=area is not None),
        source=source or Source(),
        headcount=script.rng.choice([1, 1, 1, 2, 3, 5]) if category != "neighbourhood" else 1,
    )


def _register(script: CaseScript, actor: str, *, intake: Intake | None = None, **extra: Any) -> None:
    intake = intake or intake_for(script)
    actor_key = script.who(*actor.split(":"))
    summary = f"信访人反映{CATEGORIES[intake.category][0]}问题，请求依法处理"
    script.timeline.add(
        Step(
            script.cursor,
            actor_key,
            "register_case",
            summary,
            {
                "case_id": script.case_id,
                "intake": intake,
                "petitioner_id": derived_id("demo", script.timeline.seed, "petitioner", script.case_id),
                **extra,
            },
        )
    )
    if script.rng.random() < 0.04:  # the first receiver notices a miscategorisation and corrects it
        fixed = intake.model_copy(
            update={"category": script.rng.choice([c for c in CATEGORIES if c != intake.category])}
        )
        script.timeline.add(
            Step(
                script.timeline.later(script.cursor, 0.2, script.rng),
                actor_key,
                "correct_record",
                "更正登记时的问题类别：经核实，属另一类别",
                {
                    "aggregate_id": script.case_id,
                    "corrects": 1,
                    "changes": {"intake": fixed.model_dump(mode="json")},
                },
            )
        )


def _at_township(script: CaseScript) -> None:
    """Received by the township (its clerk, or its head on a reception day), or at the county bureau."""
    draw = script.rng.random()
    if draw < 0.1:
        visit = intake_for(script, channel=Channel.VISIT)
        intake = visit.model_copy(update={"reception": Reception.SCHEDULED})
        _register(script, f"{script.township}:head", intake=intake)
    elif draw < 0.55:
        _register(script, script.town_clerk)
    else:
        _register(script, script.bureau_clerk)
        script.step(
            script.rng.uniform(1, 4),
            script.bureau_clerk,
            "assign_case",
            "交办属地乡镇办理",
            to_unit_id=script.org.unit_id(script.township),
        )


def _standard(script: CaseScript, finals: list[UUID]) -> None:
    _at_township(script)
    handle_to_end(script)


def handle_to_end(script: CaseScript) -> None:
    """Accept, handle, reply, rate, close and (mostly) end the petition."""
    owner = f"{script.township}:leader" if script.rng.random() < 0.3 else None
    script.accept_and_handle(owner=owner)
    if script.rng.random() < 0.2:
        script.study("county", f"{script.county}:deputy")
        script.action()
    script.reply(script.rng.uniform(2, 12), script.rng.choice([ReplyOutcome.SUPPORT, ReplyOutcome.EXPLAIN]))
    script.rate(script.rng.choice([Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED]))
    script.close()
    if script.rng.random() < 0.75:
        script.end()


def _unsatisfied(script: CaseScript, finals: list[UUID]) -> None:
    _at_township(script)
    script.accept_and_handle()
    script.reply(script.rng.uniform(3, 12), ReplyOutcome.NOT_SUPPORT)
    script.rate(Satisfaction.UNSATISFIED)
    script.close(ClosureKind.PROCEDURAL)


def _first_review(script: CaseScript, finals: list[UUID]) -> None:
    _unsatisfied_then_review(script)
    script.review(ReviewLevel.FIRST, ReviewOutcome.UPHELD)
    script.close(ClosureKind.PROCEDURAL)


def _second_review(script: CaseScript, finals: list[UUID]) -> None:
    _unsatisfied_then_review(script)
    script.review(ReviewLevel.FIRST, ReviewOutcome.UPHELD)
    script.review(ReviewLevel.SECOND, ReviewOutcome.UPHELD)
    script.close(ClosureKind.PROCEDURAL)
    finals.append(script.case_id)


def _unsatisfied_then_review(script: CaseScript) -> None:
    _at_township(script)
    script.accept_and_handle()
    script.reply(script.rng.uniform(3, 12), ReplyOutcome.NOT_SUPPORT)
    script.rate(Satisfaction.UNSATISFIED)


def _overturned(script: CaseScript, finals: list[UUID]) -> None:
    _unsatisfied_then_review(script)
    script.review(ReviewLevel.FIRST, ReviewOutcome.OVERTURNED)
    script.action()
    script.reply(script.rng.uniform(5, 15), ReplyOutcome.SUPPORT)
    script.rate(Satisfaction.SATISFIED)
    script.close()
    script.end()


def _late_reply(script: CaseScript, finals: list[UUID]) -> None:
    _at_township(script)
    script.accept_and_handle(late_notice=script.rng.random() < 0.4)
    script.action(late=True)
    assert script.accepted_at is not None
    late = timedelta(days=REPLY_DAYS[script.county] + script.rng.uniform(10, 40))
    script.at(
        script.accepted_at + late,
        script.town_clerk,
        "issue_reply",
        REPLIES[ReplyOutcome.SUPPORT],
        outcome=ReplyOutcome.SUPPORT,
    )
    script.rate(script.rng.choice([Satisfaction.BASICALLY_SATISFIED, Satisfaction.UNSATISFIED]))
    script.close(ClosureKind.PROCEDURAL)


def _extended(script: CaseScript, finals: list[UUID]) -> None:
    _at_township(script)
    script.accept_and_handle(actions=1)
    assert script.accepted_at is not None
    period = timedelta(days=REPLY_DAYS[script.county])
    script.at(
        script.accepted_at + period * 0.6,
        f"{script.township}:head",
        "extend_deadline",
        "情况复杂，经本机关负责人批准延期办理，已告知信访人延期理由",
        days=20,
    )
    script.action()
    script.at(
        script.accepted_at + period + timedelta(days=script.rng.uniform(4, 12)),
        script.town_clerk,
        "issue_reply",
        REPLIES[ReplyOutcome.SUPPORT],
        outcome=ReplyOutcome.SUPPORT,
    )
    script.rate(Satisfaction.SATISFIED)
    script.close()
    script.end()


def _declined(script: CaseScript, finals: list[UUID]) -> None:
    if finals and script.rng.random() < 0.6:
        earlier = finals[script.rng.randrange(len(finals))]
        _register(script, script.town_clerk, repeat_of=earlier)
        script.step(
            script.rng.uniform(1, 5),
            script.town_clerk,
            "decline_case",
            "同一事项已经复核终结，不再受理",
            reason=DeclineReason.FINAL_MATTER,
        )
        return
    _register(script, script.town_clerk)
    script.step(
        script.rng.uniform(1, 5),
        script.town_clerk,
        "decline_case",
        "属于诉讼途径解决的事项，告知信访人向人民法院起诉",
        reason=DeclineReason.OUTSIDE_SCOPE,
    )


def _forwarded(script: CaseScript, finals: list[UUID]) -> None:
    """Complaints against the township itself go to the county department, never to the accused."""
    accused = script.rng.random() < 0.5
    extra: dict[str, Any] = {}
    if accused:
        extra = {
            "accused_unit_ids": frozenset({script.org.unit_id(script.township)}),
            "accused_cadre_ids": frozenset({script._id(f"{script.township}:head")}),
        }
    _register(script, script.bureau_clerk, **extra)
    land = f"{script.county}_land"
    script.step(
        script.rng.uniform(1, 5),
        script.bureau_clerk,
        "forward_case",
        "转送县自然资源局依法处理",
        to_unit_id=script.org.unit_id(land),
    )
    clerk = f"{land}:clerk"
    script.step(script.rng.uniform(1, 4), clerk, "accept_case", "予以受理并书面告知")
    script.step(0.2, clerk, "assign_handler", "指定承办人", handler_id=script._id(clerk))
    script.step(script.rng.uniform(2, 8), clerk, "record_action", "调取档案，现场勘察", kind="investigation")
    script.step(
        script.rng.uniform(5, 15),
        clerk,
        "issue_reply",
        REPLIES[ReplyOutcome.EXPLAIN],
        outcome=ReplyOutcome.EXPLAIN,
    )
    script.rate(Satisfaction.BASICALLY_SATISFIED)
    script.step(script.rng.uniform(1, 3), clerk, "close_case", "办结归档", closure=ClosureKind.SUBSTANTIVE)


def _assigned(script: CaseScript, finals: list[UUID]) -> None:
    """Assigned down by the provincial bureau with its own deadline: studied at the city meeting."""
    due = (script.cursor + timedelta(days=75)).date()
    source = Source(
        assigned_by=BureauLevel.PROVINCIAL, reference=f"豫信交〔{script.cursor.year}〕号", due=due
    )
    _register(script, "city_bureau:clerk", intake=intake_for(script, source=source, channel=Channel.ONLINE))
    script.step(
        script.rng.uniform(1, 3),
        "city_bureau:clerk",
        "assign_case",
        "交办属地乡镇按期办结",
        to_unit_id=script.org.unit_id(script.township),
        due=due,
    )
    script.accept_and_handle()
    script.study("city", f"{script.county}:leader")
    script.step(
        script.rng.uniform(2, 6),
        f"{script.county}_bureau:head",
        "issue_supervision",
        "督办：请按期办结并书面报告",
        due=(script.cursor + timedelta(days=14)).date(),
    )
    script.action()
    script.step(
        script.rng.uniform(2, 8), script.town_clerk, "answer_supervision", "书面报告办理进展", order_no=1
    )
    script.reply(script.rng.uniform(3, 10))
    script.rate(Satisfaction.SATISFIED)
    script.close()
    script.end()


def _objection(script: CaseScript, finals: list[UUID]) -> None:
    _register(script, script.bureau_clerk)
    script.step(
        1, script.bureau_clerk, "assign_case", "交办乡镇办理", to_unit_id=script.org.unit_id(script.township)
    )
    script.step(2, script.town_clerk, "object_to_assignment", "该事项发生地不在本镇辖区，提出异议")
    other = next(t for t in script.org.townships(script.county) if t != script.township)
    script.step(
        2,
        script.bureau_clerk,
        "assign_case",
        "异议成立，改交有权处理的乡镇",
        to_unit_id=script.org.unit_id(other),
    )
    script.township = other
    script.accept_and_handle()
    script.reply(script.rng.uniform(3, 10))
    script.rate(Satisfaction.SATISFIED)
    script.close()


def _ignored(script: CaseScript, finals: list[UUID]) -> None:
    """Received and never handled (只接访不处访), or assigned and never supervised (只交办不督办)."""
    if script.rng.random() < 0.5:
        _register(script, script.town_clerk, intake=intake_for(script, channel=Channel.VISIT))
        return
    _register(script, script.bureau_clerk)
    script.step(
        2, script.bureau_clerk, "assign_case", "交办乡镇办理", to_unit_id=script.org.unit_id(script.township)
    )
    script.step(script.rng.uniform(3, 10), script.town_clerk, "accept_case", "予以受理")


def _owned_unresolved(script: CaseScript, finals: list[UUID]) -> None:
    """A leader owns the case (包案) and it stays unresolved past its deadline (只包案不解决)."""
    _at_township(script)
    script.accept_and_handle(owner=f"{script.county}:deputy")
    script.study("county", f"{script.county}:deputy")


def _reopened(script: CaseScript, finals: list[UUID]) -> None:
    _unsatisfied(script, finals)
    script.step(
        script.rng.uniform(60, 120),
        "city_bureau:deputy",
        "reopen_case",
        "回头看：不满意的老案，不受原结论限制，重新办理",
    )
    script.action()
    script.action()
    script.reply(script.rng.uniform(5, 15))
    script.rate(Satisfaction.SATISFIED)
    script.close()
    script.end()


def _leapfrog(script: CaseScript, finals: list[UUID]) -> None:
    _at_township(script)
    script.accept_and_handle()
    script.step(
        script.rng.uniform(5, 15),
        "city_bureau:clerk",
        "record_leapfrog",
        "信访人赴京上访，登记越级访",
        level=script.rng.choice([BureauLevel.NATIONAL, BureauLevel.PROVINCIAL]),
    )
    script.step(
        1,
        "city_bureau:head",
        "issue_supervision",
        "挂牌督办：尽快化解，防止再次越级",
        due=(script.cursor + timedelta(days=10)).date(),
    )
    script.step(script.rng.uniform(2, 7), script.town_clerk, "answer_supervision", "报告化解进展", order_no=1)
    script.reply(script.rng.uniform(3, 10))
    script.rate(Satisfaction.BASICALLY_SATISFIED)
    script.close()


def _hearing(script: CaseScript, finals: list[UUID]) -> None:
    _at_township(script)
    script.accept_and_handle()
    script.step(
        script.rng.uniform(3, 8), script.town_clerk, "hold_hearing", "组织公开听证，听取各方意见", days=1
    )
    script.reply(script.rng.uniform(3, 8), ReplyOutcome.EXPLAIN)
    script.rate(Satisfaction.BASICALLY_SATISFIED)
    script.close()


PLANNERS: dict[str, Callable[[CaseScript, list[UUID]], None]] = {
    "resolved": _standard,
    "unsatisfied": _unsatisfied,
    "first_review": _first_review,
    "second_review": _second_review,
    "overturned": _overturned,
    "late_reply": _late_reply,
    "extended": _extended,
    "declined": _declined,
    "forwarded": _forwarded,
    "assigned": _assigned,
    "objection": _objection,
    "ignored": _ignored,
    "owned_unresolved": _owned_unresolved,
    "reopened": _reopened,
    "leapfrog": _leapfrog,
    "hearing": _hearing,
}


def registration_days(timeline: Timeline, count: int, first: date, last: date) -> list[datetime]:
    """`count` registration moments spread over the working days between `first` and `last`."""
    rng = random.Random(f"{timeline.seed}/registrations")
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    working = [d for d in days if timeline.calendar.is_working_day(d)]
    return sorted(timeline.moment(rng.choice(working), rng) for _ in range(count))
