"""Joint meetings for the demo: county meetings twice a month, city meetings monthly."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from uuid import UUID

from domain.demo.schedule import LOCAL, Step, Timeline
from domain.demo.world import Org
from domain.ids import derived_id


@dataclass
class PlannedMeeting:
    """A meeting on a fixed day; cases join it as they are planned."""

    meeting_id: UUID
    territory: str
    day: date
    convener: str
    studied: list[datetime] = field(default_factory=list)

    def study_slot(self) -> datetime:
        """The moment the next case is studied: twenty minutes in, five minutes apart."""
        slot = datetime.combine(self.day, time(9, 20), LOCAL) + timedelta(minutes=5 * len(self.studied))
        self.studied.append(slot)
        return slot


class MeetingPlan:
    """Which meetings are held, when, and which cases each studies."""

    def __init__(self, timeline: Timeline, org: Org) -> None:
        self.timeline = timeline
        self.org = org
        self.meetings: dict[tuple[str, date], PlannedMeeting] = {}

    def next_meeting(self, level: str, territory: str, after: datetime) -> PlannedMeeting:
        """The first meeting of `territory` at least a day after `after`."""
        day = after.date() + timedelta(days=1)
        while not self._is_meeting_day(level, day):
            day += timedelta(days=1)
        key = (territory, day)
        if key not in self.meetings:
            convener = self.org.who(f"{territory}_bureau", "head", day)
            self.meetings[key] = PlannedMeeting(
                derived_id("demo", self.timeline.seed, "meeting", *key), territory, day, convener
            )
        return self.meetings[key]

    def _is_meeting_day(self, level: str, day: date) -> bool:
        if not self.timeline.calendar.is_working_day(day):
            return False
        if level == "city":  # the first Wednesday-or-later working day of the month
            return day.weekday() == 2 and day.day <= 7
        return day.weekday() == 1 and (8 <= day.day <= 14 or 22 <= day.day <= 28)

    def emit(self) -> int:
        """Add convene and conclude steps around the studies of every planned meeting."""
        for (territory, day), meeting in sorted(self.meetings.items(), key=lambda item: item[0][1]):
            rng = random.Random(f"{self.timeline.seed}/meeting/{territory}/{day}")
            chair_duty = "head" if rng.random() < 0.93 else "leader"
            chair = self.org.who(territory, chair_duty, day)
            attendees = frozenset(
                self.org.cadre_id(self.org.who(territory, duty, day)) for duty in ("leader", "deputy")
            ) | {self.org.cadre_id(meeting.convener)}
            start = datetime.combine(day, time(9, 0), LOCAL)
            self.timeline.add(
                Step(
                    start,
                    meeting.convener,
                    "convene_meeting",
                    "召开党政联席信访工作例会，研判重点信访事项",
                    {
                        "meeting_id": meeting.meeting_id,
                        "unit_id": self.org.unit_id(territory),
                        "chair_id": self.org.cadre_id(chair),
                        "attendee_ids": attendees,
                    },
                )
            )
            end = max(meeting.studied) + timedelta(minutes=30)
            self.timeline.add(
                Step(
                    end,
                    meeting.convener,
                    "conclude_meeting",
                    f"会议研判{len(meeting.studied)}件信访事项，逐件明确包案领导、责任单位和办结时限",
                    {"meeting_id": meeting.meeting_id},
                )
            )
        return len(self.meetings)
