"""The business side's logic: signatures, event payloads, appointment ranges, report days, CSV cells."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api.csv import CSV_FIELDS, csv_cell, csv_line
from api.dates import midnights, parse_range, report_days
from api.validation import InvalidInput
from db.views import event_view
from events.ids import event_id, event_number
from events.signing import headers, secret_bytes

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()
NEW_YORK = ZoneInfo("America/New_York")


def test_our_signature_is_the_one_the_reference_library_verifies():
    body = json.dumps({"type": "reminder.sent", "data": {"reminder_id": "r"}})
    now = int(datetime.now(UTC).timestamp())
    signed = headers(secret_bytes(SECRET), "evt_7", now, body)
    assert Webhook(SECRET).verify(body, signed) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + " ", signed)
    other = "whsec_" + base64.b64encode(b"another secret of twenty").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, signed)


def test_without_a_secret_the_event_goes_unsigned():
    assert "webhook-signature" not in headers(None, "evt_1", 1, "{}")


@pytest.mark.parametrize("secret", ["whsec_", "whsec_c2hvcnQ=", "whsec_!!!!"])
def test_a_secret_too_short_or_not_base64_is_refused(secret: str):
    with pytest.raises(ValueError):
        secret_bytes(secret)


def test_event_ids_round_trip_and_refuse_anything_else():
    assert event_number(event_id(42)) == 42
    for bad in ["evt_", "evt_-1", "evt_4a", "evt_" + "9" * 19, "evt_٣"]:
        assert event_number(bad) is None


def test_an_event_shows_the_reminder_as_get_does():
    saved = {
        "reminder_id": "a" * 32,
        "contact_number": "12223334444",
        "appointment": "2026-12-08T19:00:00+00:00",
        "appt_user_dt": "2026-12-08 14:00:00",
        "notify_times": ["2026-12-08T18:00:00+00:00"],
        "notify_windows": [1],
        "timezone": "America/New_York",
        "location": "West Side",
        "participant": None,
        "language": None,
        "reminder_sent": True,
        "will_attend": True,
        "confirm_sent": True,
        "status": "confirmed",
        "segments": 1,
        "reason": None,
        "delivery_status": "delivered",
        "sent_at": "2026-12-08T18:00:01.5+00:00",
        "deleted_at": None,
        "request_hash": "not shown",
    }
    at = datetime(2026, 12, 8, 18, 5, tzinfo=UTC)
    event = event_view("reminder.confirmed", at, saved)
    assert event["type"] == "reminder.confirmed"
    assert event["timestamp"] == "2026-12-08T18:05:00+00:00"
    data = event["data"]
    assert data["appt_sys_dt"] == "2026-12-08 19:00:00" and data["notify_sys_dt"] == "2026-12-08 18:00:00"
    assert data["status"] == "confirmed" and "request_hash" not in data
    assert set(data) == set(CSV_FIELDS)
    deleted = event_view("reminder.deleted", at, {**saved, "deleted_at": "2026-12-08T18:04:00+00:00"})
    assert deleted["data"]["status"] == "deleted"


def test_a_date_range_is_whole_local_days_and_an_instant_range_includes_its_end():
    span = parse_range("2026-03-08", "2026-03-08", NEW_YORK)  # the day the clocks go forward: 23 hours
    assert span.start == datetime(2026, 3, 8, 5, tzinfo=UTC)
    assert span.end is not None and span.start is not None
    assert span.end.astimezone(UTC) - span.start.astimezone(UTC) == timedelta(hours=23)
    instants = parse_range("2026-03-08T10:00:00Z", "2026-03-08T11:00:00+00:00", NEW_YORK)
    assert instants.end == datetime(2026, 3, 8, 11, tzinfo=UTC) + timedelta(microseconds=1)
    naive = parse_range("2026-03-09T09:00", None, NEW_YORK)
    assert naive.start == datetime(2026, 3, 9, 13, tzinfo=UTC) and naive.end is None


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("2026-02-30", None, "from"),
        ("tomorrow", None, "from"),
        (None, "0001-01-01", "to"),
        ("2026-01-02", "2026-01-01", "to"),
        ("9999-12-31", None, "from"),
        ("", None, "from"),
        ("2026-01-01T25:00", None, "from"),
    ],
)
def test_a_bad_range_names_its_field(start, end, field):
    with pytest.raises(InvalidInput) as caught:
        parse_range(start, end, NEW_YORK)
    assert caught.value.field == field


def test_report_days_default_to_the_week_to_today_and_are_capped():
    today = date(2026, 12, 1)
    assert report_days(None, None, NEW_YORK, today) == [today - timedelta(days=6 - i) for i in range(7)]
    assert len(report_days("2026-01-01", None, NEW_YORK, today)) == 7
    assert len(report_days("2026-01-01", "2026-12-31", NEW_YORK, today)) == 365
    with pytest.raises(InvalidInput) as caught:
        report_days("2026-01-01", "2027-03-01", NEW_YORK, today)
    assert caught.value.field == "to"


def test_midnights_follow_daylight_saving():
    bounds = midnights([date(2026, 11, 1)], NEW_YORK)  # clocks go back: a 25-hour day
    assert bounds[1].astimezone(UTC) - bounds[0].astimezone(UTC) == timedelta(hours=25)


def test_csv_cells_keep_numbers_and_defuse_formulas():
    assert csv_cell(None) == "" and csv_cell(True) == "true" and csv_cell([1, 24]) == "1;24"
    assert csv_cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert csv_cell("-12") == "-12" and csv_cell("+cmd") == "'+cmd"
    assert csv_line(["a,b", 'say "hi"']) == '"a,b","say ""hi"""\r\n'
