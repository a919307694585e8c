"""ReminderWorkflow on a real Temporal dev server, with its activities replaced by fakes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.models import (
    OpenReminders,
    OptOutChange,
    Purpose,
    ReminderInput,
    ReminderState,
    Reply,
    Reschedule,
    SendRequest,
    SendResult,
    Status,
    workflow_id,
)
from workflows.reminder import MAX_UNPARSABLE_ANSWERS, ReminderWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"


class FakeActivities:
    def __init__(self) -> None:
        self.sent: list[tuple[datetime, SendRequest]] = []
        self.mirrored: list[ReminderState] = []
        self.opted_out: set[str] = set()
        self.refuse = False

    @activity.defn(name="send_message")
    async def send_message(self, request: SendRequest) -> SendResult:
        if request.contact_number in self.opted_out and request.purpose == Purpose.REMINDER:
            return SendResult(delivered_to_provider=False, opted_out=True)
        if self.refuse:
            raise ApplicationError("refused", type="ProviderRefused", non_retryable=True)
        self.sent.append((datetime.now(UTC), request))
        if request.mirror is not None:
            self.mirrored.append(request.mirror)
        return SendResult(delivered_to_provider=True, provider_id=f"fake-{len(self.sent)}")

    @activity.defn(name="mirror_state")
    async def mirror_state(self, state: ReminderState) -> None:
        self.mirrored.append(state)

    @activity.defn(name="set_opt_out")
    async def set_opt_out(self, change: OptOutChange) -> OpenReminders:
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
        activities=[fakes.send_message, fakes.mirror_state, fakes.set_opt_out],
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
    )


async def start(env: WorkflowEnvironment, worker: Worker, inp: ReminderInput) -> WorkflowHandle:
    return await env.client.start_workflow(
        ReminderWorkflow.run, inp, id=workflow_id(inp.reminder_id), task_queue=worker.task_queue
    )


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


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
    state = await handle.query(ReminderWorkflow.status)
    assert state.status == Status.AWAITING_REPLY and state.reminder_sent
    await eventually(lambda: fakes.mirrored and fakes.mirrored[-1].status == Status.AWAITING_REPLY)
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
    await asyncio.sleep(3.5)
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
    now = datetime.now(UTC)
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="m1", body="Yes!", received_at=now))
    await eventually(lambda: len(fakes.sent) == 2)
    state = await handle.query(ReminderWorkflow.status)
    assert (state.status, state.will_attend, state.confirm_sent) == (Status.CONFIRMED, True, True)
    # The same provider message delivered again has no further effect.
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="m1", body="Yes!", received_at=now))
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="m2", body="no.", received_at=now))
    await eventually(lambda: len(fakes.sent) == 3)
    state = await handle.query(ReminderWorkflow.status)
    assert (state.status, state.will_attend) == (Status.DECLINED, False)
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="m3", body="I know", received_at=now))
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
    await handle.signal(ReminderWorkflow.opt_out)
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
    await handle.signal(
        ReminderWorkflow.reply, Reply(message_id="a", body="yes", received_at=datetime.now(UTC))
    )
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
    now = datetime.now(UTC)
    for i in range(300):
        await handle.signal(ReminderWorkflow.reply, Reply(message_id=f"f{i}", body="what?", received_at=now))
    await handle.signal(ReminderWorkflow.reply, Reply(message_id="last", body="YES", received_at=now))
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
    await handle.signal(
        ReminderWorkflow.reply, Reply(message_id="y", body="yes", received_at=datetime.now(UTC))
    )
    await eventually(lambda: len(fakes.sent) == 2)
    moved = (datetime.now(UTC) + timedelta(minutes=45)).replace(microsecond=0)
    state = await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, moved, [1]))
    assert state.will_attend is None and state.status == Status.SCHEDULED
    await eventually(lambda: len(fakes.sent) == 3)
    assert fakes.purposes() == [Purpose.REMINDER, Purpose.CONFIRMATION, Purpose.REMINDER]
    assert fakes.sent[2][1].key != fakes.sent[0][1].key, "a new reminder is not taken for a resend"
    state = await handle.query(ReminderWorkflow.status)
    assert state.status == Status.AWAITING_REPLY and state.appointment == moved
    await handle.terminate()


async def test_invalid_reschedule_changes_nothing(workflow_env, worker, fakes):
    inp = reminder(timedelta(hours=2), [1])
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
    await handle.signal(ReminderWorkflow.opt_out)
    await asyncio.wait_for(handle.result(), timeout=10)
    future = datetime.now(UTC) + timedelta(hours=3)
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(ReminderWorkflow.reschedule, change_of(inp, future, [1]))
