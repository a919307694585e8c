"""Reading a range of appointments from a query: `from` and `to` as ISO 8601 instants, or as dates in a
time zone (a `to` date includes that whole day). Every rule names the parameter it is about."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.validation import InvalidInput, parse_timezone

MAX_REPORT_DAYS = 400
FIRST_YEAR, LAST_YEAR = 1970, 9990
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Range:
    start: datetime | None
    end: datetime | None
    """Exclusive."""
    zone: ZoneInfo


def zone_or(value: str | None, default: str) -> ZoneInfo:
    zone = parse_timezone(value if value is not None else default)
    assert zone is not None
    return zone


def _day(value: str, field: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError as err:
        raise InvalidInput(field, f"{value!r} is not a date (YYYY-MM-DD)") from err
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(field, f"must be a date from {FIRST_YEAR} to {LAST_YEAR}")
    return day


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _bound(value: str | None, field: str, zone: ZoneInfo, *, end: bool) -> datetime | None:
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 40 or "\x00" in text:
        raise InvalidInput(field, "must be a date (YYYY-MM-DD) or an ISO 8601 date and time")
    if _DATE.match(text):
        day = _day(text, field)
        if end:
            day += timedelta(days=1)
        return _midnight(day, zone)
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise InvalidInput(
            field, f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 date and time"
        ) from err
    if not FIRST_YEAR <= instant.year <= LAST_YEAR:
        raise InvalidInput(field, f"must be a date from {FIRST_YEAR} to {LAST_YEAR}")
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=zone)
    # A `to` instant is included: the range ends just after it.
    return instant + timedelta(microseconds=1) if end else instant


def parse_range(start: str | None, end: str | None, zone: ZoneInfo) -> Range:
    parsed = Range(_bound(start, "from", zone, end=False), _bound(end, "to", zone, end=True), zone)
    if parsed.start is not None and parsed.end is not None and parsed.end <= parsed.start:
        raise InvalidInput("to", "must not be before from")
    return parsed


def report_days(start: str | None, end: str | None, zone: ZoneInfo, today: date) -> list[date]:
    """The local days a report covers: `from` and `to` dates, both included (default: the last 7 days)."""
    first = _day(start.strip(), "from") if start is not None else None
    last = _day(end.strip(), "to") if end is not None else None
    if last is None:
        last = today if first is None else first + timedelta(days=6)
    if first is None:
        first = last - timedelta(days=6)
    if last < first:
        raise InvalidInput("to", "must not be before from")
    if (last - first).days >= MAX_REPORT_DAYS:
        raise InvalidInput("to", f"a report covers at most {MAX_REPORT_DAYS} days")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def midnights(days: list[date], zone: ZoneInfo) -> list[datetime]:
    """Where each day begins in `zone`, and where the last one ends."""
    return [_midnight(d, zone) for d in [*days, days[-1] + timedelta(days=1)]]
