"""How values are written to view columns: portable text that sorts correctly on both backends."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson

_ZERO = timedelta(0)

ZONE = ZoneInfo("Asia/Shanghai")
"""The zone business dates are kept in: a due date ends at midnight after it, Beijing time."""


def as_text(value: datetime | date | UUID | None) -> str | None:
    """Times as ISO-8601 UTC with microseconds and `Z`, dates as YYYY-MM-DD, ids as text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.utcoffset() != _ZERO:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return value.isoformat() if isinstance(value, date) else str(value)


def moment_text(value: datetime) -> str:
    """`as_text` for a time that is certainly there."""
    text = as_text(value)
    assert text is not None
    return text


def as_flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def as_json(value: object) -> str:
    """Canonical JSON text (sorted keys), so equal content always gives equal text."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def ids_json(values: Iterable[UUID]) -> str:
    return as_json(sorted(str(v) for v in values))


def utc_text(stored: str) -> str:
    """A stored (pydantic JSON) time as `as_text` writes it, without building a datetime when UTC."""
    if stored.endswith("Z"):
        if "." in stored:
            whole, fraction = stored[:-1].split(".")
            return f"{whole}.{fraction:0<6}Z"
        return f"{stored[:-1]}.000000Z"
    text = as_text(datetime.fromisoformat(stored))
    assert text is not None
    return text


def due_end(due: date) -> str:
    """The moment a due date ends (midnight after it, Beijing time), as UTC text."""
    try:
        return moment_text(datetime.combine(due + timedelta(days=1), time(0), ZONE))
    except OverflowError:  # refused by the ledger since; never let one stored date stall the view
        return "9999-12-31T23:59:59.999999Z" if due.year > 1 else "0001-01-01T00:00:00.000000Z"
