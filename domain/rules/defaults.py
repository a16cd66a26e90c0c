"""The rule sets and holiday calendars shipped with the ledger, seeded at establishment."""

from __future__ import annotations

from importlib import resources

from domain.rules.calendar import HolidayYear
from domain.rules.model import RuleSet


def _data_files(prefix: str) -> list[str]:
    folder = resources.files("domain.rules") / "data"
    return sorted(
        entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.startswith(prefix) and entry.name.endswith(".json")
    )


def packaged_rule_sets() -> list[RuleSet]:
    """National 2022 (default) and Henan 2012, validated."""
    return sorted(
        (RuleSet.model_validate_json(text) for text in _data_files("ruleset-")),
        key=lambda rules: (rules.jurisdiction, rules.version),
    )


def packaged_holidays() -> list[HolidayYear]:
    """Published public holidays and make-up workdays, one entry per calendar year."""
    return sorted(
        (HolidayYear.model_validate_json(text) for text in _data_files("holidays-")),
        key=lambda year: (year.calendar, year.year),
    )
