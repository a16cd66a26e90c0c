"""The demo's organisation: a city with two counties, their townships, villages and cadres."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from uuid import UUID

from domain.ids import derived_id
from domain.values import Role, UnitKind, UnitLevel

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = [
    "建国",
    "海燕",
    "志强",
    "秀英",
    "卫东",
    "晓芳",
    "红军",
    "晓敏",
    "国庆",
    "文静",
    "永刚",
    "丽娟",
    "德胜",
    "春燕",
]


@dataclass(frozen=True)
class UnitSpec:
    key: str
    name: str
    level: UnitLevel
    kind: UnitKind
    parent: str | None
    jurisdiction: str | None = None


@dataclass(frozen=True)
class CadreSpec:
    key: str
    unit: str
    position: str
    duty: str  # head | leader | clerk | inspector | deputy
    roles: frozenset[Role] = frozenset()

    @property
    def is_principal(self) -> bool:
        return self.duty == "head"

    @property
    def is_leader(self) -> bool:
        return self.duty in ("head", "leader", "deputy")


@dataclass(frozen=True)
class Move:
    """A posting change on a date: an existing cadre moves, or a new one fills a post."""

    on: date
    cadre: str
    unit: str
    position: str
    duty: str
    new: bool = False


@dataclass
class Org:
    """The demo organisation and who held which duty in which unit, over time."""

    seed: int
    units: list[UnitSpec] = field(default_factory=list)
    cadres: list[CadreSpec] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)

    def unit_id(self, key: str) -> UUID:
        return derived_id("demo", self.seed, "unit", key)

    def cadre_id(self, key: str) -> UUID:
        return derived_id("demo", self.seed, "cadre", key)

    def name_of(self, key: str) -> str:
        index = [c.key for c in self.cadres].index(key)
        return SURNAMES[index % len(SURNAMES)] + GIVEN[(index * 5 + self.seed) % len(GIVEN)]

    def unit(self, key: str) -> UnitSpec:
        return next(u for u in self.units if u.key == key)

    def who(self, unit: str, duty: str, on: date) -> str:
        """The cadre holding `duty` in `unit` on `on` (moves applied)."""
        holder = None
        for cadre in self.cadres:
            if cadre.unit == unit and cadre.duty == duty:
                holder = cadre.key
                break
        for move in sorted(self.moves, key=lambda m: m.on):
            if move.on > on:
                break
            if move.unit == unit and move.duty == duty:
                holder = move.cadre
            elif holder == move.cadre:
                holder = None
        if holder is None:
            raise LookupError(f"nobody is {duty} of {unit} on {on}")
        return holder

    def townships(self, county: str) -> list[str]:
        return [u.key for u in self.units if u.parent == county and u.level is UnitLevel.TOWNSHIP]

    def villages(self, township: str) -> list[str]:
        return [u.key for u in self.units if u.parent == township]

    def county_of(self, unit: str) -> str:
        spec = self.unit(unit)
        while spec.level is not UnitLevel.COUNTY:
            assert spec.parent is not None
            spec = self.unit(spec.parent)
        return spec.key


def build_org(seed: int) -> Org:
    """Zhoukou city: Dancheng county (Henan's rules) and Huaiyang district (national rules)."""
    org = Org(seed)
    add_unit = org.units.append

    def add(key: str, unit: str, position: str, duty: str, *roles: Role) -> None:
        org.cadres.append(CadreSpec(key, unit, position, duty, frozenset(roles)))

    add_unit(UnitSpec("city", "周口市", UnitLevel.CITY, UnitKind.GOVERNMENT, None, "CN"))
    add_unit(UnitSpec("city_bureau", "周口市信访局", UnitLevel.CITY, UnitKind.PETITION_BUREAU, "city"))
    add_unit(UnitSpec("city_discipline", "周口市纪委监委", UnitLevel.CITY, UnitKind.DISCIPLINE, "city"))
    add_unit(UnitSpec("city_land", "周口市自然资源和规划局", UnitLevel.CITY, UnitKind.DEPARTMENT, "city"))
    add_unit(UnitSpec("city_hr", "周口市人力资源和社会保障局", UnitLevel.CITY, UnitKind.DEPARTMENT, "city"))
    add("admin", "city", "系统管理员", "admin")
    add("city_secretary", "city", "市委书记", "head")
    add("city_mayor", "city", "市长", "leader")
    add("city_deputy", "city", "副市长", "deputy")
    add("city_bureau_director", "city_bureau", "局长", "head")
    add("city_bureau_deputy", "city_bureau", "副局长", "deputy", Role.REEXAMINER)
    add("city_clerk", "city_bureau", "接访科科员", "clerk")
    add("city_clerk_2", "city_bureau", "督查科科员", "clerk2")
    add("city_inspector", "city_discipline", "第三监督检查室主任", "inspector", Role.INSPECTOR)
    add("city_inspector_2", "city_discipline", "监察员", "inspector2", Role.INSPECTOR)
    add("city_land_director", "city_land", "局长", "head")
    add("city_land_clerk", "city_land", "信访科科员", "clerk")
    add("city_hr_director", "city_hr", "局长", "head")
    add("city_hr_clerk", "city_hr", "信访科科员", "clerk")

    counties = {
        "dancheng": ("郸城县", "县", "CN-HA", ["汲冢镇", "宜路镇", "钱店镇"]),
        "huaiyang": ("淮阳区", "区", None, ["城关镇", "白楼镇", "四通镇"]),
    }
    village_names = iter(
        [
            "东王庄村",
            "李楼村",
            "张庄村",
            "刘寨村",
            "钱店村",
            "郭庄村",
            "太昊村",
            "西关村",
            "白楼村",
            "朱庄村",
            "四通村",
            "大连村",
        ]
    )
    for county, (name, suffix, jurisdiction, towns) in counties.items():
        add_unit(UnitSpec(county, name, UnitLevel.COUNTY, UnitKind.GOVERNMENT, "city", jurisdiction))
        add_unit(
            UnitSpec(f"{county}_bureau", f"{name}信访局", UnitLevel.COUNTY, UnitKind.PETITION_BUREAU, county)
        )
        add_unit(
            UnitSpec(f"{county}_discipline", f"{name}纪委监委", UnitLevel.COUNTY, UnitKind.DISCIPLINE, county)
        )
        add_unit(
            UnitSpec(f"{county}_land", f"{name}自然资源局", UnitLevel.COUNTY, UnitKind.DEPARTMENT, county)
        )
        add(f"{county}_secretary", county, f"{suffix}委书记", "head")
        add(f"{county}_magistrate", county, f"{suffix}长", "leader")
        add(f"{county}_deputy", county, f"副{suffix}长", "deputy")
        add(f"{county}_bureau_director", f"{county}_bureau", "局长", "head")
        add(f"{county}_clerk", f"{county}_bureau", "科员", "clerk")
        add(f"{county}_inspector", f"{county}_discipline", "监察员", "inspector", Role.INSPECTOR)
        add(f"{county}_land_director", f"{county}_land", "局长", "head")
        add(f"{county}_land_clerk", f"{county}_land", "信访专干", "clerk")
        for number, town_name in enumerate(towns, start=1):
            town = f"{county}_t{number}"
            add_unit(UnitSpec(town, town_name, UnitLevel.TOWNSHIP, UnitKind.GOVERNMENT, county))
            add(f"{town}_secretary", town, "党委书记", "head")
            add(f"{town}_mayor", town, "镇长", "leader")
            add(f"{town}_clerk", town, "信访专干", "clerk")
            for v in (1, 2):
                village = f"{town}_v{v}"
                add_unit(UnitSpec(village, next(village_names), UnitLevel.VILLAGE, UnitKind.GOVERNMENT, town))
                add(f"{village}_secretary", village, "村支部书记", "head")

    # Postings change during the demo: an event records the unit its actor served in *then*.
    org.moves += [
        Move(date(2025, 9, 1), "dancheng_t1_clerk", "dancheng_bureau", "科员", "clerk2"),
        Move(date(2025, 9, 1), "dancheng_t1_clerk_2", "dancheng_t1", "信访专干", "clerk", new=True),
        Move(date(2026, 3, 2), "dancheng_t2_secretary", "dancheng", "副县长", "deputy2"),
        Move(date(2026, 3, 2), "dancheng_t2_mayor", "dancheng_t2", "党委书记", "head"),
        Move(date(2026, 3, 2), "dancheng_t2_mayor_2", "dancheng_t2", "镇长", "leader", new=True),
    ]
    org.cadres.append(CadreSpec("dancheng_t1_clerk_2", "dancheng_t1", "信访专干", "clerk"))
    org.cadres.append(CadreSpec("dancheng_t2_mayor_2", "dancheng_t2", "镇长", "leader"))
    return org
