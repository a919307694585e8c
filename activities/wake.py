"""Waking reminders whose start is deferred (`workflows.activities.start_delay`): until its send is armed such
a reminder has run no workflow task, and a signal sent to it waits until then. An update starts it at once."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from workflows.models import workflow_id
from workflows.reminder import ReminderWorkflow

log = logging.getLogger("reminders.activities")

# A reminder not woken in time still takes its signals when its send is armed, before anything is sent.
WAKE_TIMEOUT = timedelta(seconds=10)


async def wake_deferred(temporal: Client, reminder_ids: list[str]) -> None:
    async def wake(reminder_id: str) -> None:
        handle = temporal.get_workflow_handle_for(ReminderWorkflow.run, workflow_id(reminder_id))
        try:
            await handle.execute_update(ReminderWorkflow.wake, rpc_timeout=WAKE_TIMEOUT)
        except (RPCError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
            log.info("reminder %s not woken: %s", reminder_id, err)

    await asyncio.gather(*(wake(r) for r in reminder_ids))
