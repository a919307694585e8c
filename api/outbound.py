"""Texts a person asks for (a reply from the inbox, a reminder sent again), each a workflow of its own so
it is sent once and survives any restart. The caller waits a little for the outcome."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.errors import ApiError, Unavailable
from db.store import Store
from settings import Settings
from workflows.models import OUTBOUND_WORKFLOW_ID_PREFIX, OutboundInput, SendRequest, SendResult
from workflows.outbound import OutboundWorkflow

log = logging.getLogger("reminders.api")

# How long a request waits for its text to reach the provider before answering "queued".
WAIT_FOR_SEND = 8.0


async def send_for_staff(
    temporal: Client, store: Store, settings: Settings, request: SendRequest, summary: str
) -> str:
    """Sends `request` once per key; answers `sent` or `queued` (still on its way). 409 when the contact
    has opted out: nothing is sent."""
    consent = await store.opt_out(request.contact_number)
    if consent is not None and consent["opted_out"]:
        raise ApiError(409, "the contact has opted out (STOP): nothing was sent")
    workflow_id = f"{OUTBOUND_WORKFLOW_ID_PREFIX}{request.key.replace(':', '-')}"
    try:
        handle = await temporal.start_workflow(
            OutboundWorkflow.run,
            OutboundInput(request=request),
            id=workflow_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=summary,
        )
    except WorkflowAlreadyStartedError:
        handle = temporal.get_workflow_handle_for(OutboundWorkflow.run, workflow_id)
    except (RPCError, RuntimeError) as err:
        raise Unavailable("Temporal") from err
    try:
        result: SendResult = await asyncio.wait_for(handle.result(), timeout=WAIT_FOR_SEND)
    except TimeoutError:
        return "queued"
    if result.opted_out:
        raise ApiError(409, "the contact has opted out (STOP): nothing was sent")
    return "sent" if result.delivered_to_provider else "not sent"
