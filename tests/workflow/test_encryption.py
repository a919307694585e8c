"""With PAYLOAD_ENCRYPTION_KEY set, the Temporal server holds no phone number or appointment detail."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from datetime import timedelta

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from api.starts import search_attributes_of
from stack.codec import AesGcmCodec, contact_search_value, data_converter, parse_key
from tests.workflow.test_reminder_workflow import FakeActivities, eventually, reminder
from workflows.models import Status, workflow_id
from workflows.reminder import ReminderWorkflow
from workflows.search import CONTACT_NUMBER

KEY = base64.b64encode(os.urandom(32)).decode()


def test_key_forms():
    raw = os.urandom(16)
    assert parse_key(raw.hex()) == raw
    assert parse_key(base64.b64encode(raw).decode()) == raw
    with pytest.raises(ValueError):
        parse_key("too-short")


async def test_round_trip_and_wrong_key():
    codec = AesGcmCodec(parse_key(KEY))
    converter = data_converter(KEY)
    [payload] = await converter.encode(["12223334444 at West Side"])
    assert b"12223334444" not in payload.SerializeToString()
    assert await converter.decode([payload], [str]) == ["12223334444 at West Side"]
    other = AesGcmCodec(os.urandom(32))
    [sealed] = await codec.encode([payload])
    with pytest.raises(ValueError):
        await other.decode([sealed])


async def stored_bytes(client: Client, workflow_id_: str) -> bytes:
    """Every event of the history as the server keeps it (payload data raw, not base64)."""
    history = await client.get_workflow_handle(workflow_id_).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


async def test_without_a_key_the_number_is_in_the_history(workflow_env):
    """The check below can fail: without the codec the same bytes are there in clear."""
    fakes = FakeActivities()
    inp = reminder(timedelta(minutes=30), [1])
    queue = f"plain-{uuid.uuid4().hex}"
    async with Worker(
        workflow_env.client,
        task_queue=queue,
        workflows=[ReminderWorkflow],
        activities=[fakes.send_message, fakes.mirror_state, fakes.mark_deleted, fakes.open_reminders],
    ):
        handle = await workflow_env.client.start_workflow(
            ReminderWorkflow.run, inp, id=workflow_id(inp.reminder_id), task_queue=queue
        )
        await eventually(lambda: len(fakes.sent) == 1)
        assert inp.contact_number.encode() in await stored_bytes(workflow_env.client, handle.id)
        await handle.terminate()


async def test_history_holds_no_clear_text(workflow_env):
    target = workflow_env.client.service_client.config.target_host
    client = await Client.connect(target, data_converter=data_converter(KEY))
    fakes = FakeActivities()
    inp = reminder(timedelta(minutes=30), [1])
    inp.contact_search = contact_search_value(KEY, inp.contact_number)
    queue = f"enc-{uuid.uuid4().hex}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ReminderWorkflow],
        activities=[fakes.send_message, fakes.mirror_state, fakes.mark_deleted, fakes.open_reminders],
    ):
        # Started as the API starts it, with the search attributes the API sets.
        handle = await client.start_workflow(
            ReminderWorkflow.run,
            inp,
            id=workflow_id(inp.reminder_id),
            task_queue=queue,
            search_attributes=search_attributes_of(inp),
        )
        await eventually(lambda: len(fakes.sent) == 1)
        state = await handle.query(ReminderWorkflow.status)
        assert state.status == Status.AWAITING_REPLY and fakes.sent[0][1].contact_number == inp.contact_number
        await asyncio.sleep(0.5)
        raw = await stored_bytes(workflow_env.client, handle.id)
        assert inp.contact_number.encode() not in raw
        assert b"West Side Mechanics" not in raw
        description = await handle.describe()
        assert description.typed_search_attributes.get(CONTACT_NUMBER) == inp.contact_search
        await handle.terminate()
