"""When a new reminder's workflow gets its first task: at its first send's arm point, not at its create."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows.activities import arm_ahead, start_delay
from workflows.models import WORKFLOW_VERSION, ReminderInput, initial_state

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def state(appointment_in: timedelta, windows: list[int], reminder_id: str = "a" * 32):
    appointment = NOW + appointment_in
    return initial_state(
        ReminderInput(
            reminder_id=reminder_id,
            contact_number="12223334444",
            appointment=appointment,
            appt_user_dt=appointment.strftime("%Y-%m-%d %H:%M:%S"),
            notify_windows=windows,
            version=WORKFLOW_VERSION,
        )
    )


def test_days_ahead_it_waits_until_its_send_is_armed():
    s = state(timedelta(days=3), [24])
    assert start_delay(s, NOW) == timedelta(days=2) - arm_ahead(s.reminder_id)


def test_each_reminder_has_its_own_arm_point():
    delays = {start_delay(state(timedelta(days=3), [24], f"{i:032x}"), NOW) for i in range(50)}
    assert len(delays) > 10
    assert all(timedelta(days=2, minutes=-5) <= d <= timedelta(days=2, minutes=-1) for d in delays if d)


def test_several_notify_times_wait_for_the_first():
    s = state(timedelta(hours=72), [48, 2])
    assert start_delay(s, NOW) == timedelta(hours=24) - arm_ahead(s.reminder_id)


def test_a_notify_time_already_past_starts_at_once():
    # 48 h before has passed: that reminder goes out now (late), so the workflow starts now.
    assert start_delay(state(timedelta(hours=30), [48, 2]), NOW) is None


def test_a_send_armed_within_its_arm_ahead_starts_at_once():
    s = state(timedelta(hours=1, seconds=59), [1])
    assert arm_ahead(s.reminder_id) > timedelta(minutes=1)
    assert start_delay(s, NOW) is None
    assert start_delay(state(timedelta(minutes=30), [1]), NOW) is None


def test_nothing_left_to_send_starts_at_once():
    s = state(timedelta(days=3), [24])
    s.will_attend = True
    assert start_delay(s, NOW) is None
