"""One workflow per reminder: wait for the notify time, send, listen for the answer until the appointment."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ApplicationError

# Passed through the sandbox: imported once per worker, not again for every workflow instance.
with workflow.unsafe.imports_passed_through():
    from workflows import activities
    from workflows.activities import LATE_SEND_GRACE, Armed, Timer, arm_ahead
    from workflows.mirror import Mirror
    from workflows.models import (
        Answer,
        CarriedState,
        OptOut,
        Purpose,
        ReminderInput,
        ReminderState,
        Reply,
        Reschedule,
        Status,
        initial_state,
        next_prompt,
        reschedule_refusal,
        rescheduled,
    )

# A reminder's first task comes when its send is armed (activities.start_delay), one to five minutes ahead.
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
        self._next_prompt = carried.prompts_sent if carried else 0
        self._unparsable_answers = carried.unparsable_answers if carried else 0
        self._seen = list(carried.seen_message_ids) if carried else []
        self._m = Mirror(carried.state if carried else initial_state(inp))
        self._input = inp
        self._changed = False
        self._inbox: list[Reply] = []
        self._opted_out = False
        self._declined = False
        self._quiet_until: datetime | None = None
        self._armed: Armed | None = None
        self._timer = Timer()
        self._arm_ahead = arm_ahead(inp.reminder_id)

    @property
    def _state(self) -> ReminderState:
        return self._m.state

    @workflow.run
    async def run(self, inp: ReminderInput) -> ReminderState:
        self._m.show(self._next_prompt)  # a no-op when the start carried them, as the API's does
        try:
            while not await self._turn():
                pass
        except asyncio.CancelledError:
            self._stand_down()
            self._timer.set(None)
            self._state.status = Status.DELETED
            self._m.show(self._next_prompt)
            # DELETE writes the deletion before it cancels; the workflow writes it too, so an API that died
            # in between leaves no armed send behind.
            await activities.mark_deleted(self._state.reminder_id)
            raise
        await self._m.written()
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
    def opt_out(self, change: OptOut) -> None:
        self._opted_out = True
        self._declined = self._declined or change.declines

    @workflow.query
    def status(self) -> ReminderState:
        return self._state

    @workflow.update
    def wake(self) -> None:
        """Starts a reminder whose start is deferred (a signal alone waits it out); else a no-op."""

    @workflow.update
    def reschedule(self, change: Reschedule) -> ReminderState:
        """Moves the appointment or changes its details. Before the reminder went out its timer moves;
        after, the answer is reset and a reminder for the new time goes out."""
        self._stand_down()
        self._m.state = rescheduled(self._state, change)
        self._next_prompt = 0
        self._unparsable_answers = 0
        self._changed = True
        self._m.publish(self._next_prompt)
        return self._state

    @reschedule.validator
    def _validate_reschedule(self, change: Reschedule) -> None:
        refusal = reschedule_refusal(self._state, change, workflow.now())
        if refusal is not None:
            raise ApplicationError(refusal[1], type=refusal[0])

    async def _turn(self) -> bool:
        """One turn of the loop; True when the reminder is over. A due reminder is armed ahead of its time
        and runs beside the loop; one timer serves until the time to wake changes."""
        self._changed = False
        await self._answer_replies()
        self._settle_armed()
        state = self._state
        if self._opted_out:
            self._stand_down()
            if self._declined:
                state.will_attend = False
            self._finish(Status.DECLINED if self._declined else Status.OPTED_OUT)
            return True
        if state.status in (Status.FAILED, Status.OPTED_OUT, Status.NOT_SENT):
            return True
        now = workflow.now()
        due = None
        if self._armed is None:
            # Of several notify times already past only the latest is sent.
            self._next_prompt, due = next_prompt(state, self._next_prompt, now, LATE_SEND_GRACE)
            if due is not None and self._quiet_until is not None:
                due = max(due, self._quiet_until)
            if due is not None and due - now <= self._arm_ahead:
                self._arm(due)
                due = None
        if now >= state.appointment and self._armed is None:
            if state.status in (Status.SCHEDULED, Status.AWAITING_REPLY):
                self._finish(Status.NO_RESPONSE)
            return True
        if self._armed is None and activities.history_too_long(HISTORY_EVENTS_LIMIT):
            await self._continue_as_new()
        wake_at = state.appointment if due is None else min(due - self._arm_ahead, state.appointment)
        self._timer.set(wake_at if wake_at > now else None)
        await workflow.wait_condition(
            lambda: (
                bool(self._inbox)
                or self._opted_out
                or self._changed
                or self._timer.rang
                or (self._armed is not None and self._armed.task.done())
            )
        )
        return False

    def _arm(self, due: datetime) -> None:
        """Dispatches the due send: its activity marks it wanted, holds until `due`, sends if still wanted."""
        index = self._next_prompt
        self._next_prompt += 1
        generation = self._state.generation
        key = f"reminder:{index}" if generation == 0 else f"reminder:g{generation}:{index}"
        self._state.wanted_send = f"{self._state.reminder_id}:{key}"
        wanted = self._m.next()
        sent = self._m.next(
            reminder_sent=True,
            sent_at=max(due, workflow.now()),
            status=Status.AWAITING_REPLY if self._state.will_attend is None else self._state.status,
            wanted_send=None,
        )
        task = asyncio.ensure_future(
            activities.send(
                self._state, Purpose.REMINDER, key, sent, mirror_before=wanted, not_before=due, armed=True
            )
        )
        self._armed = Armed(task, sent)

    def _stand_down(self) -> None:
        """Withdraws an armed send: at its fence its activity reads from the mirror that it is not wanted."""
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
        elif result.quiet_until is not None or result.quiet_past_appointment:
            self._quiet(result.quiet_until)
        elif result.withdrawn:
            # The mirror showed the reminder deleted before its cancellation arrived.
            state.wanted_send = None
            self._m.publish(self._next_prompt)
        elif state.seq == armed.sent.seq:
            # Nothing changed while it was armed: the state it wrote to the mirror is the state.
            self._m.adopt(armed.sent, self._next_prompt)
        else:
            # It went out while the state moved on: the send's own mirror write is stale.
            state.reminder_sent = True
            state.sent_at = armed.sent.sent_at
            state.wanted_send = None
            if state.will_attend is None:
                state.status = Status.AWAITING_REPLY
            self._m.publish(self._next_prompt)

    def _quiet(self, until: datetime | None) -> None:
        """Quiet hours at send time: the reminder goes at their end, or, past the appointment, says why not."""
        if until is not None:
            self._next_prompt -= 1
            self._quiet_until = until
            return
        self._state.reason = "quiet_hours"
        if next_prompt(self._state, self._next_prompt, workflow.now(), LATE_SEND_GRACE)[1] is None:
            self._finish(Status.NOT_SENT)

    async def _answer_replies(self) -> None:
        while self._inbox:
            reply = self._inbox.pop(0)
            if workflow.now() >= self._state.appointment or self._opted_out:
                continue
            if reply.answer != Answer.UNKNOWN:
                await self._record_answer(reply.answer == Answer.YES, reply.message_id)
            elif self._unparsable_answers < MAX_UNPARSABLE_ANSWERS:
                self._unparsable_answers += 1
                await activities.send(
                    self._state, Purpose.UNPARSABLE, f"answer:{reply.message_id}", local=True
                )

    async def _record_answer(self, attending: bool, message_id: str) -> None:
        """The answer is searchable at once; one local activity mirrors it, sends the reply, records it."""
        state = self._state
        state.will_attend = attending
        state.status = Status.CONFIRMED if attending else Status.DECLINED
        state.confirm_sent = False
        activities.count(
            "reminders_answered", "Yes or No answers recorded", answer="yes" if attending else "no"
        )
        self._stand_down()
        self._m.show(self._next_prompt)
        generation = state.generation
        answered = self._m.next()
        confirmed = self._m.next(confirm_sent=True)
        purpose = Purpose.CONFIRMATION if attending else Purpose.CANCELLATION
        result = await activities.send(
            state, purpose, f"answer:{message_id}", confirmed, mirror_before=answered, local=True
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
                self._m.adopt(confirmed, self._next_prompt)
            else:
                state.confirm_sent = True
                self._m.publish(self._next_prompt)
        # Otherwise a later answer or a reschedule has published the state that counts.

    def _finish(self, status: Status) -> None:
        self._state.status = status
        self._state.wanted_send = None
        self._m.publish(self._next_prompt)

    async def _continue_as_new(self) -> None:
        await self._m.written()
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = CarriedState(
            state=self._state,
            prompts_sent=self._next_prompt,
            unparsable_answers=self._unparsable_answers,
            seen_message_ids=self._seen,
        )
        workflow.continue_as_new(dataclasses.replace(self._input, carried=carried))
