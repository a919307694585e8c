"""One workflow per reminder: wait for the notify time, send, listen for the answer until the appointment."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

# Passed through the sandbox: imported once per worker, not again for every workflow instance.
with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        CLOSED_STATUSES,
        MARK_DELETED,
        MIRROR_STATE,
        SEND_MESSAGE,
        Answer,
        CarriedState,
        Purpose,
        ReminderInput,
        ReminderState,
        Reply,
        Reschedule,
        SendRequest,
        SendResult,
        Status,
        initial_state,
    )
    from workflows.search import APPOINTMENT_TIME, CONTACT_NUMBER, NOTIFY_TIME, REMINDER_STATUS

# A reminder dispatches its send this long before the notify time; the activity holds until the instant
# itself. The server's work for a burst (timer, workflow task, activity dispatch) is then done in the
# minute before it, and at the instant only the texts go out.
ARM_AHEAD = timedelta(seconds=60)
# A reminder due at the appointment itself (notify window 0) may go out this late.
LATE_SEND_GRACE = timedelta(minutes=5)
# A send heartbeats while it waits (pacing, a connection, the provider, a database outage while it
# records what the provider accepted), so a dead worker's send is retried within SEND_HEARTBEAT; the
# start-to-close bound leaves room for a long database outage. The fence in PostgreSQL, not these
# timeouts, is what keeps a retried send from going out twice.
SEND_START_TO_CLOSE = timedelta(minutes=5)
SEND_HEARTBEAT = timedelta(seconds=15)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
MIRROR_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
)
MIRROR_TIMEOUT = timedelta(seconds=10)
# A contact who keeps sending gibberish gets this many "did not understand" answers, then silence.
MAX_UNPARSABLE_ANSWERS = 3
# Replies remembered by provider id so a webhook delivered twice has effect once.
SEEN_MESSAGE_IDS = 200
# Replies waiting to be handled; a flood beyond this drops the oldest rather than growing without bound.
INBOX_LIMIT = 50
HISTORY_EVENTS_LIMIT = 5000


@workflow.defn
class ReminderWorkflow:
    @workflow.init
    def __init__(self, inp: ReminderInput) -> None:
        carried = inp.carried
        self._state = carried.state if carried else initial_state(inp)
        self._next_prompt = carried.prompts_sent if carried else 0
        self._unparsable_answers = carried.unparsable_answers if carried else 0
        self._seen = list(carried.seen_message_ids) if carried else []
        self._input = inp
        self._changed = False
        self._inbox: list[Reply] = []
        self._opted_out = False
        self._mirrors: list[asyncio.Task[None]] = []
        self._armed: _Armed | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None
        # The search attributes as last set: the API sets them at start, a continued run once again.
        self._shown: tuple[object, ...] | None = self._search_values() if carried is None else None

    @workflow.run
    async def run(self, inp: ReminderInput) -> ReminderState:
        try:
            while not await self._turn():
                pass
        except asyncio.CancelledError:
            self._stand_down()
            self._set_timer(None)
            self._state.status = Status.DELETED
            self._upsert_search_attributes()
            # DELETE writes the deletion before it cancels; the workflow writes it too, so an API that died
            # in between leaves no armed send behind.
            await workflow.execute_activity(
                MARK_DELETED,
                self._state.reminder_id,
                start_to_close_timeout=MIRROR_TIMEOUT,
                retry_policy=MIRROR_RETRY,
            )
            raise
        await asyncio.gather(*self._mirrors)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.signal
    def reply(self, reply: Reply) -> None:
        if reply.message_id in self._seen:
            return
        self._seen.append(reply.message_id)
        del self._seen[:-SEEN_MESSAGE_IDS]
        self._inbox.append(reply)
        # Under a flood the oldest unread texts go first: the latest answer is the one that counts.
        del self._inbox[:-INBOX_LIMIT]

    @workflow.signal
    def opt_out(self) -> None:
        self._opted_out = True

    @workflow.query
    def status(self) -> ReminderState:
        return self._state

    @workflow.update
    def reschedule(self, change: Reschedule) -> ReminderState:
        """Moves the appointment or changes its details. Before the reminder went out its timer moves;
        after, the answer is reset and a reminder for the new time goes out."""
        self._stand_down()
        self._state = dataclasses.replace(
            self._state,
            appointment=change.appointment,
            appt_user_dt=change.appt_user_dt,
            timezone=change.timezone,
            location=change.location,
            participant=change.participant,
            language=change.language,
            notify_times=sorted(set(change.notify_at)),
            notify_windows=list(change.notify_windows),
            status=Status.SCHEDULED,
            reminder_sent=False,
            will_attend=None,
            confirm_sent=False,
            sent_at=None,
            generation=self._state.generation + 1,
        )
        self._next_prompt = 0
        self._unparsable_answers = 0
        self._changed = True
        self._publish()
        return self._state

    @reschedule.validator
    def _validate_reschedule(self, change: Reschedule) -> None:
        if self._state.status in CLOSED_STATUSES or workflow.now() >= self._state.appointment:
            raise ApplicationError(
                f"the reminder is closed ({self._state.status.value})", type="ReminderClosed"
            )
        if change.appointment <= workflow.now():
            raise ApplicationError("appointment_time: is in the past", type="InvalidChange")
        if not change.notify_at:
            raise ApplicationError("notify_window: at least one notify time is needed", type="InvalidChange")

    async def _turn(self) -> bool:
        """One turn of the loop; True when the reminder is over. A due reminder is armed ahead of its time
        and runs beside the loop; one timer serves until the time to wake changes."""
        self._changed = False
        await self._answer_replies()
        self._settle_armed()
        state = self._state
        if self._opted_out:
            self._stand_down()
            self._finish(Status.OPTED_OUT)
            return True
        if state.status in (Status.FAILED, Status.OPTED_OUT):
            return True
        now = workflow.now()
        due = None
        if self._armed is None:
            due = self._due_prompt(now)
            if due is not None and due - now <= ARM_AHEAD:
                self._arm(due)
                due = None
        if now >= state.appointment and self._armed is None:
            if state.status in (Status.SCHEDULED, Status.AWAITING_REPLY):
                self._finish(Status.NO_RESPONSE)
            return True
        if self._armed is None and self._history_too_long():
            await self._continue_as_new()
        wake_at = state.appointment if due is None else min(due - ARM_AHEAD, state.appointment)
        self._set_timer(wake_at if wake_at > now else None)
        await workflow.wait_condition(
            lambda: (
                bool(self._inbox)
                or self._opted_out
                or self._changed
                or (self._timer is not None and self._timer.done())
                or (self._armed is not None and self._armed.task.done())
            )
        )
        return False

    def _set_timer(self, at: datetime | None) -> None:
        """Keeps one timer for the next wake-up, replaced only when that time changes."""
        timer = self._timer
        if timer is not None and not timer.done():
            if at == self._timer_at:
                return
            timer.cancel()
        self._timer, self._timer_at = None, at
        if at is not None:
            self._timer = asyncio.ensure_future(
                workflow.sleep(max(at - workflow.now(), timedelta(milliseconds=1)))
            )

    def _due_prompt(self, now: datetime) -> datetime | None:
        """The next reminder to send; of several already past, only the latest is sent."""
        state = self._state
        if state.will_attend is not None:
            return None
        times = state.notify_times
        while self._next_prompt + 1 < len(times) and times[self._next_prompt + 1] <= now:
            self._next_prompt += 1
        if self._next_prompt >= len(times):
            return None
        due = times[self._next_prompt]
        if now >= state.appointment + LATE_SEND_GRACE or (
            now >= state.appointment and due < state.appointment
        ):
            return None
        return due

    def _arm(self, due: datetime) -> None:
        """Dispatches the due reminder now; its activity writes that the reminder wants it, holds until
        `due`, and sends only if the mirror still says so. Replies, a reschedule or STOP stand it down."""
        index = self._next_prompt
        self._next_prompt += 1
        generation = self._state.generation
        key = f"reminder:{index}" if generation == 0 else f"reminder:g{generation}:{index}"
        self._state.wanted_send = f"{self._state.reminder_id}:{key}"
        wanted = self._next()
        sent = self._next(
            reminder_sent=True,
            sent_at=max(due, workflow.now()),
            status=Status.AWAITING_REPLY if self._state.will_attend is None else self._state.status,
            wanted_send=None,
        )
        task = asyncio.ensure_future(
            self._send(Purpose.REMINDER, key, sent, mirror_before=wanted, not_before=due, armed=True)
        )
        self._armed = _Armed(task, sent)

    def _stand_down(self) -> None:
        """Withdraws an armed send. Its activity learns it at its time from the mirror, whose next write
        shows no send wanted (or the reminder deleted, or the number opted out)."""
        self._state.wanted_send = None
        if self._armed is not None:
            self._armed.task.cancel()
            self._armed = None

    def _settle_armed(self) -> None:
        """Takes in the outcome of an armed send that has finished."""
        armed = self._armed
        if armed is None or not armed.task.done():
            return
        self._armed = None
        result = armed.task.result()
        state = self._state
        if result is None:
            if not state.reminder_sent:
                self._finish(Status.FAILED)
        elif result.opted_out:
            self._opted_out = True
        elif result.withdrawn:
            # The mirror showed the reminder deleted before its cancellation arrived.
            self._state.wanted_send = None
            self._publish()
        elif state.seq == armed.sent.seq:
            # Nothing changed while it was armed: the state it wrote to the mirror is the state.
            self._adopt(armed.sent)
        else:
            # It went out while the state moved on: the send's own mirror write is stale.
            state.reminder_sent = True
            state.sent_at = armed.sent.sent_at
            state.wanted_send = None
            if state.will_attend is None:
                state.status = Status.AWAITING_REPLY
            self._publish()

    async def _answer_replies(self) -> None:
        while self._inbox:
            reply = self._inbox.pop(0)
            if workflow.now() >= self._state.appointment or self._opted_out:
                continue
            if reply.answer != Answer.UNKNOWN:
                await self._record_answer(reply.answer == Answer.YES, reply.message_id)
            elif self._unparsable_answers < MAX_UNPARSABLE_ANSWERS:
                self._unparsable_answers += 1
                await self._send(Purpose.UNPARSABLE, f"answer:{reply.message_id}", local=True)

    async def _record_answer(self, attending: bool, message_id: str) -> None:
        """The answer is searchable at once, and one local activity writes it to the mirror, sends the reply
        text and records that it went."""
        state = self._state
        state.will_attend = attending
        state.status = Status.CONFIRMED if attending else Status.DECLINED
        state.confirm_sent = False
        workflow.metric_meter().create_counter(
            "reminders_answered", "Yes or No answers recorded"
        ).with_additional_attributes({"answer": "yes" if attending else "no"}).add(1)
        self._stand_down()
        self._upsert_search_attributes()
        generation = state.generation
        answered = self._next()
        confirmed = self._next(confirm_sent=True)
        purpose = Purpose.CONFIRMATION if attending else Purpose.CANCELLATION
        result = await self._send(
            purpose, f"answer:{message_id}", confirmed, mirror_before=answered, local=True
        )
        state = self._state
        if result is None:
            return
        if result.opted_out:
            self._opted_out = True
        elif (
            result.delivered_to_provider and generation == state.generation and state.will_attend == attending
        ):
            if state.seq == confirmed.seq:
                self._adopt(confirmed)
            else:
                state.confirm_sent = True
                self._publish()
        # Otherwise a later answer or a reschedule has published the state that counts.

    async def _send(
        self,
        purpose: Purpose,
        key: str,
        mirror: ReminderState | None = None,
        *,
        mirror_before: ReminderState | None = None,
        not_before: datetime | None = None,
        armed: bool = False,
        local: bool = False,
    ) -> SendResult | None:
        """Sends one message; None when the provider refused it for good or the appointment came first.
        `local` runs it as a local activity, inside this workflow task (the answers to replies)."""
        state = self._state
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
                workflow.logger.warning(
                    "send of %s for %s failed for good: %s", purpose.value, key, err.cause
                )
            return None

    # The mirror protocol: every state the PostgreSQL row or the search attributes show carries a sequence
    # number taken from the workflow's state, so whichever write lands last, the newest state wins.

    def _next(self, **changes: object) -> ReminderState:
        """The state with `changes`, under a sequence number of its own, for an activity to write."""
        self._state.seq += 1
        return _copied(self._state, **changes)

    def _adopt(self, written: ReminderState) -> None:
        """Takes the state a send activity already wrote to the mirror; only the search attributes follow."""
        self._state = written
        self._upsert_search_attributes()

    def _finish(self, status: Status) -> None:
        self._state.status = status
        self._state.wanted_send = None
        self._publish()

    def _publish(self) -> None:
        """Makes the current state visible: search attributes now, the PostgreSQL mirror in the background
        (the mirror never holds up a reminder)."""
        snapshot = self._next()
        self._upsert_search_attributes()
        self._mirrors = [t for t in self._mirrors if not t.done()]
        self._mirrors.append(
            workflow.start_activity(
                MIRROR_STATE, snapshot, start_to_close_timeout=MIRROR_TIMEOUT, retry_policy=MIRROR_RETRY
            )
        )

    def _search_values(self) -> tuple[str, datetime, datetime, str]:
        state = self._state
        pending = state.notify_times[self._next_prompt :]
        notify = pending[0] if pending else state.notify_times[-1]
        return (state.status.value, notify, state.appointment, state.contact_search or state.contact_number)

    def _upsert_search_attributes(self) -> None:
        values = self._search_values()
        # Each upsert is a visibility write on the server: those that change nothing are skipped.
        if values == self._shown:
            return
        self._shown = values
        status, notify, appointment, contact = values
        workflow.upsert_search_attributes(
            [
                REMINDER_STATUS.value_set(status),
                NOTIFY_TIME.value_set(notify),
                APPOINTMENT_TIME.value_set(appointment),
                CONTACT_NUMBER.value_set(contact),
            ]
        )

    def _history_too_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_EVENTS_LIMIT

    async def _continue_as_new(self) -> None:
        await asyncio.gather(*self._mirrors)
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = CarriedState(
            state=self._state,
            prompts_sent=self._next_prompt,
            unparsable_answers=self._unparsable_answers,
            seen_message_ids=self._seen,
        )
        workflow.continue_as_new(dataclasses.replace(self._input, carried=carried))


def _copied(state: ReminderState, **changes: object) -> ReminderState:
    """A copy of the state (its lists too) with `changes`, to hand to an activity."""
    return dataclasses.replace(
        state,
        notify_times=list(state.notify_times),
        notify_windows=list(state.notify_windows),
        **changes,  # type: ignore[arg-type]
    )


class _Armed:
    """A send armed ahead of its time. A plain class: the sandbox runs this module's body for every new
    reminder, and a dataclass costs a code generation each time."""

    __slots__ = ("task", "sent")

    def __init__(self, task: asyncio.Task[SendResult | None], sent: ReminderState) -> None:
        self.task = task
        # The state the send writes to the mirror once the provider has the text.
        self.sent = sent
