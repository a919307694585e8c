"""One workflow per reminder: wait for the notify time, send, listen for the answer until the appointment."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

# Passed through the sandbox: imported once per worker, not again for every workflow instance (which
# would also make the data converter build its type adapters anew each time). Both modules are
# deterministic: stdlib dataclasses and pure functions.
with workflow.unsafe.imports_passed_through():
    from activities.reminders import ReminderActivities
    from workflows.intents import Intent, classify
    from workflows.models import (
        CLOSED_STATUSES,
        LEGACY_VERSION,
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

CONTACT_NUMBER = SearchAttributeKey.for_keyword("ContactNumber")
REMINDER_STATUS = SearchAttributeKey.for_keyword("ReminderStatus")
APPOINTMENT_TIME = SearchAttributeKey.for_datetime("AppointmentTime")
NOTIFY_TIME = SearchAttributeKey.for_datetime("NotifyTime")
SEARCH_ATTRIBUTES = (CONTACT_NUMBER, REMINDER_STATUS, APPOINTMENT_TIME, NOTIFY_TIME)

# A version-2 reminder dispatches its send this long before the notify time; the activity holds until the
# instant itself. The server's work for a burst (timer, workflow task, activity dispatch) is then done in
# the minute before it, and at the instant only the texts go out. Changing it changes what new reminders
# do: bump CURRENT_VERSION with it.
ARM_AHEAD = timedelta(seconds=60)
# A reminder due at the appointment itself (notify window 0) may go out this late.
LATE_SEND_GRACE = timedelta(minutes=5)
# Pacing may hold a send up to 20 s and a database outage its record up to 60 s; heartbeats meanwhile let
# a dead worker's send be retried within seconds rather than at the end of that.
SEND_START_TO_CLOSE = timedelta(seconds=90)
SEND_HEARTBEAT = timedelta(seconds=15)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
MIRROR_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
)
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
        if carried is not None:
            self._state = carried.state
            self._next_prompt = carried.prompts_sent
            self._unparsable_answers = carried.unparsable_answers
            self._seen = list(carried.seen_message_ids)
            self._generation = carried.generation
        else:
            self._state = initial_state(inp)
            self._next_prompt = 0
            self._unparsable_answers = 0
            self._seen = []
            self._generation = 0
        self._input = inp
        self._legacy = inp.version <= LEGACY_VERSION
        self._changed = False
        self._inbox: list[Reply] = []
        self._opted_out = False
        self._mirrors: list[asyncio.Task[None]] = []
        # Version 2 only: the send armed ahead of its time, the one timer the loop waits on, and the search
        # attributes as last set (the API sets them at start; a continued run sets them once again).
        self._armed: _Armed | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None
        self._shown: tuple[object, ...] | None = self._search_values() if carried is None else None

    @workflow.run
    async def run(self, inp: ReminderInput) -> ReminderState:
        try:
            # The API writes the first row and search attributes itself; reminders started before that
            # change still publish their initial state on replay.
            if inp.carried is None and self._legacy and not workflow.patched("api-writes-initial-state"):
                self._publish()
            step = self._step if self._legacy else self._turn
            while not await step():
                pass
        except asyncio.CancelledError:
            self._stand_down()
            self._set_timer(None)
            self._state.status = Status.DELETED
            workflow.upsert_search_attributes([REMINDER_STATUS.value_set(Status.DELETED.value)])
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
        state = self._state
        state.appointment = change.appointment
        state.appt_user_dt = change.appt_user_dt
        state.timezone = change.timezone
        state.location = change.location
        state.participant = change.participant
        state.language = change.language
        state.notify_times = sorted(set(change.notify_at))
        state.notify_windows = list(change.notify_windows)
        state.status = Status.SCHEDULED
        state.reminder_sent = False
        state.will_attend = None
        state.confirm_sent = False
        state.sent_at = None
        self._next_prompt = 0
        self._unparsable_answers = 0
        self._generation += 1
        state.generation = self._generation
        self._changed = True
        self._publish()
        return state

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

    async def _step(self) -> bool:
        """One turn of the loop; True when the reminder is over."""
        self._changed = False
        await self._answer_replies()
        state = self._state
        if self._opted_out:
            self._finish(Status.OPTED_OUT)
            return True
        if state.status in (Status.FAILED, Status.OPTED_OUT):
            return True
        now = workflow.now()
        due = self._due_prompt(now)
        if due is not None and due <= now:
            await self._send_prompt()
            return False
        if now >= state.appointment:
            if state.status in (Status.SCHEDULED, Status.AWAITING_REPLY):
                self._finish(Status.NO_RESPONSE)
            return True
        if self._history_too_long():
            await self._continue_as_new()
        wake_at = state.appointment if due is None else min(due, state.appointment)
        try:
            await workflow.wait_condition(
                lambda: bool(self._inbox) or self._opted_out or self._changed,
                timeout=max(wake_at - now, timedelta(milliseconds=1)),
            )
        except TimeoutError:
            pass
        return False

    async def _turn(self) -> bool:
        """One turn of a version-2 reminder's loop; True when the reminder is over. Like `_step`, but a due
        reminder is armed ahead of its time and runs beside the loop, and one timer serves until the time
        to wake changes."""
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
        armed = self._armed
        if armed is not None and (armed.generation != self._generation or state.will_attend is not None):
            # Rescheduled or answered since it was armed: that send is no longer wanted.
            self._stand_down()
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

    def _arm(self, due: datetime) -> None:
        """Dispatches the due reminder now; its activity holds until `due`, checks it is still wanted, and
        sends. The loop goes on meanwhile: replies, a reschedule or STOP stand it down."""
        generation, key = self._take_prompt()
        state = self._state
        sent = self._snapshot(
            reminder_sent=True,
            sent_at=max(due, workflow.now()),
            status=Status.AWAITING_REPLY if state.will_attend is None else state.status,
        )
        task = asyncio.ensure_future(
            self._send(Purpose.REMINDER, key, sent, not_before=due, generation=generation)
        )
        self._armed = _Armed(task, generation, sent)

    def _stand_down(self) -> None:
        """Withdraws an armed send. Its activity learns it at its time from the mirror, which by then shows
        the reminder deleted, rescheduled, answered or opted out."""
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
        elif result.delivered_to_provider:
            if state.seq == armed.sent.seq:
                # Nothing changed while it was armed: the state it wrote to the mirror is the state.
                self._adopt(armed.sent)
            else:
                self._mark_sent(armed.sent.sent_at)

    def _snapshot(self, **changes: object) -> ReminderState:
        """The state with `changes`, under a sequence number of its own (taken from the state, so nothing
        published later can carry the same one)."""
        self._state.seq += 1
        return _copied(self._state, **changes)

    def _due_prompt(self, now: datetime) -> datetime | None:
        """The next reminder to send; of several already past, only the latest is sent."""
        if self._state.will_attend is not None:
            return None
        times = self._state.notify_times
        while self._next_prompt + 1 < len(times) and times[self._next_prompt + 1] <= now:
            self._next_prompt += 1
        if self._next_prompt >= len(times):
            return None
        due = times[self._next_prompt]
        if now >= self._state.appointment + LATE_SEND_GRACE or (
            now >= self._state.appointment and due < self._state.appointment
        ):
            return None
        return due

    def _take_prompt(self) -> tuple[int, str]:
        """Takes the next prompt: its schedule generation and its send key (the same across retries)."""
        index = self._next_prompt
        self._next_prompt += 1
        generation = self._generation
        return generation, f"reminder:{index}" if generation == 0 else f"reminder:g{generation}:{index}"

    async def _send_prompt(self) -> None:
        generation, key = self._take_prompt()
        state = self._state
        sent = self._after(
            reminder_sent=True,
            sent_at=workflow.now(),
            status=Status.AWAITING_REPLY if state.will_attend is None else state.status,
        )
        result = await self._send(Purpose.REMINDER, key, sent)
        state = self._state
        if generation != self._generation:
            # Rescheduled while this one was on its way: the new schedule decides what goes out next, and
            # the mirror gets the rescheduled state again over whatever the send wrote.
            if sent is not None:
                self._publish()
            return
        if result is None:
            if not state.reminder_sent:
                self._finish(Status.FAILED)
            return
        if result.opted_out:
            self._opted_out = True
            return
        if sent is not None:
            self._adopt(sent)
            return
        self._mark_sent(workflow.now())

    def _mark_sent(self, sent_at: datetime | None) -> None:
        """The reminder went out while the state moved on: the send's own mirror write is stale."""
        state = self._state
        state.reminder_sent = True
        state.sent_at = sent_at
        if state.will_attend is None:
            state.status = Status.AWAITING_REPLY
        self._publish()

    async def _answer_replies(self) -> None:
        while self._inbox:
            reply = self._inbox.pop(0)
            if workflow.now() >= self._state.appointment or self._opted_out:
                continue
            intent = classify(reply.body)
            if intent in (Intent.YES, Intent.NO):
                await self._record_answer(intent == Intent.YES, reply.message_id)
            elif intent == Intent.UNKNOWN and self._unparsable_answers < MAX_UNPARSABLE_ANSWERS:
                self._unparsable_answers += 1
                await self._send(Purpose.UNPARSABLE, f"answer:{reply.message_id}", local=not self._legacy)
            # Carrier keywords are handled per number by KeywordWorkflow.

    async def _record_answer(self, attending: bool, message_id: str) -> None:
        state = self._state
        state.will_attend = attending
        state.status = Status.CONFIRMED if attending else Status.DECLINED
        state.confirm_sent = False
        workflow.metric_meter().create_counter(
            "reminders_answered", "Yes or No answers recorded"
        ).with_additional_attributes({"answer": "yes" if attending else "no"}).add(1)
        if not self._legacy:
            await self._confirm_answer(attending, message_id)
            return
        self._publish()
        purpose = Purpose.CONFIRMATION if attending else Purpose.CANCELLATION
        generation = self._generation
        confirmed = self._after(confirm_sent=True)
        result = await self._send(purpose, f"answer:{message_id}", confirmed)
        if result is not None and result.delivered_to_provider:
            if confirmed is None:
                state.confirm_sent = True
                self._publish()
            elif generation == self._generation and self._state.will_attend == attending:
                self._adopt(confirmed)
            else:
                self._publish()
        elif result is not None and result.opted_out:
            self._opted_out = True

    async def _confirm_answer(self, attending: bool, message_id: str) -> None:
        """Version 2: the answer is searchable at once, and one activity writes it to the mirror, sends the
        reply text and records that it went."""
        self._stand_down()
        self._upsert_search_attributes()
        generation = self._generation
        answered = self._snapshot()
        confirmed = self._snapshot(confirm_sent=True)
        purpose = Purpose.CONFIRMATION if attending else Purpose.CANCELLATION
        result = await self._send(
            purpose, f"answer:{message_id}", confirmed, mirror_before=answered, local=True
        )
        state = self._state
        if result is not None and result.delivered_to_provider:
            if generation == self._generation and state.will_attend == attending:
                if state.seq == confirmed.seq:
                    self._adopt(confirmed)
                else:
                    state.confirm_sent = True
                    self._publish()
            # Otherwise a later answer or a reschedule has published the state that counts.
        elif result is not None and result.opted_out:
            self._opted_out = True

    def _after(self, **changes: object) -> ReminderState | None:
        """The state a send leads to, for the send activity to write to the mirror itself (one activity
        per send instead of two); None for reminders started before that, which replay the old way."""
        if not workflow.patched("send-writes-mirror"):
            return None
        return _copied(self._state, seq=self._state.seq + 1, **changes)

    def _adopt(self, written: ReminderState) -> None:
        """Takes the state a send activity already wrote to the mirror; only the search attributes follow."""
        self._state = written
        self._upsert_search_attributes()

    async def _send(
        self,
        purpose: Purpose,
        key: str,
        mirror: ReminderState | None = None,
        *,
        mirror_before: ReminderState | None = None,
        not_before: datetime | None = None,
        generation: int | None = None,
        local: bool = False,
    ) -> SendResult | None:
        """Sends one message; None when the provider refused it for good or the appointment came first.
        `local` runs it as a local activity (version 2's answers to replies)."""
        state = self._state
        request = SendRequest(
            mirror=mirror,
            mirror_before=mirror_before,
            not_before=not_before,
            generation=generation,
            reminder_id=state.reminder_id,
            contact_number=state.contact_number,
            purpose=purpose,
            key=f"{state.reminder_id}:{key}",
            appt_user_dt=state.appt_user_dt,
            location=state.location,
            participant=state.participant,
            language=state.language,
        )
        now = workflow.now()
        # An armed send holds until its time without heartbeating: its timeouts count the hold in. A worker
        # that dies meanwhile is noticed SEND_HEARTBEAT after the instant, as it would be after a send.
        hold = max(not_before - now, timedelta(0)) if not_before is not None else timedelta(0)
        give_up_at = state.appointment + LATE_SEND_GRACE
        budget = max(give_up_at - now, SEND_START_TO_CLOSE + hold)
        try:
            if local:
                # Runs inside this workflow task: no activity for the server to dispatch and record.
                return await workflow.execute_local_activity_method(
                    ReminderActivities.send_message,
                    request,
                    start_to_close_timeout=SEND_START_TO_CLOSE,
                    schedule_to_close_timeout=budget,
                    retry_policy=SEND_RETRY,
                )
            return await workflow.execute_activity_method(
                ReminderActivities.send_message,
                request,
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

    def _finish(self, status: Status) -> None:
        self._state.status = status
        self._publish()

    def _publish(self) -> None:
        """Makes the current state visible: search attributes now, the PostgreSQL mirror in the background."""
        state = self._state
        state.seq += 1
        self._upsert_search_attributes()
        self._mirrors = [t for t in self._mirrors if not t.done()]
        # The mirror never holds up a reminder: writes run beside the workflow, and the sequence number
        # makes the newest one win whatever order they land in.
        self._mirrors.append(
            workflow.start_activity_method(
                ReminderActivities.mirror_state,
                _copied(state),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=MIRROR_RETRY,
            )
        )

    def _search_values(self) -> tuple[str, datetime, datetime, str]:
        state = self._state
        pending = state.notify_times[self._next_prompt :]
        notify = pending[0] if pending else state.notify_times[-1]
        return (state.status.value, notify, state.appointment, state.contact_search or state.contact_number)

    def _upsert_search_attributes(self) -> None:
        values = self._search_values()
        # Each upsert is a visibility write on the server: version 2 skips those that change nothing.
        if not self._legacy and values == self._shown:
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
            generation=self._generation,
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

    __slots__ = ("task", "generation", "sent")

    def __init__(self, task: asyncio.Task[SendResult | None], generation: int, sent: ReminderState) -> None:
        self.task = task
        self.generation = generation
        # The state the send writes to the mirror once the provider has the text.
        self.sent = sent
