"""How values are written to view columns: portable text that sorts correctly on both backends."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from uuid import UUID

import orjson


def as_text(value: datetime | date | UUID | None) -> str | None:
    """Times as ISO-8601 UTC with microseconds and `Z`, dates as YYYY-MM-DD, ids as text."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat() if isinstance(value, date) else str(value)


def as_flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def as_json(value: object) -> str:
    """Canonical JSON text (sorted keys), so equal content always gives equal text."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def ids_json(values: Iterable[UUID]) -> str:
    return as_json(sorted(str(v) for v in values))
