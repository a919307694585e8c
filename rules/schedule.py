"""When a reminder is sent: notify windows, the recipient's zone and quiet hours."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers.timezone import time_zones_for_number

from workflows.models import Purpose, SendRequest, SendResult
from workflows.models import notify_times as base_notify_times

USER_DT_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class QuietHours:
    """A daily window in the reminder's own zone in which no reminder is sent, e.g. 21:00-08:00."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str | None) -> QuietHours | None:
        if not text or text.strip().lower() == "off":
            return None
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
        if not match:
            raise ValueError(f"QUIET_HOURS must look like 21:00-08:00, not {text!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def adjust(self, notify: datetime, appointment: datetime, zone: tzinfo) -> datetime:
        """A notify time inside the window moves to the window's end if that is still before the
        appointment, else to the window's start."""
        local = notify.astimezone(zone)
        if not self.contains(local.timetz().replace(tzinfo=None)):
            return notify
        end = datetime.combine(local.date(), self.end, zone)
        if end <= local:
            end += timedelta(days=1)
        if end.astimezone(UTC) < appointment:
            return end.astimezone(UTC)
        start = datetime.combine(local.date(), self.start, zone)
        if start > local:
            start -= timedelta(days=1)
        return start.astimezone(UTC)


def number_zone(contact_number: str) -> ZoneInfo | None:
    """The number's zone where phonenumbers' data gives exactly one (a New York area code; not a toll-free
    number, which could ring anywhere)."""
    try:
        parsed = phonenumbers.parse(f"+{contact_number}")
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in time_zones_for_number(parsed) if z != "Etc/Unknown"]
    return ZoneInfo(zones[0]) if len(zones) == 1 else None


def reminder_zone(
    timezone_name: str | None, appointment: datetime, appt_user_dt: str, contact_number: str | None = None
) -> tzinfo:
    """The recipient's zone: the reminder's IANA zone; else the number's, when it has exactly one; else the
    fixed offset the appointment time carried (which says nothing of daylight saving)."""
    if timezone_name:
        return ZoneInfo(timezone_name)
    if contact_number and (zone := number_zone(contact_number)) is not None:
        return zone
    wall = datetime.strptime(appt_user_dt, USER_DT_FORMAT)
    return timezone(wall - appointment.replace(tzinfo=None))


def notify_times(
    appointment: datetime, windows: list[int], zone: tzinfo, quiet: QuietHours | None
) -> list[datetime]:
    """The notify-time rule (whole hours before the appointment), with quiet hours applied."""
    times = base_notify_times(appointment, windows)
    if quiet is None:
        return times
    return sorted({quiet.adjust(t, appointment, zone) for t in times})


def quiet_hold(quiet: QuietHours | None, request: SendRequest) -> SendResult | None:
    """Quiet hours checked again as a reminder goes out (it may be late: an outage, a retry); they cover
    reminders, not answers to a contact's own texts. None: it may go now."""
    if quiet is None or request.purpose != Purpose.REMINDER or request.appointment is None:
        return None
    zone = reminder_zone(
        request.timezone, request.appointment, request.appt_user_dt or "", request.contact_number
    )
    now = datetime.now(UTC)
    moved = quiet.adjust(now, request.appointment, zone)
    if moved == now:
        return None
    logging.getLogger("reminders.activities").info(
        "%s: quiet hours where the contact is, until %s", request.key, moved.isoformat()
    )
    if moved > now:
        return SendResult(delivered_to_provider=False, quiet_until=moved)
    return SendResult(delivered_to_provider=False, quiet_past_appointment=True)
