"""The clock of the reconciliation engine, in the business time zone (patched by time-machine in tests)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "America/Sao_Paulo"


def now() -> datetime:
    return datetime.now(UTC)


def today(tz: str | ZoneInfo | None = None) -> date:
    """Today's calendar date in the business time zone."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz or DEFAULT_TIMEZONE)
    return now().astimezone(zone).date()
