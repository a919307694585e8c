"""Quiet hours checked again when a reminder goes out, in the recipient's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules.schedule import QuietHours, quiet_hold
from workflows.models import Purpose, SendRequest, SendResult


def held(window: str, request: SendRequest) -> SendResult | None:
    return quiet_hold(QuietHours.parse(window), request)


def request(appointment_in: timedelta, purpose: Purpose = Purpose.REMINDER) -> SendRequest:
    appointment = datetime.now(UTC) + appointment_in
    return SendRequest(
        reminder_id="r",
        contact_number="12223334444",
        purpose=purpose,
        key="r:reminder:0",
        appt_user_dt=appointment.strftime("%Y-%m-%d %H:%M:%S"),
        appointment=appointment,
        timezone="UTC",
    )


def around_now(before: int, after: int) -> str:
    now = datetime.now(UTC)
    start, end = now - timedelta(minutes=before), now + timedelta(minutes=after)
    return f"{start:%H:%M}-{end:%H:%M}"


def test_inside_quiet_hours_the_reminder_waits_for_their_end():
    result = held(around_now(30, 30), request(timedelta(hours=3)))
    assert result is not None and result.quiet_until is not None
    assert timedelta(minutes=28) < result.quiet_until - datetime.now(UTC) <= timedelta(minutes=31)


def test_quiet_hours_past_the_appointment_mean_not_sent():
    result = held(around_now(30, 120), request(timedelta(hours=1)))
    assert result is not None and result.quiet_past_appointment and result.quiet_until is None


def test_outside_quiet_hours_and_for_answers_nothing_holds_it():
    assert held(around_now(-60, 120), request(timedelta(hours=3))) is None
    assert held(around_now(30, 30), request(timedelta(hours=3), Purpose.CONFIRMATION)) is None
    assert held("off", request(timedelta(hours=3))) is None
