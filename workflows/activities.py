"""How a reminder's workflow calls its activities: by the contract's names, with explicit timeouts and
retry policies. Deterministic; nothing here touches the world."""

from __future__ import annotations

import asyncio
import zlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        MARK_DELETED,
        MIRROR_STATE,
        SEND_MESSAGE,
        Purpose,
        ReminderState,
        SendRequest,
        SendResult,
        next_prompt,
    )

# A reminder due at the appointment itself (notify window 0) may go out this late.
LATE_SEND_GRACE = timedelta(minutes=5)
# How far ahead of its time a reminder dispatches its send: its own point in this range, from its id. The
# server's work for reminders due together (a timer, a workflow task with a replay when not cached, an
# activity dispatch) is then spread over the minutes before them rather than landing at one instant:
# 5,000 due together all armed at 60 s made a second burst the dev server took longer than the minute to
# work through, and the last texts went out 52 s late.
ARM_AHEAD_MIN = timedelta(seconds=60)
ARM_AHEAD_SPREAD_S = 240
# The longest of them: a reminder created further ahead than this is started deferred.
ARM_AHEAD_MAX = ARM_AHEAD_MIN + timedelta(seconds=ARM_AHEAD_SPREAD_S)
# A start deferred by less than this would save its reminder nothing: it is started at once.
MIN_START_DELAY = timedelta(seconds=1)


def arm_ahead(reminder_id: str) -> timedelta:
    return ARM_AHEAD_MIN + timedelta(seconds=zlib.crc32(reminder_id.encode()) % (ARM_AHEAD_SPREAD_S + 1))


def start_delay(state: ReminderState, now: datetime) -> timedelta | None:
    """How long a new reminder's workflow waits before its first task: until its first send is armed. Until
    then it is a row in PostgreSQL and a timer on the server: no workflow task, no history to replay, nothing
    in a worker's cache. None when its send is armed at once (or it has none to send)."""
    _, due = next_prompt(state, 0, now, LATE_SEND_GRACE)
    if due is None:
        return None
    delay = due - arm_ahead(state.reminder_id) - now
    return delay if delay >= MIN_START_DELAY else None


# A send heartbeats while it waits (pacing, a connection, the provider, a database outage while it
# records what the provider accepted), so a dead worker's send is retried within SEND_HEARTBEAT; the
# start-to-close bound leaves room for a long database outage. The fence in PostgreSQL, not these
# timeouts, is what keeps a retried send from going out twice. At 15 s, a live send could be timed out by
# a server still digesting a burst: 5,000 due at one instant, each beating first 2 s after it, and the
# dev server, busy with their completions, had not recorded 57 of those beats 15 s on; those 57 sends were
# retried, 1 to 3 minutes late, and the fence found each one's text already out or asked the provider.
SEND_START_TO_CLOSE = timedelta(minutes=5)
SEND_HEARTBEAT = timedelta(seconds=30)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
MIRROR_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
)
MIRROR_TIMEOUT = timedelta(seconds=10)


async def send(
    state: ReminderState,
    purpose: Purpose,
    key: str,
    mirror: ReminderState | None = None,
    *,
    mirror_before: ReminderState | None = None,
    not_before: datetime | None = None,
    armed: bool = False,
    local: bool = False,
) -> SendResult | None:
    """Sends one message for the reminder; None when the provider refused it for good or the appointment
    came first. `local` runs it as a local activity, inside the workflow task (the answers to replies)."""
    request = SendRequest(
        reminder_id=state.reminder_id,
        contact_number=state.contact_number,
        purpose=purpose,
        key=f"{state.reminder_id}:{key}",
        appt_user_dt=state.appt_user_dt,
        location=state.location,
        participant=state.participant,
        language=state.language,
        mirror=mirror,
        mirror_before=mirror_before,
        not_before=not_before,
        appointment=state.appointment,
        timezone=state.timezone,
        armed=armed,
    )
    now = workflow.now()
    # An armed send holds until its time without heartbeating: its timeouts count the hold in.
    hold = max(not_before - now, timedelta(0)) if not_before is not None else timedelta(0)
    budget = max(state.appointment + LATE_SEND_GRACE - now, SEND_START_TO_CLOSE + hold)
    try:
        if local:
            return await workflow.execute_local_activity(
                SEND_MESSAGE,
                request,
                result_type=SendResult,
                start_to_close_timeout=SEND_START_TO_CLOSE,
                schedule_to_close_timeout=budget,
                retry_policy=SEND_RETRY,
            )
        return await workflow.execute_activity(
            SEND_MESSAGE,
            request,
            result_type=SendResult,
            start_to_close_timeout=SEND_START_TO_CLOSE + hold,
            heartbeat_timeout=SEND_HEARTBEAT + hold,
            schedule_to_close_timeout=budget,
            retry_policy=SEND_RETRY,
        )
    except ActivityError as err:
        if not isinstance(err.cause, CancelledError):
            workflow.logger.warning("send of %s for %s failed for good: %s", purpose.value, key, err.cause)
        return None


def history_too_long(limit: int) -> bool:
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > limit


def count(name: str, description: str, **labels: str) -> None:
    """A counter on the workflow's meter (not counted again on replay)."""
    workflow.metric_meter().create_counter(name, description).with_additional_attributes(labels).add(1)


def write_mirror(state: ReminderState) -> asyncio.Task[None]:
    """Writes a state to the PostgreSQL mirror in the background: the mirror never holds up a reminder."""
    return workflow.start_activity(
        MIRROR_STATE, state, start_to_close_timeout=MIRROR_TIMEOUT, retry_policy=MIRROR_RETRY
    )


async def mark_deleted(reminder_id: str) -> None:
    await workflow.execute_activity(
        MARK_DELETED, reminder_id, start_to_close_timeout=MIRROR_TIMEOUT, retry_policy=MIRROR_RETRY
    )


class Armed:
    """A send armed ahead of its time. A plain class: the sandbox runs the workflow module's body for every
    new reminder, and a dataclass costs a code generation each time."""

    __slots__ = ("task", "sent")

    def __init__(self, task: asyncio.Task[SendResult | None], sent: ReminderState) -> None:
        self.task = task
        # The state the send writes to the mirror once the provider has the text.
        self.sent = sent


class Timer:
    """One timer for the loop's next wake-up, replaced only when that time changes (each timer started or
    cancelled is an event in the history)."""

    __slots__ = ("_task", "_at")

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._at: datetime | None = None

    @property
    def rang(self) -> bool:
        return self._task is not None and self._task.done()

    def set(self, at: datetime | None) -> None:
        task = self._task
        if task is not None and not task.done():
            if at == self._at:
                return
            task.cancel()
        self._task, self._at = None, at
        if at is not None:
            self._task = asyncio.ensure_future(
                workflow.sleep(max(at - workflow.now(), timedelta(milliseconds=1)))
            )
