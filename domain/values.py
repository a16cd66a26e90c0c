"""Value objects and vocabularies shared by the aggregates (names from the glossary)."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.errors import InvalidArgument


class Value(BaseModel):
    """An immutable value carried inside events."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A lower-case identifier used for open vocabularies (action kinds, categories)."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class UnitLevel(StrEnum):
    """The tier of a unit in the territorial hierarchy."""

    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"
    TOWNSHIP = "township"
    VILLAGE = "village"


LEVEL_RANK = {level: rank for rank, level in enumerate(UnitLevel)}
GRASSROOTS = frozenset({UnitLevel.TOWNSHIP, UnitLevel.VILLAGE})


class UnitKind(StrEnum):
    """What a unit is: a territorial government or a body attached to one."""

    GOVERNMENT = "government"  # party committee and government of a territory; scope = itself
    PETITION_BUREAU = "petition_bureau"  # 信访局; scope = its parent territory
    DEPARTMENT = "department"  # a functional department; scope = its parent territory
    DISCIPLINE = "discipline"  # 纪检监察; scope = its parent territory


class Role(StrEnum):
    """Capabilities beyond recording one's own work in one's jurisdiction."""

    ADMINISTRATOR = "administrator"  # manages units, cadres and deadline rules
    INSPECTOR = "inspector"  # opens inquiries, records findings and sanctions
    REEXAMINER = "reexaminer"  # reopens decided cases by re-examination (回头看)


class Channel(StrEnum):
    """How a petition reached the first receiver (Arts. 21-23)."""

    LETTER = "letter"
    VISIT = "visit"
    PHONE = "phone"
    ONLINE = "online"
    FAX = "fax"
    HOTLINE = "hotline"  # 12345


class Reception(StrEnum):
    """Leader reception mode when a leader received the petition in person."""

    SCHEDULED = "scheduled"  # 定点接访
    APPOINTMENT = "appointment"  # 约访
    GRASSROOTS = "grassroots"  # 下访


class BureauLevel(StrEnum):
    """The level of the petition bureau that assigned a case."""

    NATIONAL = "national"
    PROVINCIAL = "provincial"
    CITY = "city"


class KeyArea(StrEnum):
    """Key areas of the four campaigns (重点领域)."""

    REAL_ESTATE = "real_estate"
    FUNDRAISING = "fundraising"
    ILLEGAL_FUNDRAISING = "illegal_fundraising"
    RURAL = "rural"
    ENVIRONMENT = "environment"
    LAND_EXPROPRIATION = "land_expropriation"
    LEGACY_ENTERPRISE = "legacy_enterprise"


class Campaign(Value):
    """Key-campaign flags (四大攻坚): area, group, issue, person."""

    key_area: KeyArea | None = None
    key_group: bool = False
    key_issue: bool = False
    key_person: bool = False


class Source(Value):
    """Where the case came from: found by the unit, or assigned by a higher bureau."""

    assigned_by: BureauLevel | None = None
    reference: ShortText | None = None
    due: date | None = None

    @property
    def is_assigned(self) -> bool:
        return self.assigned_by is not None


class DeclineReason(StrEnum):
    """Why a petition was not accepted (Art. 19)."""

    OUTSIDE_SCOPE = "outside_scope"  # belongs to courts, arbitration, etc.
    FINAL_MATTER = "final_matter"  # same facts already finally decided
    ALREADY_HANDLED = "already_handled"
    NOT_COMPETENT = "not_competent"
    OTHER = "other"


class ActionKind(StrEnum):
    """Well-known handling actions; other lower-case kinds are accepted as free-form."""

    VISIT = "visit"  # 走访
    TALK = "talk"  # 约谈
    COORDINATION = "coordination"  # 协调
    MEDIATION = "mediation"  # 调解
    AID = "aid"  # 救助
    INVESTIGATION = "investigation"  # 调查核实
    EDUCATION = "education"  # 教育疏导
    FOLLOW_UP = "follow_up"  # 回访


class ReplyOutcome(StrEnum):
    """The opinion of a reply (处理意见书)."""

    SUPPORT = "support"
    EXPLAIN = "explain"
    NOT_SUPPORT = "not_support"


class Satisfaction(StrEnum):
    """The petitioner's rating of a reply."""

    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    UNSATISFIED = "unsatisfied"


class ReviewLevel(StrEnum):
    """First review (复查) or second review (复核)."""

    FIRST = "first"
    SECOND = "second"


class ReviewOutcome(StrEnum):
    """What the reviewing body decided about the reply under review."""

    UPHELD = "upheld"  # 维持
    MODIFIED = "modified"  # 变更: the reviewing body gives its own opinion
    OVERTURNED = "overturned"  # 撤销, handled again by the responsible unit


class ClosureKind(StrEnum):
    """How a case was closed (办结)."""

    PROCEDURAL = "procedural"
    SUBSTANTIVE = "substantive"


class DisputeSource(StrEnum):
    """How a grassroots cadre came upon a dispute."""

    SCREENING = "screening"  # 排查
    VISIT = "visit"  # 走访
    REPORT = "report"  # reported by residents or a grid worker


class MediationResult(StrEnum):
    """The result of one mediation session."""

    AGREED = "agreed"
    PARTIAL = "partial"
    FAILED = "failed"


class Obligation(StrEnum):
    """The duty a finding says was breached (Arts. 42-46 and the four failure patterns)."""

    FAILED_TO_REGISTER = "failed_to_register"
    FAILED_TO_FORWARD = "failed_to_forward"
    FAILED_TO_ASSIGN = "failed_to_assign"
    FAILED_TO_SUPERVISE = "failed_to_supervise"
    REFUSED_ACCEPTANCE = "refused_acceptance"
    LATE_NOTICE = "late_notice"
    PASSING_THE_BUCK = "passing_the_buck"  # 推诿
    PERFUNCTORY = "perfunctory"  # 敷衍
    DELAY = "delay"  # 拖延
    MISSED_DEADLINE = "missed_deadline"
    LEAKED_MATERIALS = "leaked_materials"
    RETALIATION = "retaliation"
    RECEIVED_NOT_HANDLED = "received_not_handled"  # 只接访不处访
    PRESCRIBED_NOT_CURED = "prescribed_not_cured"  # 只开方不治病
    OWNED_NOT_RESOLVED = "owned_not_resolved"  # 只包案不解决
    ASSIGNED_NOT_SUPERVISED = "assigned_not_supervised"  # 只交办不督办
    OTHER = "other"


class SanctionKind(StrEnum):
    """Sanctions for poor implementation (追责问责)."""

    CRITICISM = "criticism"  # 批评教育
    ADMONISHMENT = "admonishment"  # 诫勉
    NOTICE = "notice"  # 通报
    WARNING = "warning"  # 警告
    SERIOUS_WARNING = "serious_warning"
    DEMERIT = "demerit"  # 记过
    MAJOR_DEMERIT = "major_demerit"
    DEMOTION = "demotion"
    DISMISSAL = "dismissal"
    ORGANISATIONAL = "organisational"  # 组织处理


class Evidence(Value):
    """A document or recording that backs an event, named by its content hash."""

    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    media_type: Annotated[str, StringConstraints(pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=127)]
    name: ShortText
    uri: Annotated[str, StringConstraints(max_length=2000)] | None = None


class EventRef(Value):
    """Points at one stored event: an aggregate and the version it reached."""

    aggregate_id: UUID
    version: int = Field(ge=1)


# Personal data must stay out of the permanent record: narratives and reasons are
# scanned for the shapes of mainland phone numbers, resident ID numbers and e-mail.
_PERSONAL_DATA = {
    "phone number": re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"),
    "resident ID number": re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])"),
    "e-mail address": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
}


def personal_data_in(text: str) -> str | None:
    """Name the kind of personal data found in `text`, or None."""
    for kind, pattern in _PERSONAL_DATA.items():
        if pattern.search(text):
            return kind
    return None


def action_kind(kind: str) -> str:
    """Normalise a handling action kind: a well-known kind or a free-form lower-case slug."""
    normalised = kind.strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", normalised):
        raise InvalidArgument(
            f"action kind {kind!r} must be a lower-case word such as "
            f"{', '.join(k.value for k in ActionKind)}",
            kind=kind,
        )
    return normalised
