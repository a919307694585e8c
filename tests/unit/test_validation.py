"""api.validation: every rule of CONTRACT's POST /reminder table, on both sides of each limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.validation import (
    InvalidInput,
    NewReminder,
    parse_appointment,
    parse_contact_number,
    parse_new_reminder,
)

NOW = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
DROP = object()  # marks a field to leave out of the body

VALID: dict[str, Any] = {
    "contact_number": "12025550123",
    "appointment_time": "2026-12-01T09:30-0500",
    "notify_window": 24,
}


def body_with(**changes: Any) -> dict[str, Any]:
    body = dict(VALID)
    for key, value in changes.items():
        if value is DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


# (case id, changes to the valid body)
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    # contact_number
    ("contact-seed-string", {"contact_number": "12025550123"}),
    ("contact-seed-int", {"contact_number": 12025550123}),
    ("contact-e164-8-digits", {"contact_number": "+49301234"}),
    ("contact-e164-15-digits", {"contact_number": "+491234567890123"}),
    ("contact-e164-us", {"contact_number": "+12025550123"}),
    # appointment_time
    ("appt-offset-hhmm", {"appointment_time": "2026-12-01T09:30-0800"}),
    ("appt-offset-hh:mm", {"appointment_time": "2026-12-01T09:30+01:00"}),
    ("appt-offset-z", {"appointment_time": "2026-12-01T09:30Z"}),
    ("appt-seconds", {"appointment_time": "2026-12-01T09:30:15+01:00"}),
    ("appt-leap-day", {"appointment_time": "2028-02-29T10:00Z"}),
    ("appt-one-second-after-now", {"appointment_time": "2026-11-24T00:00:01Z"}),
    ("appt-no-offset-with-timezone", {"appointment_time": "2026-12-01T09:30", "timezone": "Europe/Paris"}),
    # notify_window
    ("window-0", {"notify_window": 0}),
    ("window-8760", {"notify_window": 8760}),
    ("window-numeric-string", {"notify_window": "1"}),
    ("window-numeric-string-8760", {"notify_window": "8760"}),
    # notify_windows
    ("windows-list", {"notify_window": DROP, "notify_windows": [1, 48, 24]}),
    ("windows-five", {"notify_window": DROP, "notify_windows": [0, 1, 2, 3, 4]}),
    ("windows-one", {"notify_window": DROP, "notify_windows": [8760]}),
    # location / participant
    ("location-128", {"location": "L" * 128}),
    ("participant-256", {"participant": "P" * 256}),
    ("location-unicode", {"location": "Café Zoë, 2ᵉ étage"}),
    # timezone / language
    ("timezone-iana", {"timezone": "America/New_York"}),
    ("timezone-utc", {"timezone": "UTC"}),
    ("language-fr", {"language": "fr"}),
    ("language-en_us", {"language": "en_us"}),
]


@pytest.mark.parametrize("changes", [c for _, c in ACCEPTED], ids=[i for i, _ in ACCEPTED])
def test_accepted(changes: dict[str, Any]) -> None:
    new = parse_new_reminder(body_with(**changes), NOW)
    assert isinstance(new, NewReminder)
    assert new.appointment > NOW
    assert new.appointment.utcoffset() is not None and new.appointment.utcoffset().total_seconds() == 0
    assert new.contact_number.isdigit() and new.contact_number.isascii()


# (case id, changes, the field the refusal must name)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # body
    # contact_number
    ("contact-missing", {"contact_number": DROP}, "contact_number"),
    ("contact-null", {"contact_number": None}, "contact_number"),
    ("contact-10-digits", {"contact_number": "2025550123"}, "contact_number"),
    ("contact-12-digits", {"contact_number": "120255501234"}, "contact_number"),
    ("contact-11-not-1", {"contact_number": "22025550123"}, "contact_number"),
    ("contact-int-10-digits", {"contact_number": 2025550123}, "contact_number"),
    ("contact-e164-7-digits", {"contact_number": "+4930123"}, "contact_number"),
    ("contact-e164-16-digits", {"contact_number": "+4912345678901234"}, "contact_number"),
    ("contact-e164-leading-0", {"contact_number": "+04930123456"}, "contact_number"),
    ("contact-letters", {"contact_number": "1202555012a"}, "contact_number"),
    ("contact-dashes", {"contact_number": "1-202-555-0123"}, "contact_number"),
    ("contact-empty", {"contact_number": ""}, "contact_number"),
    ("contact-bool", {"contact_number": True}, "contact_number"),
    ("contact-float", {"contact_number": 12025550123.0}, "contact_number"),
    ("contact-list", {"contact_number": ["12025550123"]}, "contact_number"),
    # Arabic-Indic digits are \d to Python's re, but not digits a carrier can dial.
    ("contact-non-ascii-digits", {"contact_number": "1٢٠٢٥٥٥٠١٢٣"}, "contact_number"),
    # appointment_time
    ("appt-missing", {"appointment_time": DROP}, "appointment_time"),
    ("appt-not-string", {"appointment_time": 1796000000}, "appointment_time"),
    ("appt-date-only", {"appointment_time": "2026-12-01"}, "appointment_time"),
    ("appt-hours-only", {"appointment_time": "2026-12-01T09Z"}, "appointment_time"),
    ("appt-fractional-seconds", {"appointment_time": "2026-12-01T09:30:15.5+01:00"}, "appointment_time"),
    ("appt-fractional-seconds-z", {"appointment_time": "2026-12-01T09:30:15.000Z"}, "appointment_time"),
    ("appt-no-offset-no-timezone", {"appointment_time": "2026-12-01T09:30"}, "timezone"),
    ("appt-feb-30", {"appointment_time": "2027-02-30T10:00Z"}, "appointment_time"),
    ("appt-feb-29-non-leap", {"appointment_time": "2027-02-29T10:00Z"}, "appointment_time"),
    ("appt-month-13", {"appointment_time": "2027-13-01T10:00Z"}, "appointment_time"),
    ("appt-hour-24", {"appointment_time": "2026-12-01T24:00Z"}, "appointment_time"),
    ("appt-minute-60", {"appointment_time": "2026-12-01T10:60Z"}, "appointment_time"),
    ("appt-offset-too-large", {"appointment_time": "2026-12-01T10:00+15:00"}, "appointment_time"),
    ("appt-in-the-past", {"appointment_time": "2026-11-23T23:59Z"}, "appointment_time"),
    ("appt-long-past", {"appointment_time": "2016-07-06T15:23-0800"}, "appointment_time"),
    ("appt-exactly-now", {"appointment_time": "2026-11-24T00:00Z"}, "appointment_time"),
    ("appt-exactly-now-other-offset", {"appointment_time": "2026-11-23T19:00-0500"}, "appointment_time"),
    ("appt-garbage", {"appointment_time": "next tuesday"}, "appointment_time"),
    # notify_window
    ("window-missing", {"notify_window": DROP}, "notify_window"),
    ("window--1", {"notify_window": -1}, "notify_window"),
    ("window-8761", {"notify_window": 8761}, "notify_window"),
    ("window-string-8761", {"notify_window": "8761"}, "notify_window"),
    ("window-string--1", {"notify_window": "-1"}, "notify_window"),
    ("window-string-1.5", {"notify_window": "1.5"}, "notify_window"),
    ("window-float-1.5", {"notify_window": 1.5}, "notify_window"),
    ("window-float-1.0", {"notify_window": 1.0}, "notify_window"),
    ("window-true", {"notify_window": True}, "notify_window"),
    ("window-false", {"notify_window": False}, "notify_window"),
    ("window-word", {"notify_window": "one"}, "notify_window"),
    ("window-empty-string", {"notify_window": ""}, "notify_window"),
    # int("9" * 5000) raises a plain ValueError (Python's digit limit), not InvalidInput.
    ("window-5000-digit-string", {"notify_window": "9" * 5000}, "notify_window"),
    # notify_windows
    ("windows-six", {"notify_window": DROP, "notify_windows": [0, 1, 2, 3, 4, 5]}, "notify_windows"),
    ("windows-repeat", {"notify_window": DROP, "notify_windows": [24, 24]}, "notify_windows"),
    ("windows-repeat-as-string", {"notify_window": DROP, "notify_windows": [24, "24"]}, "notify_windows"),
    ("windows-empty", {"notify_window": DROP, "notify_windows": []}, "notify_windows"),
    ("windows-not-list", {"notify_window": DROP, "notify_windows": 24}, "notify_windows"),
    ("windows-element-too-big", {"notify_window": DROP, "notify_windows": [1, 8761]}, "notify_windows"),
    ("windows-element-bool", {"notify_window": DROP, "notify_windows": [True]}, "notify_windows"),
    ("windows-and-window", {"notify_windows": [1, 2]}, "notify_windows"),
    # location / participant
    ("location-129", {"location": "L" * 129}, "location"),
    ("location-nul", {"location": "Room\x001"}, "location"),
    ("location-not-string", {"location": 12}, "location"),
    ("participant-257", {"participant": "P" * 257}, "participant"),
    ("participant-nul", {"participant": "Dr\x00 Who"}, "participant"),
    ("participant-not-string", {"participant": ["Dr Who"]}, "participant"),
    # timezone
    ("timezone-bogus", {"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ("timezone-empty", {"timezone": ""}, "timezone"),
    ("timezone-not-string", {"timezone": -5}, "timezone"),
    ("timezone-nul", {"timezone": "UTC\x00"}, "timezone"),
    ("timezone-path", {"timezone": "../../etc/passwd"}, "timezone"),
    # These two made ZoneInfo raise OSError (a directory, a name too long), not ZoneInfoNotFoundError.
    ("timezone-a-directory", {"timezone": "America"}, "timezone"),
    ("timezone-very-long", {"timezone": "A" * 300}, "timezone"),
    # language
    ("language-bogus", {"language": "klingon"}, "language"),
    ("language-empty", {"language": ""}, "language"),
    ("language-not-string", {"language": 7}, "language"),
    ("language-nul", {"language": "fr\x00"}, "language"),
]


@pytest.mark.parametrize(
    ("changes", "field"), [(c, f) for _, c, f in REFUSED], ids=[i for i, _, _ in REFUSED]
)
def test_refused_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_new_reminder(body_with(**changes), NOW)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize("body", [[], [VALID], "body", 3, None, True], ids=repr)
def test_body_that_is_not_an_object(body: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_new_reminder(body, NOW)
    assert caught.value.field == "body"


def test_the_valid_body_is_read_in_full() -> None:
    new = parse_new_reminder(
        body_with(
            contact_number="+442071234567",
            location="Main St Clinic",
            participant="Dr. Smith",
            timezone="America/Chicago",
            language="FR",
        ),
        NOW,
    )
    assert new.contact_number == "442071234567"
    assert new.appointment == datetime(2026, 12, 1, 14, 30, tzinfo=UTC)
    # The offset given wins; the wall time is shown in the client's zone (-06:00 in December).
    assert new.appt_user_dt == "2026-12-01 08:30:00"
    assert new.notify_windows == [24]
    assert new.timezone == "America/Chicago"
    assert (new.location, new.participant, new.language) == ("Main St Clinic", "Dr. Smith", "fr")


def test_contact_number_forms_are_answered_as_digits() -> None:
    assert parse_new_reminder(body_with(contact_number=12025550123), NOW).contact_number == "12025550123"
    assert parse_new_reminder(body_with(contact_number="+49301234"), NOW).contact_number == "49301234"
    assert parse_new_reminder(body_with(contact_number=" 12025550123 "), NOW).contact_number == "12025550123"


def test_optional_fields_default_to_none() -> None:
    new = parse_new_reminder(body_with(location="", participant=None), NOW)
    assert (new.location, new.participant, new.timezone, new.language) == (None, None, None, None)


@pytest.mark.parametrize(
    ("value", "expected"), [(0, [0]), (8760, [8760]), ("1", [1]), (" 72 ", [72]), ("007", [7])]
)
def test_notify_window_values(value: Any, expected: list[int]) -> None:
    assert parse_new_reminder(body_with(notify_window=value), NOW).notify_windows == expected


def test_notify_windows_are_sorted_furthest_first() -> None:
    new = parse_new_reminder(body_with(notify_window=DROP, notify_windows=[1, "48", 24]), NOW)
    assert new.notify_windows == [48, 24, 1]


def test_to_input_carries_everything() -> None:
    new = parse_new_reminder(body_with(location="Here", participant="Me", timezone="UTC"), NOW)
    inp = new.to_input("ab" * 16)
    assert inp.reminder_id == "ab" * 16
    assert (inp.contact_number, inp.appointment, inp.appt_user_dt) == (
        new.contact_number,
        new.appointment,
        new.appt_user_dt,
    )
    assert inp.notify_windows == [24] and inp.location == "Here" and inp.participant == "Me"
    generated = new.to_input().reminder_id
    assert len(generated) == 32 and int(generated, 16) >= 0 and generated == generated.lower()


# --- UTC and wall time -------------------------------------------------------------------------------


def test_seed_example_is_converted_to_utc() -> None:
    new = parse_new_reminder(
        body_with(appointment_time="2016-07-06T15:23-0800"), datetime(2016, 1, 1, tzinfo=UTC)
    )
    assert new.appointment == datetime(2016, 7, 6, 23, 23, tzinfo=UTC)
    assert new.appt_user_dt == "2016-07-06 15:23:00"


@pytest.mark.parametrize(
    ("text", "utc", "wall"),
    [
        ("2026-12-01T09:30-0800", datetime(2026, 12, 1, 17, 30, tzinfo=UTC), "2026-12-01 09:30:00"),
        ("2026-12-01T09:30:15+01:00", datetime(2026, 12, 1, 8, 30, 15, tzinfo=UTC), "2026-12-01 09:30:15"),
        ("2026-12-01T09:30Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "2026-12-01 09:30:00"),
        ("2026-12-01T09:30+0530", datetime(2026, 12, 1, 4, 0, tzinfo=UTC), "2026-12-01 09:30:00"),
        ("2026-12-01T00:30+02", datetime(2026, 11, 30, 22, 30, tzinfo=UTC), "2026-12-01 00:30:00"),
    ],
)
def test_offsets(text: str, utc: datetime, wall: str) -> None:
    assert parse_appointment(text, None) == (utc, wall)


@pytest.mark.parametrize(
    ("zone", "text", "utc"),
    [
        ("America/New_York", "2026-12-01T09:30", datetime(2026, 12, 1, 14, 30, tzinfo=UTC)),  # EST
        ("America/New_York", "2027-07-01T09:30", datetime(2027, 7, 1, 13, 30, tzinfo=UTC)),  # EDT
        ("America/New_York", "2027-03-14T01:59", datetime(2027, 3, 14, 6, 59, tzinfo=UTC)),
        ("America/New_York", "2027-03-14T03:00", datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),
        # Fall back: 01:30 happens twice; the first (EDT, UTC-4) is meant.
        ("America/New_York", "2027-11-07T01:30", datetime(2027, 11, 7, 5, 30, tzinfo=UTC)),
        ("America/New_York", "2027-11-07T02:30", datetime(2027, 11, 7, 7, 30, tzinfo=UTC)),
        # Fall back: 02:30 happens twice; the first (CEST, UTC+2) is meant.
        ("Europe/Berlin", "2027-10-31T02:30", datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        ("Europe/Berlin", "2027-03-28T03:00", datetime(2027, 3, 28, 1, 0, tzinfo=UTC)),
        # Lord Howe moves its clocks by half an hour.
        ("Australia/Lord_Howe", "2027-10-03T02:45", datetime(2027, 10, 2, 15, 45, tzinfo=UTC)),
        ("Australia/Lord_Howe", "2027-04-04T01:45", datetime(2027, 4, 3, 14, 45, tzinfo=UTC)),
    ],
)
def test_wall_times_in_a_zone(zone: str, text: str, utc: datetime) -> None:
    new = parse_new_reminder(body_with(appointment_time=text, timezone=zone), NOW)
    assert new.appointment == utc
    assert new.appt_user_dt == text.replace("T", " ") + ":00"
    assert new.timezone == zone


@pytest.mark.parametrize(
    ("zone", "text"),
    [
        ("America/New_York", "2027-03-14T02:30"),
        ("America/New_York", "2027-03-14T02:00"),
        ("Europe/Berlin", "2027-03-28T02:30"),
        ("Europe/Berlin", "2027-03-28T02:59:59"),
        ("Australia/Lord_Howe", "2027-10-03T02:15"),
    ],
)
def test_wall_times_the_clocks_skip_are_refused(zone: str, text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_new_reminder(body_with(appointment_time=text, timezone=zone), NOW)
    assert caught.value.field == "appointment_time"
    assert "does not exist" in str(caught.value)


def test_an_offset_inside_a_skipped_hour_is_still_an_instant() -> None:
    utc, wall = parse_appointment("2027-03-14T02:30-0500", ZoneInfo("America/New_York"))
    assert utc == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert wall == "2027-03-14 03:30:00"


@pytest.mark.parametrize("number", ["+99912345678", "+2901234567890", "+8001234"])
def test_impossible_numbers_are_refused_naming_the_field(number: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_contact_number(number)
    assert caught.value.field == "contact_number"


@pytest.mark.parametrize("number", ["12223334444", "+12223334444", "+442071234567", "+4915123456789"])
def test_possible_numbers_pass_even_when_not_assigned(number: str) -> None:
    assert parse_contact_number(number) == number.lstrip("+")


def test_the_request_model_is_the_check_and_the_document() -> None:
    from api.schemas import ReminderRequest

    body = {"contact_number": "12223334444", "appointment_time": "2026-12-01T10:00+00:00", "notify_window": 1}
    parsed = ReminderRequest.read(body, now=NOW)
    assert parsed == parse_new_reminder(body, NOW)
    for bad in ([1], {"appointment_time": "2026-12-01T10:00+00:00"}, {**body, "notify_window": -1}):
        with pytest.raises(InvalidInput) as by_model:
            ReminderRequest.read(bad, now=NOW)
        with pytest.raises(InvalidInput) as by_function:
            parse_new_reminder(bad, NOW)
        assert str(by_model.value) == str(by_function.value)
    assert {"contact_number", "appointment_time", "notify_window"} <= set(
        ReminderRequest.model_json_schema()["properties"]
    )
