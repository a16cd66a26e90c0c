"""A small, fixed world for tests: who is who, and shortcuts to put a case in a given state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest

from domain.case import Case, Intake
from domain.clock import ManualClock
from domain.errors import LedgerError
from domain.events import LedgerEvent
from domain.ids import derived_id
from domain.ledger import CommandContext, CommandResult, Ledger
from domain.values import Channel, ReplyOutcome, ReviewLevel, ReviewOutcome, Role, UnitKind, UnitLevel

BEIJING = ZoneInfo("Asia/Shanghai")
INTAKE = Intake(channel=Channel.VISIT, category="land_compensation")


@dataclass
class World:
    """Units and cadres of a city with one county (national rules) and one district (Henan rules).

    周口市 (city) ─┬─ 市信访局 (bureau): city_clerk, city_bureau_head (head), reexaminer
                  ├─ 市纪委监委 (discipline): inspector
                  ├─ 郸城县 (county): county_head (head), county_leader
                  │    ├─ 县信访局 (bureau): county_clerk
                  │    ├─ 县自然资源局 (department): dept_clerk
                  │    ├─ 汲冢镇 (township): township_head (head), township_leader, township_clerk, handler
                  │    │    └─ 东村 (village): village_head (head)
                  │    └─ 宜路镇 (township): outsider
                  └─ 淮阳区 (district, CN-HA rules): henan_head (head)
                       └─ 城关镇 (township): henan_clerk
    The city head (city_head) and a city leader (city_leader) sit in the city government.
    """

    ledger: Ledger
    clock: ManualClock
    units: dict[str, UUID] = field(default_factory=dict)
    cadres: dict[str, UUID] = field(default_factory=dict)

    def __getattr__(self, name: str) -> UUID:
        for table in ("units", "cadres"):
            entries = self.__dict__.get(table, {})
            if name in entries:
                return entries[name]  # type: ignore[no-any-return]
        raise AttributeError(name)

    def ctx(self, actor: UUID, narrative: str = "recorded in a test", **options: Any) -> CommandContext:
        return CommandContext(actor_id=actor, narrative=narrative, **options)

    def do(
        self, actor: UUID, command: str, /, narrative: str = "recorded in a test", **kwargs: Any
    ) -> CommandResult:
        """Run a ledger command as `actor`; options for the context go in `ctx_options`."""
        options = kwargs.pop("ctx_options", {})
        result: CommandResult = getattr(self.ledger, command)(self.ctx(actor, narrative, **options), **kwargs)
        return result

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))

    def refuse(self, error: type[LedgerError], actor: UUID, command: str, /, **kwargs: Any) -> LedgerError:
        """Run a command that must be refused with exactly `error`, and check that nothing was written."""
        options = kwargs.setdefault("ctx_options", {})
        command_id = options.setdefault("command_id", f"refused-{uuid4()}")
        before = self.ledger.recorder.max_notification_id()
        with pytest.raises(error) as refused:
            self.do(actor, command, **kwargs)
        assert type(refused.value) is error, f"expected {error.__name__}, got {type(refused.value).__name__}"
        assert self.ledger.recorder.max_notification_id() == before, "a refused command wrote events"
        assert self.ledger.command_log.select_command(command_id) is None, "a refused command was logged"
        return refused.value

    def advance_to(self, day: date, hour: int = 10, minute: int = 0) -> None:
        """Move the clock forward to `hour:minute` on `day`, Beijing time."""
        self.clock.set(datetime.combine(day, time(hour, minute), tzinfo=BEIJING))

    def today(self) -> date:
        """The clock's date in Beijing."""
        return self.clock.now().astimezone(BEIJING).date()

    def events(self, aggregate_id: UUID) -> list[LedgerEvent]:
        """Every stored event of an aggregate, oldest first."""
        return list(self.ledger.events.get(aggregate_id))

    def case(self, case_id: UUID) -> Case:
        """The case as rebuilt from its stored events."""
        case: Case = self.ledger.repository.get(case_id)
        return case

    def correct_category(self, case_id: UUID, category: str = "wage_arrears") -> None:
        """Correct the registered intake's category (the case's version 1), as the township clerk."""
        intake = INTAKE.model_copy(update={"category": category}).model_dump(mode="json")
        self.correct_record(case_id, 1, narrative="类别登记错误，更正", intake=intake)

    def correct_record(
        self, case_id: UUID, version: int, narrative: str = "走访日期登记错误，更正", **changes: Any
    ) -> None:
        """Correct fields of the case's event `version`, as the township clerk (who recorded it)."""
        self.do(
            self.township_clerk,
            "correct_record",
            narrative=narrative,
            aggregate_id=case_id,
            corrects=version,
            changes=changes,
        )

    def register(self, actor: UUID | None = None, **kwargs: Any) -> UUID:
        kwargs.setdefault("intake", INTAKE)
        kwargs.setdefault("petitioner_id", uuid4())
        return self.do(actor or self.township_clerk, "register_case", **kwargs).aggregate_id

    def accepted(self, **kwargs: Any) -> UUID:
        case_id = self.register(**kwargs)
        self.advance(hours=1)
        self.do(self.township_clerk, "accept_case", case_id=case_id)
        return case_id

    def replied(self, outcome: ReplyOutcome = ReplyOutcome.SUPPORT, **kwargs: Any) -> UUID:
        case_id = self.accepted(**kwargs)
        self.advance(days=3)
        self.do(self.township_clerk, "issue_reply", case_id=case_id, outcome=outcome)
        return case_id

    def finally_decided(self, **kwargs: Any) -> UUID:
        """A township case upheld on first review (by the county) and second review (by the city): 终结."""
        case_id = self.replied(**kwargs)
        steps = (
            (self.township_clerk, "request_review", {"level": ReviewLevel.FIRST}),
            (
                self.county_head,
                "decide_review",
                {"level": ReviewLevel.FIRST, "outcome": ReviewOutcome.UPHELD},
            ),
            (self.township_clerk, "request_review", {"level": ReviewLevel.SECOND}),
            (
                self.city_leader,
                "decide_review",
                {"level": ReviewLevel.SECOND, "outcome": ReviewOutcome.UPHELD},
            ),
        )
        for actor, command, arguments in steps:
            self.advance(days=1)
            self.do(actor, command, case_id=case_id, **arguments)
        return case_id


def build_world(ledger: Ledger, clock: ManualClock) -> World:
    world = World(ledger, clock)
    admin = derived_id("test", "admin")
    world.cadres["admin"] = admin
    world.units["city"] = world.do(
        admin,
        "establish",
        narrative="establish the test ledger",
        root_unit_name="周口市",
        root_level=UnitLevel.CITY,
        jurisdiction="CN",
        administrator_name="管理员",
        administrator_position="系统管理员",
    ).aggregate_id

    def unit(key: str, name: str, level: UnitLevel, kind: UnitKind, parent: str, **extra: Any) -> None:
        world.units[key] = world.do(
            admin, "register_unit", name=name, level=level, kind=kind, parent_id=world.units[parent], **extra
        ).aggregate_id

    def cadre(key: str, name: str, unit_key: str, position: str, **extra: Any) -> None:
        world.cadres[key] = world.do(
            admin, "register_cadre", name=name, unit_id=world.units[unit_key], position=position, **extra
        ).aggregate_id

    unit("city_bureau", "周口市信访局", UnitLevel.CITY, UnitKind.PETITION_BUREAU, "city")
    unit("discipline", "周口市纪委监委", UnitLevel.CITY, UnitKind.DISCIPLINE, "city")
    unit("county", "郸城县", UnitLevel.COUNTY, UnitKind.GOVERNMENT, "city")
    unit("county_bureau", "郸城县信访局", UnitLevel.COUNTY, UnitKind.PETITION_BUREAU, "county")
    unit("county_dept", "郸城县自然资源局", UnitLevel.COUNTY, UnitKind.DEPARTMENT, "county")
    unit("township", "汲冢镇", UnitLevel.TOWNSHIP, UnitKind.GOVERNMENT, "county")
    unit("village", "东村", UnitLevel.VILLAGE, UnitKind.GOVERNMENT, "township")
    unit("other_township", "宜路镇", UnitLevel.TOWNSHIP, UnitKind.GOVERNMENT, "county")
    unit("henan_county", "淮阳区", UnitLevel.COUNTY, UnitKind.GOVERNMENT, "city", jurisdiction="CN-HA")
    unit("henan_township", "城关镇", UnitLevel.TOWNSHIP, UnitKind.GOVERNMENT, "henan_county")

    cadre("city_head", "刘书记", "city", "市委书记", is_principal=True)
    cadre("city_leader", "丁市长", "city", "市长", is_leader=True)
    cadre("city_clerk", "陈科员", "city_bureau", "科员")
    cadre("city_bureau_head", "陈局长", "city_bureau", "局长", is_principal=True)
    cadre(
        "reexaminer", "王副局长", "city_bureau", "副局长", is_leader=True, roles=frozenset({Role.REEXAMINER})
    )
    cadre("inspector", "纪检员", "discipline", "监察员", roles=frozenset({Role.INSPECTOR}))
    cadre("county_head", "县委书记", "county", "县委书记", is_principal=True)
    cadre("county_leader", "副县长", "county", "副县长", is_leader=True)
    cadre("county_clerk", "县信访科员", "county_bureau", "科员")
    cadre("dept_clerk", "资源局科员", "county_dept", "科员")
    cadre("township_head", "镇党委书记", "township", "党委书记", is_principal=True)
    cadre("township_leader", "镇长", "township", "镇长", is_leader=True)
    cadre("township_clerk", "信访专干", "township", "信访专干")
    cadre("handler", "镇干事", "township", "干事")
    cadre("village_head", "村支书", "village", "村支书", is_principal=True)
    cadre("outsider", "宜路镇干事", "other_township", "干事")
    cadre("henan_head", "区委书记", "henan_county", "区委书记", is_principal=True)
    cadre("henan_clerk", "城关镇干事", "henan_township", "干事")
    clock.advance(timedelta(hours=1))
    return world
