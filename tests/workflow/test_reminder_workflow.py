"""ReminderWorkflow on a real Temporal dev server, with its activities replaced by fakes."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import workflows.activities
from api.starts import start_reminder
from workflows.activities import arm_ahead, start_delay
from workflows.models import (
    MARK_DELETED,
    MIRROR_STATE,
    OPEN_REMINDERS,
    SEND_MESSAGE,
    WORKFLOW_VERSION,
    Answer,
    OpenReminders,
    OptOut,
    Purpose,
    ReminderInput,
    ReminderState,
    Reply,
    Reschedule,
    SendRequest,
    SendResult,
    Status,
    initial_state,
    workflow_id,
)
from workflows.reminder import MAX_UNPARSABLE_ANSWERS, ReminderWorkflow
from workflows.search import APPOINTMENT_TIME, CONTACT_NUMBER, NOTIFY_TIME, REMINDER_STATUS

HISTORIES = Path(__file__).parent.parent / "histories"


class FakeActivities:
    """The activities as the workflow sees them, with the mirror kept in memory: an armed send holds until
    its time and then asks the mirror, as the real one asks PostgreSQL, whether it is still wanted."""

    def __init__(self) -> None:
        self.sent: list[tuple[datetime, SendRequest]] = []
        self.mirrored: list[ReminderState] = []
        self.opted_out: set[str] = set()
        self.deleted: set[str] = set()
        self.withdrawn: list[SendRequest] = []
        self.refuse = False
        # Quiet hours at send time: the next reminder send answers this, once.
        self.quiet: SendResult | None = None

    def row(self, reminder_id: str) -> ReminderState | None:
        """The mirror's row: the newest state written for the reminder."""
        states = [m for m in self.mirrored if m.reminder_id == reminder_id]
        return max(states, key=lambda m: m.seq) if states else None

    def wants(self, request: SendRequest) -> bool:
        """The fence's rule, read from the same value: the mirror's wanted send is this one."""
        if not request.armed or request.reminder_id is None:
            return True
        row = self.row(request.reminder_id)
        return request.reminder_id not in self.deleted and row is not None and row.wanted_send == request.key

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendRequest) -> SendResult:
        if request.mirror_before is not None:
            self.mirrored.append(request.mirror_before)
        if request.not_before is not None:
            await asyncio.sleep(max((request.not_before - datetime.now(UTC)).total_seconds(), 0))
        if request.contact_number in self.opted_out and request.purpose == Purpose.REMINDER:
            return SendResult(delivered_to_provider=False, opted_out=True)
        if not self.wants(request):
            self.withdrawn.append(request)
            return SendResult(delivered_to_provider=False, withdrawn=True)
        if self.refuse:
            raise ApplicationError("refused", type="ProviderRefused", non_retryable=True)
        if self.quiet is not None and request.purpose == Purpose.REMINDER:
            quiet, self.quiet = self.quiet, None
            self.withdrawn.append(request)
            return quiet
        self.sent.append((datetime.now(UTC), request))
        if request.mirror is not None:
            self.mirrored.append(request.mirror)
        return SendResult(delivered_to_provider=True, provider_id=f"fake-{len(self.sent)}")

    @activity.defn(name=MIRROR_STATE)
    async def mirror_state(self, state: ReminderState) -> None:
        self.mirrored.append(state)

    @activity.defn(name=MARK_DELETED)
    async def mark_deleted(self, reminder_id: str) -> None:
        self.deleted.add(reminder_id)

    @activity.defn(name=OPEN_REMINDERS)
    async def open_reminders(self, contact_number: str) -> OpenReminders:
        return OpenReminders(reminder_ids=[])

    def purposes(self) -> list[Purpose]:
        return [r.purpose for _, r in self.sent]


@pytest_asyncio.fixture
async def fakes() -> FakeActivities:
    return FakeActivities()


@pytest_asyncio.fixture
async def worker(workflow_env: WorkflowEnvironment, fakes: FakeActivities) -> AsyncIterator[Worker]:
    async with Worker(
        workflow_env.client,
        task_queue=f"test-{uuid.uuid4().hex}",
        workflows=[ReminderWorkflow],
        activities=[fakes.send_message, fakes.mirror_state, fakes.mark_deleted, fakes.open_reminders],
    ) as w:
        yield w


def reminder(appointment_in: timedelta, windows: list[int]) -> ReminderInput:
    appointment = (datetime.now(UTC) + appointment_in).replace(microsecond=0)
    return ReminderInput(
        reminder_id=uuid.uuid4().hex,
        contact_number="12223334444",
        appointment=appointment,
        appt_user_dt=appointment.strftime("%Y-%m-%d %H:%M:%S"),
        notify_windows=windows,
        location="West Side Mechanics",
        version=WORKFLOW_VERSION,
    )


async def start(env: WorkflowEnvironment, worker: Worker, inp: ReminderInput) -> WorkflowHandle:
    """Starts the reminder as the API does."""
    return await start_reminder(env.client, inp, worker.task_queue)


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await _holds(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def answered(
    handle: WorkflowHandle, fakes: FakeActivities, message_id: str, answer: Answer, sent: int
) -> None:
    """Sends the contact's reply and waits until the workflow has sent `sent` texts in all."""
    await handle.signal(ReminderWorkflow.reply, Reply(message_id=message_id, answer=answer))
    await eventually(lambda: len(fakes.sent) == sent)


async def _holds(check: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = check()
    return await result if inspect.isawaitable(result) else result


async def idle(handle: WorkflowHandle) -> None:
    """Waits until the workflow has no activity running and no workflow task pending."""

    async def is_idle() -> bool:
        raw = (await handle.describe()).raw_description
        return not raw.pending_activities and not raw.HasField("pending_workflow_task")

    await eventually(is_idle)


async def record_history(handle: WorkflowHandle, name: str) -> None:
    """With RECORD_HISTORIES=1, keeps the run's history for the replay test."""
    if os.environ.get("RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


async def test_sends_at_notify_time(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=1, seconds=3), [1])
    notify_at = inp.appointment - timedelta(hours=1)
    handle = await start(workflow_env, worker, inp)
    await asyncio.sleep(1)
    assert fakes.sent == []
    await eventually(lambda: len(fakes.sent) == 1)
    sent_at, request = fakes.sent[0]
    assert request.purpose == Purpose.REMINDER
    assert sent_at >= notify_at - timedelta(milliseconds=50)
    assert sent_at - notify_at < timedelta(seconds=2)
    # The activity has answered; the workflow takes its result in its next task.
    for _ in range(100):
        state = await handle.query(ReminderWorkflow.status)
        if state.status == Status.AWAITING_REPLY:
            break
        await asyncio.sleep(0.05)
    assert state.status == Status.AWAITING_REPLY and state.reminder_sent
    assert fakes.mirrored[-1].status == Status.AWAITING_REPLY
    await record_history(handle, "sent")
    await handle.terminate()


async def test_cancel_before_send_sends_nothing(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=1, seconds=3), [1])
    handle = await start(workflow_env, worker, inp)
    await asyncio.sleep(0.5)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    # The workflow's cancel path writes the deletion itself (as DELETE does before cancelling).
    assert inp.reminder_id in fakes.deleted
    # The armed send learns it at its time, from the mirror.
    await eventually(lambda: len(fakes.withdrawn) == 1, timeout=6)
    assert fakes.sent == []
    await record_history(handle, "deleted")


async def test_past_notify_time_sends_at_once(workflow_env, worker, fakes):
    inp = reminder(timedelta(minutes=30), [3, 2, 1])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1, timeout=3)
    await asyncio.sleep(1)
    assert fakes.purposes() == [Purpose.REMINDER], "of several past notify times only one is sent"
    await handle.terminate()


async def test_yes_then_no_then_gibberish(workflow_env, worker, fakes):
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1)
    await answered(handle, fakes, "m1", Answer.YES, 2)
    state = await handle.query(ReminderWorkflow.status)
    assert (state.status, state.will_attend, state.confirm_sent) == (Status.CONFIRMED, True, True)
    # The same provider message delivered again has no further effect.
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="m1", answer=Answer.YES))
    await answered(handle, fakes, "m2", Answer.NO, 3)
    state = await handle.query(ReminderWorkflow.status)
    assert (state.status, state.will_attend) == (Status.DECLINED, False)
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="m3", answer=Answer.UNKNOWN))
    await eventually(lambda: len(fakes.sent) == 4)
    state = await handle.query(ReminderWorkflow.status)
    assert (state.status, state.will_attend) == (Status.DECLINED, False)
    assert fakes.purposes() == [
        Purpose.REMINDER,
        Purpose.CONFIRMATION,
        Purpose.CANCELLATION,
        Purpose.UNPARSABLE,
    ]
    await record_history(handle, "confirmed_then_declined")
    await handle.terminate()


async def test_no_answer_ends_with_no_response(workflow_env, worker, fakes):
    inp = reminder(timedelta(seconds=3), [1])
    handle = await start(workflow_env, worker, inp)
    result = await asyncio.wait_for(handle.result(), timeout=10)
    assert result.status == Status.NO_RESPONSE
    assert result.reminder_sent and result.will_attend is None
    assert fakes.purposes() == [Purpose.REMINDER]
    await eventually(lambda: fakes.mirrored[-1].status == Status.NO_RESPONSE)
    await record_history(handle, "no_response")


async def test_opt_out_before_notify_sends_nothing(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=1, seconds=3), [1])
    handle = await start(workflow_env, worker, inp)
    await handle.signal(ReminderWorkflow.opt_out, OptOut())
    result = await asyncio.wait_for(handle.result(), timeout=10)
    assert result.status == Status.OPTED_OUT
    await asyncio.sleep(3.5)
    assert fakes.sent == []
    await record_history(handle, "opted_out")


async def test_send_time_opt_out_check_wins(workflow_env, worker, fakes):
    fakes.opted_out.add("12223334444")
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    result = await asyncio.wait_for(handle.result(), timeout=10)
    assert result.status == Status.OPTED_OUT and not result.reminder_sent


async def test_provider_refusal_marks_failed(workflow_env, worker, fakes):
    fakes.refuse = True
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    result = await asyncio.wait_for(handle.result(), timeout=10)
    assert result.status == Status.FAILED and not result.reminder_sent


async def test_answer_skips_later_prompt(workflow_env, worker, fakes):
    # Windows 1 h (already past: sent at once) and 0 h (at the appointment, 4 s away).
    inp = reminder(timedelta(seconds=4), [1, 0])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1)
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="a", answer=Answer.YES))
    result = await asyncio.wait_for(handle.result(), timeout=15)
    assert result.status == Status.CONFIRMED
    assert fakes.purposes() == [Purpose.REMINDER, Purpose.CONFIRMATION]


async def test_two_prompts_when_unanswered(workflow_env, worker, fakes):
    inp = reminder(timedelta(seconds=3), [1, 0])
    handle = await start(workflow_env, worker, inp)
    result = await asyncio.wait_for(handle.result(), timeout=15)
    assert fakes.purposes() == [Purpose.REMINDER, Purpose.REMINDER]
    assert result.status == Status.NO_RESPONSE


async def test_a_flood_of_replies_stays_bounded(workflow_env, worker, fakes):
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1)
    for i in range(300):
        await handle.signal(ReminderWorkflow.reply, Reply(message_id=f"f{i}", answer=Answer.UNKNOWN))
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="last", answer=Answer.YES))
    await eventually(lambda: Purpose.CONFIRMATION in fakes.purposes(), timeout=30)
    unparsable = fakes.purposes().count(Purpose.UNPARSABLE)
    assert unparsable == MAX_UNPARSABLE_ANSWERS
    state = await handle.query(ReminderWorkflow.status)
    assert state.status == Status.CONFIRMED
    await handle.terminate()


def change_of(inp: ReminderInput, appointment: datetime, windows: list[int]) -> Reschedule:
    return Reschedule(
        appointment=appointment,
        appt_user_dt=appointment.strftime("%Y-%m-%d %H:%M:%S"),
        notify_windows=windows,
        notify_at=[appointment - timedelta(hours=h) for h in windows],
        timezone=None,
        location=inp.location,
        participant="Dr Jones",
        language=None,
    )


async def test_reschedule_before_send_moves_the_timer(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=1, seconds=30), [1])
    handle = await start(workflow_env, worker, inp)
    moved = (datetime.now(UTC) + timedelta(hours=1, seconds=3)).replace(microsecond=0)
    state = await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, moved, [1]))
    assert state.appointment == moved and state.participant == "Dr Jones"
    await eventually(lambda: len(fakes.sent) == 1, timeout=8)
    sent_at, request = fakes.sent[0]
    assert sent_at >= moved - timedelta(hours=1, milliseconds=50)
    assert request.participant == "Dr Jones"
    await record_history(handle, "rescheduled")
    await handle.terminate()


async def test_reschedule_after_send_resets_the_answer_and_prompts_again(workflow_env, worker, fakes):
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1)
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="y", answer=Answer.YES))
    await eventually(lambda: len(fakes.sent) == 2)
    moved = (datetime.now(UTC) + timedelta(minutes=45)).replace(microsecond=0)
    state = await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, moved, [1]))
    assert state.will_attend is None and state.status == Status.SCHEDULED
    await eventually(lambda: len(fakes.sent) == 3)
    assert fakes.purposes() == [Purpose.REMINDER, Purpose.CONFIRMATION, Purpose.REMINDER]
    assert fakes.sent[2][1].key != fakes.sent[0][1].key, "a new reminder is not taken for a resend"
    # The activity has answered; the workflow takes its result in its next task.
    for _ in range(100):
        state = await handle.query(ReminderWorkflow.status)
        if state.status == Status.AWAITING_REPLY:
            break
        await asyncio.sleep(0.05)
    assert state.status == Status.AWAITING_REPLY and state.appointment == moved
    await handle.terminate()


async def test_invalid_reschedule_changes_nothing(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=1, seconds=30), [1])
    handle = await start(workflow_env, worker, inp)
    before = await handle.query(ReminderWorkflow.status)
    past = datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, past, [1]))
    assert isinstance(failure.value.cause, ApplicationError) and failure.value.cause.type == "InvalidChange"
    after = await handle.query(ReminderWorkflow.status)
    assert after == before
    await handle.terminate()


async def test_closed_reminder_refuses_reschedule(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=1, seconds=3), [1])
    handle = await start(workflow_env, worker, inp)
    await handle.signal(ReminderWorkflow.opt_out, OptOut())
    await asyncio.wait_for(handle.result(), timeout=10)
    future = datetime.now(UTC) + timedelta(hours=3)
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, future, [1]))


def event_types(history: WorkflowHistory) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events]


def activity_names(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_a_reminder_woken_days_ahead_costs_the_server_one_timer(workflow_env, worker, fakes):
    """What the server stores for a reminder waiting days ahead once it has run (a STOP's wake, a reschedule):
    no marker, no upsert, one timer. Before that, its start event alone (the deferred tests below)."""
    inp = reminder(timedelta(days=2), [24])
    handle = await start(workflow_env, worker, inp)
    await handle.execute_update(ReminderWorkflow.wake)
    deadline = asyncio.get_running_loop().time() + 10
    while "TIMER_STARTED" not in event_types(await handle.fetch_history()):
        assert asyncio.get_running_loop().time() < deadline, "the workflow never set its timer"
        await asyncio.sleep(0.1)
    assert event_types(await handle.fetch_history()) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
        "TIMER_STARTED",
    ]
    await handle.terminate()


async def test_an_answer_takes_one_local_activity_and_one_upsert(workflow_env, worker, fakes):
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1)
    await eventually(lambda: fakes.row(inp.reminder_id) is not None)
    before = await handle.fetch_history()
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="y1", answer=Answer.YES))
    await eventually(lambda: len(fakes.sent) == 2)
    await eventually(lambda: fakes.row(inp.reminder_id).confirm_sent)  # type: ignore[union-attr]
    state = await handle.query(ReminderWorkflow.status)
    assert (state.status, state.confirm_sent) == (Status.CONFIRMED, True)
    after = await handle.fetch_history()
    new = after.events[len(before.events) :]
    kinds = [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in new]
    # From the signal on: the task before it may still have been completing when `before` was read.
    kinds = kinds[kinds.index("WORKFLOW_EXECUTION_SIGNALED") :]
    # One workflow task: the reply text sent by a local activity (a marker), the status upserted.
    assert "ACTIVITY_TASK_SCHEDULED" not in kinds, kinds
    assert kinds.count("MARKER_RECORDED") == 1, kinds
    assert kinds.count("WORKFLOW_TASK_COMPLETED") == 1, kinds
    assert kinds.count("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES") == 1, kinds
    # The upsert carries the one attribute the answer changed.
    signalled = next(
        i for i, e in enumerate(new) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    upserts = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes
        for e in new[signalled:]
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    assert [sorted(u.indexed_fields) for u in upserts] == [["ReminderStatus"]]
    assert "TIMER_CANCELED" not in kinds and "TIMER_STARTED" not in kinds, "the appointment timer stays"
    assert activity_names(after) == ["send_message"]
    # The mirror saw the answer before the reply text went out, then the reply recorded.
    answered = [m for m in fakes.mirrored if m.status == Status.CONFIRMED]
    assert [m.confirm_sent for m in sorted(answered, key=lambda m: m.seq)] == [False, True]
    await handle.terminate()


async def test_reschedule_while_armed_stands_the_old_send_down(workflow_env, worker, fakes):
    # Due in 4 s: armed at once. Moved 3 s later with another participant before it goes.
    inp = reminder(timedelta(hours=1, seconds=4), [1])
    handle = await start(workflow_env, worker, inp)
    await asyncio.sleep(0.5)
    moved = (datetime.now(UTC) + timedelta(hours=1, seconds=7)).replace(microsecond=0)
    await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, moved, [1]))
    await eventually(lambda: len(fakes.sent) == 1, timeout=12)
    await eventually(lambda: len(fakes.withdrawn) == 1, timeout=5)
    sent_at, request = fakes.sent[0]
    assert request.participant == "Dr Jones" and request.key.endswith(":reminder:g1:0")
    assert sent_at >= moved - timedelta(hours=1, milliseconds=50)
    assert fakes.withdrawn[0].key.endswith(":reminder:0")
    await asyncio.sleep(1)
    assert len(fakes.sent) == 1
    await handle.terminate()


async def test_armed_send_waits_out_the_appointment_edge(workflow_env, worker, fakes):
    """A reminder due at the appointment itself (window 0) is armed ahead and still goes out."""
    inp = reminder(timedelta(seconds=3), [0])
    handle = await start(workflow_env, worker, inp)
    result = await asyncio.wait_for(handle.result(), timeout=15)
    assert fakes.purposes() == [Purpose.REMINDER]
    assert result.reminder_sent and result.status == Status.NO_RESPONSE


async def test_a_bare_cancel_opts_out_and_declines(workflow_env, worker, fakes):
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1)
    await handle.signal(ReminderWorkflow.opt_out, OptOut(declines=True))
    result = await asyncio.wait_for(handle.result(), timeout=10)
    assert (result.status, result.will_attend) == (Status.DECLINED, False)
    assert fakes.purposes() == [Purpose.REMINDER], "the number opted out: no cancellation text"


async def test_quiet_hours_at_send_time_move_the_same_reminder_to_their_end(workflow_env, worker, fakes):
    until = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    fakes.quiet = SendResult(delivered_to_provider=False, quiet_until=until)
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    await eventually(lambda: len(fakes.sent) == 1, timeout=10)
    sent_at, request = fakes.sent[0]
    assert sent_at >= until - timedelta(milliseconds=50)
    assert request.key == fakes.withdrawn[0].key, "the same reminder, under the same send key"
    assert (await handle.query(ReminderWorkflow.status)).status == Status.AWAITING_REPLY
    await handle.terminate()


async def test_quiet_hours_past_the_appointment_leave_it_not_sent_saying_why(workflow_env, worker, fakes):
    fakes.quiet = SendResult(delivered_to_provider=False, quiet_past_appointment=True)
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    result = await asyncio.wait_for(handle.result(), timeout=10)
    assert (result.status, result.reason, result.reminder_sent) == (Status.NOT_SENT, "quiet_hours", False)
    assert fakes.sent == []


async def test_an_evicted_reminder_is_armed_ahead_of_its_send(workflow_env, fakes):
    """With a cache smaller than the reminders waiting, a reminder evicted while it sleeps is replayed
    when its timer fires, its own arm-ahead time before its notify time, and its send is dispatched then,
    not at the instant."""
    async with Worker(
        workflow_env.client,
        task_queue=f"test-{uuid.uuid4().hex}",
        workflows=[ReminderWorkflow],
        activities=[fakes.send_message, fakes.mirror_state, fakes.mark_deleted, fakes.open_reminders],
        max_cached_workflows=2,
        max_concurrent_workflow_tasks=2,
    ) as small:
        reminder_id = uuid.uuid4().hex
        ahead = arm_ahead(reminder_id)
        assert timedelta(seconds=60) <= ahead <= timedelta(seconds=300)
        inp = dataclasses.replace(
            reminder(timedelta(hours=1, seconds=4) + ahead, [1]), reminder_id=reminder_id
        )
        notify_at = inp.appointment - timedelta(hours=1)
        handle = await start(workflow_env, small, inp)
        deadline = asyncio.get_running_loop().time() + 10
        while "TIMER_STARTED" not in event_types(await handle.fetch_history()):
            assert asyncio.get_running_loop().time() < deadline, "the workflow never set its timer"
            await asyncio.sleep(0.1)
        # Three more reminders waiting days ahead push the first out of a cache of two.
        fillers = [await start(workflow_env, small, reminder(timedelta(days=2), [24])) for _ in range(3)]
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            history = await handle.fetch_history()
            scheduled = [
                e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
            if scheduled:
                break
            assert asyncio.get_running_loop().time() < deadline, "the send was not armed ahead"
            await asyncio.sleep(0.2)
        armed_at = scheduled[0].event_time.ToDatetime(tzinfo=UTC)
        assert notify_at - armed_at >= ahead - timedelta(seconds=5), (armed_at, notify_at, ahead)
        assert fakes.sent == []
        for h in [handle, *fillers]:
            await h.terminate()


async def test_a_reminder_started_without_search_attributes_sets_them_in_its_first_task(
    workflow_env, worker, fakes
):
    """As an operator's `temporal workflow start` would: the reminder is still found by number and time."""
    inp = reminder(timedelta(days=2), [24])
    handle = await workflow_env.client.start_workflow(
        ReminderWorkflow.run, inp, id=workflow_id(inp.reminder_id), task_queue=worker.task_queue
    )
    for _ in range(100):
        history = await handle.fetch_history()
        if "TIMER_STARTED" in event_types(history):
            break
        await asyncio.sleep(0.1)
    upserts = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    assert [sorted(u.indexed_fields) for u in upserts] == [
        ["AppointmentTime", "ContactNumber", "NotifyTime", "ReminderStatus"]
    ]
    found = (await handle.describe()).typed_search_attributes
    assert found.get(CONTACT_NUMBER) == inp.contact_number
    assert found.get(REMINDER_STATUS) == Status.SCHEDULED.value
    assert found.get(APPOINTMENT_TIME) == inp.appointment
    assert found.get(NOTIFY_TIME) == inp.appointment - timedelta(hours=24)
    await handle.terminate()


async def test_a_long_history_continues_as_new_with_its_state_and_attributes(
    workflow_env, fakes, monkeypatch: pytest.MonkeyPatch
):
    """Past the history limit the reminder goes on in a new run: answered, deduplicated, still findable,
    and the new run upserts nothing it started with."""

    def after_twenty_events(limit: int) -> bool:
        info = workflow.info()
        return info.continued_run_id is None and info.get_current_history_length() > 20

    # Unsandboxed, so the workflow sees the patched module (the sandbox imports its own copy).
    monkeypatch.setattr(workflows.activities, "history_too_long", after_twenty_events)
    async with Worker(
        workflow_env.client,
        task_queue=f"test-{uuid.uuid4().hex}",
        workflows=[ReminderWorkflow],
        activities=[fakes.send_message, fakes.mirror_state, fakes.mark_deleted, fakes.open_reminders],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ) as worker:
        await _answered_across_two_runs(workflow_env, worker, fakes)


async def _answered_across_two_runs(workflow_env, worker, fakes) -> None:
    inp = reminder(timedelta(minutes=30), [1])
    handle = await start(workflow_env, worker, inp)
    first_run = (await handle.describe()).run_id
    await eventually(lambda: len(fakes.sent) == 1)
    # Each answer comes in a workflow task of its own, once the last one is done: sent while the send's
    # completion or the 'Yes' still waited for its task, two events were taken in one task, with one look
    # at the history's length instead of two, and the run stayed under the limit.
    await idle(handle)
    await answered(handle, fakes, "y1", Answer.YES, 2)
    await idle(handle)
    await answered(handle, fakes, "n1", Answer.NO, 3)

    for _ in range(100):
        if (await handle.describe()).run_id != first_run:
            break
        await asyncio.sleep(0.1)
    latest = workflow_env.client.get_workflow_handle(handle.id)
    description = await latest.describe()
    assert description.run_id != first_run, "the run never continued as new"
    state = await latest.query(ReminderWorkflow.status)
    assert (state.status, state.will_attend, state.reminder_sent) == (Status.DECLINED, False, True)
    # The same provider message delivered again to the new run has no effect: the ids seen were carried.
    await latest.signal(ReminderWorkflow.reply, Reply(message_id="y1", answer=Answer.YES))
    await answered(latest, fakes, "y2", Answer.YES, 4)
    state = await latest.query(ReminderWorkflow.status)
    assert state.status == Status.CONFIRMED
    found = (await latest.describe()).typed_search_attributes
    assert (found.get(REMINDER_STATUS), found.get(CONTACT_NUMBER)) == ("confirmed", inp.contact_number)
    new_run = await workflow_env.client.get_workflow_handle(
        handle.id, run_id=description.run_id
    ).fetch_history()
    upserted = [
        sorted(e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        for e in new_run.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    # The first run continued once; in the new one only the answer it took was upserted: the attributes it
    # started with were carried over.
    assert (
        new_run.events[0].workflow_execution_started_event_attributes.continued_execution_run_id == first_run
    )
    assert upserted == [["ReminderStatus"]]
    assert [r.purpose.value for _, r in fakes.sent] == [
        "reminder",
        "confirmation",
        "cancellation",
        "confirmation",
    ]
    await latest.terminate()


# A reminder started days ahead runs no workflow task until its send is armed: the API defers its start.


async def start_deferred(env: WorkflowEnvironment, worker: Worker, inp: ReminderInput) -> WorkflowHandle:
    """Starts a reminder whose send is armed later than now, as the API does: deferred."""
    assert start_delay(initial_state(inp), datetime.now(UTC)) is not None
    return await start(env, worker, inp)


async def test_a_deferred_reminder_runs_no_task_until_its_send_is_armed(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=1), [1])
    inp.appointment += arm_ahead(inp.reminder_id) + timedelta(seconds=4)
    handle = await start_deferred(workflow_env, worker, inp)
    await asyncio.sleep(1.5)
    assert event_types(await handle.fetch_history()) == ["WORKFLOW_EXECUTION_STARTED"]
    # Its first task, at the arm point, dispatches the send at once (which holds until the notify time).
    await eventually(lambda: any(m.wanted_send for m in fakes.mirrored), timeout=8)
    events = event_types(await handle.fetch_history())
    assert events[events.index("WORKFLOW_TASK_COMPLETED") + 1] == "ACTIVITY_TASK_SCHEDULED"
    assert fakes.sent == []
    await handle.terminate()


async def test_a_signal_waits_out_the_deferral_and_a_wake_applies_it_at_once(workflow_env, worker, fakes):
    inp = reminder(timedelta(days=2), [24])
    handle = await start_deferred(workflow_env, worker, inp)
    await handle.signal(ReminderWorkflow.opt_out, OptOut())
    await asyncio.sleep(1)
    assert event_types(await handle.fetch_history()) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_EXECUTION_SIGNALED",
    ]
    await handle.execute_update(ReminderWorkflow.wake)
    state = await asyncio.wait_for(handle.result(), timeout=10)
    assert state.status == Status.OPTED_OUT
    assert fakes.sent == [] and fakes.mirrored[-1].status == Status.OPTED_OUT


async def test_a_deferred_reminder_cancelled_is_deleted_at_once(workflow_env, worker, fakes):
    inp = reminder(timedelta(days=2), [24])
    handle = await start_deferred(workflow_env, worker, inp)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), timeout=10)
    assert isinstance(failure.value.cause, CancelledError)
    assert inp.reminder_id in fakes.deleted and fakes.sent == []


async def test_a_deferred_reminder_refuses_an_invalid_reschedule_and_still_goes_out(
    workflow_env, worker, fakes
):
    inp = reminder(timedelta(hours=1), [1])
    inp.appointment += arm_ahead(inp.reminder_id) + timedelta(seconds=3)
    handle = await start_deferred(workflow_env, worker, inp)
    past = datetime.now(UTC) - timedelta(minutes=5)
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, past, [1]))
    assert isinstance(failure.value.cause, ApplicationError) and failure.value.cause.type == "InvalidChange"
    await eventually(lambda: any(m.wanted_send for m in fakes.mirrored), timeout=8)
    state = await handle.query(ReminderWorkflow.status)
    assert state.appointment == inp.appointment and state.status == Status.SCHEDULED
    await handle.terminate()


async def test_a_deferred_reminder_is_rescheduled_at_once(workflow_env, worker, fakes):
    inp = reminder(timedelta(days=2), [24])
    handle = await start_deferred(workflow_env, worker, inp)
    moved = inp.appointment + timedelta(days=1)
    state = await asyncio.wait_for(
        handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, moved, [24])), timeout=10
    )
    assert state.appointment == moved and state.status == Status.SCHEDULED
    await eventually(lambda: any(m.appointment == moved for m in fakes.mirrored))
    assert fakes.sent == []
    await handle.terminate()
