"""How a reminder's state is written to its mirror row: the columns, and the upsert whose sequence guard lets
the newest state win whatever order the writes land in."""

from __future__ import annotations

import re
from typing import Any

from workflows.models import ReminderState

STATE_COLUMNS = (
    "reminder_id, contact_number, appointment, appt_user_dt, notify_times, timezone, location, participant,"
    " language, status, reminder_sent, will_attend, confirm_sent, sent_at, seq, notify_windows, generation,"
    " wanted_send, reason"
)
STATE_ARGS = 19
STATE_VALUES = ", ".join(f"${i}" for i in range(1, STATE_ARGS + 1))
# Writes the workflow's state unless a newer one is already there.
UPSERT_STATE = (
    f"INSERT INTO reminders ({STATE_COLUMNS}) VALUES ({STATE_VALUES})"
    " ON CONFLICT (reminder_id) DO UPDATE SET"
    " contact_number = EXCLUDED.contact_number, appointment = EXCLUDED.appointment,"
    " appt_user_dt = EXCLUDED.appt_user_dt, notify_times = EXCLUDED.notify_times,"
    " timezone = EXCLUDED.timezone, location = EXCLUDED.location,"
    " participant = EXCLUDED.participant, language = EXCLUDED.language, status = EXCLUDED.status,"
    " reminder_sent = EXCLUDED.reminder_sent, will_attend = EXCLUDED.will_attend,"
    " confirm_sent = EXCLUDED.confirm_sent, sent_at = EXCLUDED.sent_at, seq = EXCLUDED.seq,"
    " notify_windows = EXCLUDED.notify_windows, generation = EXCLUDED.generation,"
    " wanted_send = EXCLUDED.wanted_send, reason = EXCLUDED.reason,"
    " updated_at = now()"
    " WHERE reminders.seq < EXCLUDED.seq"
)


def state_args(state: ReminderState) -> tuple[Any, ...]:
    return (
        state.reminder_id,
        state.contact_number,
        state.appointment,
        state.appt_user_dt,
        state.notify_times,
        state.timezone,
        state.location,
        state.participant,
        state.language,
        state.status.value,
        state.reminder_sent,
        state.will_attend,
        state.confirm_sent,
        state.sent_at,
        state.seq,
        state.notify_windows,
        state.generation,
        state.wanted_send,
        state.reason,
    )


def with_state_written(statement: str) -> str:
    """`statement` (a WITH query) that also writes a state, as UPSERT_STATE does, in the same round trip;
    the state's arguments follow the statement's own. A data-modifying WITH runs even when nothing reads
    it; the statement's own reads see the table as it was before it."""
    params = max(int(n) for n in re.findall(r"\$(\d+)", statement))
    upsert = re.sub(r"\$(\d+)", lambda m: f"${int(m.group(1)) + params}", UPSERT_STATE)
    return f"WITH mirrored AS ({upsert} RETURNING 1), {statement.strip().removeprefix('WITH ')}"
