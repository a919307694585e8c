"""Reading a new reminder from a client's JSON. Every rule names the field it is about."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from arrow.locales import get_locale
from fastapi import Request

from rules.schedule import USER_DT_FORMAT, QuietHours, notify_times, reminder_zone
from workflows.models import WORKFLOW_VERSION, ReminderInput, Reschedule

MAX_NOTIFY_WINDOW = 8760
MAX_NOTIFY_WINDOWS = 5
MAX_LOCATION = 128
MAX_PARTICIPANT = 256
# The workflow computes a little past the appointment (its send grace, quiet hours' next day); an
# appointment in Python's last year of dates would overflow there and wedge its workflow for good.
LATEST_APPOINTMENT = datetime(9999, 1, 1, tzinfo=UTC)

_APPOINTMENT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}(?::?\d{2})?)?$")
_DIGITS = re.compile(r"^[0-9]+$")


class InvalidInput(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_contact_number(value: Any, field: str = "contact_number") -> str:
    """11 digits starting with 1 (the seed's form) or E.164; answered as digits without `+`."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(field, "must be a string or an integer")
    text = str(value).strip()
    if text.startswith("+"):
        digits = text[1:]
        if not _DIGITS.match(digits) or not 8 <= len(digits) <= 15 or digits.startswith("0"):
            raise InvalidInput(field, "must be E.164: '+' and 8 to 15 digits")
        return _possible(digits, field)
    if not _DIGITS.match(text) or len(text) != 11 or not text.startswith("1"):
        raise InvalidInput(field, "must be 11 digits in the form 1XXXXXXXXXX, or E.164 such as +442071234567")
    return _possible(text, field)


def _possible(digits: str, field: str) -> str:
    # Possible, not valid: phonenumbers' validity data refuses the README's own 12223334444.
    try:
        number = phonenumbers.parse(f"+{digits}")
    except phonenumbers.NumberParseException as err:
        raise InvalidInput(field, f"is not a phone number ({err})") from err
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput(field, "is not a possible phone number for its country code")
    return digits


def _parse_offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 14 or minutes > 59:
        raise InvalidInput("appointment_time", f"has an impossible UTC offset {text}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def parse_timezone(value: Any) -> ZoneInfo | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidInput("timezone", "must be an IANA time zone name such as America/New_York")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as err:
        raise InvalidInput("timezone", f"{value!r} is not a known IANA time zone") from err


def _wall_time_in(zone: ZoneInfo, wall: datetime) -> datetime:
    """Reads a wall time in a zone: a time skipped by daylight saving is refused, a repeated one is the first."""
    local = wall.replace(tzinfo=zone, fold=0)
    round_trip = local.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if round_trip != wall:
        raise InvalidInput(
            "appointment_time", f"{wall:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip it)"
        )
    return local


def parse_appointment(value: Any, zone: ZoneInfo | None) -> tuple[datetime, str]:
    """The appointment as aware UTC, and its wall time where the client said it is."""
    if not isinstance(value, str):
        raise InvalidInput("appointment_time", "must be an ISO 8601 string such as 2026-12-01T09:30-0500")
    match = _APPOINTMENT.match(value.strip())
    if not match:
        raise InvalidInput(
            "appointment_time", "must be ISO 8601 with minutes or seconds, such as 2026-12-01T09:30-0500"
        )
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        wall = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError as err:
        raise InvalidInput("appointment_time", f"is not a real date and time ({err})") from err
    try:
        if offset is not None:
            aware = wall.replace(tzinfo=_parse_offset(offset))
            shown = aware.astimezone(zone) if zone is not None else aware
        elif zone is not None:
            aware = _wall_time_in(zone, wall)
            shown = aware
        else:
            raise InvalidInput("timezone", "is required when appointment_time has no UTC offset")
        appointment = aware.astimezone(UTC)
        user_dt = shown.strftime(USER_DT_FORMAT)
    except OverflowError as err:
        # Year 1 or 9999 moved across a UTC offset leaves the range of dates Python can hold.
        raise InvalidInput("appointment_time", "is out of range") from err
    if appointment >= LATEST_APPOINTMENT:
        raise InvalidInput("appointment_time", f"must be before {LATEST_APPOINTMENT:%Y-%m-%d}")
    return appointment, user_dt


def parse_window(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a whole number of hours")
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        try:
            value = int(value.strip())
        except ValueError as err:  # longer than Python's int-from-string digit limit
            raise InvalidInput(field, f"must be between 0 and {MAX_NOTIFY_WINDOW} hours") from err
    if not isinstance(value, int):
        raise InvalidInput(field, "must be a whole number of hours")
    if not 0 <= value <= MAX_NOTIFY_WINDOW:
        raise InvalidInput(field, f"must be between 0 and {MAX_NOTIFY_WINDOW} hours")
    return value


def parse_windows(body: dict[str, Any]) -> list[int]:
    single = body.get("notify_window")
    several = body.get("notify_windows")
    if single is None and several is None:
        raise InvalidInput("notify_window", "is required")
    if single is not None and several is not None:
        raise InvalidInput("notify_windows", "give notify_window or notify_windows, not both")
    if single is not None:
        return [parse_window(single, "notify_window")]
    if not isinstance(several, list) or not several:
        raise InvalidInput("notify_windows", "must be a list of whole hours")
    if len(several) > MAX_NOTIFY_WINDOWS:
        raise InvalidInput("notify_windows", f"may hold at most {MAX_NOTIFY_WINDOWS} windows")
    windows = [parse_window(w, "notify_windows") for w in several]
    if len(set(windows)) != len(windows):
        raise InvalidInput("notify_windows", "must not repeat a window")
    return sorted(windows, reverse=True)


def clean_text(value: Any, field: str, limit: int) -> str:
    """A string PostgreSQL can store and a provider can send: no NUL, no lone surrogates, not too long."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if "\x00" in value:
        raise InvalidInput(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidInput(field, "must be valid Unicode text") from err
    if len(value) > limit:
        raise InvalidInput(field, f"must be at most {limit} characters")
    return value


def parse_text(body: dict[str, Any], field: str, limit: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    return clean_text(value, field, limit) or None


def parse_language(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidInput("language", "must be an arrow locale name such as en_us or fr")
    try:
        get_locale(value)
    except (ValueError, KeyError) as err:
        raise InvalidInput("language", f"{value!r} is not a locale arrow knows") from err
    return value.lower()


@dataclass(frozen=True)
class NewReminder:
    contact_number: str
    appointment: datetime
    appt_user_dt: str
    notify_windows: list[int]
    timezone: str | None
    location: str | None
    participant: str | None
    language: str | None
    notify_at: list[datetime]

    def to_input(self, reminder_id: str | None = None) -> ReminderInput:
        return ReminderInput(
            reminder_id=reminder_id or uuid.uuid4().hex,
            contact_number=self.contact_number,
            appointment=self.appointment,
            appt_user_dt=self.appt_user_dt,
            notify_windows=list(self.notify_windows),
            timezone=self.timezone,
            location=self.location,
            participant=self.participant,
            language=self.language,
            notify_at=list(self.notify_at),
            version=WORKFLOW_VERSION,
        )


def parse_new_reminder(body: Any, now: datetime, quiet: QuietHours | None = None) -> NewReminder:
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    for required in ("contact_number", "appointment_time"):
        if body.get(required) is None:
            raise InvalidInput(required, "is required")
    contact = parse_contact_number(body["contact_number"])
    zone = parse_timezone(body.get("timezone"))
    appointment, user_dt = parse_appointment(body["appointment_time"], zone)
    windows = parse_windows(body)
    if appointment <= now:
        raise InvalidInput("appointment_time", "is in the past")
    zone_name = zone.key if zone is not None else None
    return NewReminder(
        contact_number=contact,
        appointment=appointment,
        appt_user_dt=user_dt,
        notify_windows=windows,
        timezone=zone_name,
        location=parse_text(body, "location", MAX_LOCATION),
        participant=parse_text(body, "participant", MAX_PARTICIPANT),
        language=parse_language(body.get("language")),
        notify_at=notify_times(
            appointment, windows, reminder_zone(zone_name, appointment, user_dt, contact), quiet
        ),
    )


CHANGEABLE = (
    "appointment_time",
    "timezone",
    "notify_window",
    "notify_windows",
    "location",
    "participant",
    "language",
)


def parse_change(body: Any, current: Any, now: datetime, quiet: QuietHours | None = None) -> Reschedule:
    """A PATCH merged with the reminder as it is (`current` is its mirror row); absent fields keep their
    value, a null location, participant or language clears it."""
    if not isinstance(body, dict):
        raise InvalidInput("body", "must be a JSON object")
    unknown = sorted(set(body) - set(CHANGEABLE))
    if unknown:
        raise InvalidInput(unknown[0], f"cannot be changed; changeable: {', '.join(CHANGEABLE)}")
    if not body:
        raise InvalidInput("body", f"names nothing to change; changeable: {', '.join(CHANGEABLE)}")
    if "timezone" in body and "appointment_time" not in body:
        raise InvalidInput("timezone", "can only change together with appointment_time")
    zone_name = current["timezone"]
    if "timezone" in body:
        zone = parse_timezone(body["timezone"])
        zone_name = zone.key if zone is not None else None
    if "appointment_time" in body:
        if body["appointment_time"] is None:
            raise InvalidInput("appointment_time", "cannot be removed")
        appointment, user_dt = parse_appointment(
            body["appointment_time"], ZoneInfo(zone_name) if zone_name else None
        )
    else:
        appointment, user_dt = current["appointment"], current["appt_user_dt"]
    if appointment <= now:
        raise InvalidInput("appointment_time", "is in the past")
    if "notify_window" in body or "notify_windows" in body:
        windows = parse_windows(body)
    else:
        windows = list(current["notify_windows"]) or [
            round((appointment - t).total_seconds() / 3600) for t in current["notify_times"]
        ]
    return Reschedule(
        appointment=appointment,
        appt_user_dt=user_dt,
        notify_windows=windows,
        notify_at=notify_times(
            appointment,
            windows,
            reminder_zone(zone_name, appointment, user_dt, current.get("contact_number")),
            quiet,
        ),
        timezone=zone_name,
        location=parse_text(body, "location", MAX_LOCATION) if "location" in body else current["location"],
        participant=(
            parse_text(body, "participant", MAX_PARTICIPANT)
            if "participant" in body
            else current["participant"]
        ),
        language=parse_language(body.get("language")) if "language" in body else current["language"],
    )


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:
        raise InvalidInput("body", "must be a JSON object (UTF-8)") from err
