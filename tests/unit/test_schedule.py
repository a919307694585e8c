"""Quiet hours, notify times and PATCH merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from api.validation import InvalidInput, parse_change
from rules.schedule import QuietHours, notify_times, reminder_zone

NY = ZoneInfo("America/New_York")
QUIET = QuietHours.parse("21:00-08:00")


def local(y, mo, d, h, mi, zone=NY) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=zone).astimezone(UTC)


def test_parse_and_refuse():
    assert QuietHours.parse(None) is None
    assert QuietHours.parse("") is None
    with pytest.raises(ValueError):
        QuietHours.parse("9pm-8am")


@pytest.mark.parametrize(
    ("notify", "appointment", "expected"),
    [
        # Outside the window: untouched.
        (local(2027, 1, 5, 12, 0), local(2027, 1, 5, 13, 0), local(2027, 1, 5, 12, 0)),
        # 23:00 before a 10:00 appointment: moves to the window's end, 08:00 next morning.
        (local(2027, 1, 5, 23, 0), local(2027, 1, 6, 10, 0), local(2027, 1, 6, 8, 0)),
        # 07:00 before an 08:30 appointment: 08:00 is still before it.
        (local(2027, 1, 6, 7, 0), local(2027, 1, 6, 8, 30), local(2027, 1, 6, 8, 0)),
        # 06:00 before a 07:30 appointment: the end is too late, so the window's start, 21:00 the evening before.
        (local(2027, 1, 6, 6, 0), local(2027, 1, 6, 7, 30), local(2027, 1, 5, 21, 0)),
        # Exactly at the end of the window is outside it.
        (local(2027, 1, 6, 8, 0), local(2027, 1, 6, 9, 0), local(2027, 1, 6, 8, 0)),
    ],
)
def test_quiet_hours_adjust(notify, appointment, expected):
    assert QUIET.adjust(notify, appointment, NY) == expected


def test_daytime_window_does_not_wrap():
    lunch = QuietHours.parse("12:00-13:00")
    assert lunch.contains(datetime(2027, 1, 1, 12, 30).time())
    assert not lunch.contains(datetime(2027, 1, 1, 23, 30).time())


def test_notify_times_use_the_fixed_offset_without_a_zone():
    appointment = datetime(2027, 1, 6, 18, 0, tzinfo=UTC)  # 10:00 at -08:00
    zone = reminder_zone(None, appointment, "2027-01-06 10:00:00")
    assert zone == timezone(timedelta(hours=-8))
    # 12 h before is 22:00 local: moved to 08:00 local = 16:00 UTC.
    assert notify_times(appointment, [12, 1], zone, QUIET) == [
        datetime(2027, 1, 6, 16, 0, tzinfo=UTC),
        datetime(2027, 1, 6, 17, 0, tzinfo=UTC),
    ]


CURRENT = {
    "timezone": "America/New_York",
    "appointment": local(2027, 3, 1, 10, 0),
    "appt_user_dt": "2027-03-01 10:00:00",
    "notify_windows": [24],
    "notify_times": [local(2027, 2, 28, 10, 0)],
    "location": "West Side",
    "participant": "Dr Smith",
    "language": None,
}
NOW = datetime(2027, 1, 1, tzinfo=UTC)


def test_change_keeps_absent_fields_and_clears_nulls():
    change = parse_change({"appointment_time": "2027-03-02T11:30", "participant": None}, CURRENT, NOW)
    assert change.appointment == local(2027, 3, 2, 11, 30)
    assert change.appt_user_dt == "2027-03-02 11:30:00"
    assert change.notify_windows == [24] and change.notify_at == [local(2027, 3, 1, 11, 30)]
    assert change.location == "West Side" and change.participant is None


def test_change_of_windows_only():
    change = parse_change({"notify_windows": [48, 2]}, CURRENT, NOW)
    assert change.appointment == CURRENT["appointment"]
    assert change.notify_at == [local(2027, 2, 27, 10, 0), local(2027, 3, 1, 8, 0)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ([], "body"),
        ({"contact_number": "12223334444"}, "contact_number"),
        ({"timezone": "Europe/Paris"}, "timezone"),
        ({"appointment_time": None}, "appointment_time"),
        ({"appointment_time": "2026-01-01T10:00Z"}, "appointment_time"),
        ({"appointment_time": "2027-03-14T02:30"}, "appointment_time"),
        ({"notify_windows": [1, 1]}, "notify_windows"),
        ({"location": "x" * 129}, "location"),
        ({"language": "xx_nowhere"}, "language"),
    ],
)
def test_bad_changes_name_the_field(body, field):
    with pytest.raises(InvalidInput) as err:
        parse_change(body, CURRENT, NOW)
    assert err.value.field == field
