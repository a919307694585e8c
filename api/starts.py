"""How a reminder's workflow is started, in one place: the API's creates, and the tests and the bench that
start reminders as the API does."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from workflows.activities import start_delay
from workflows.models import ReminderInput, ReminderState, Status, initial_state, workflow_id
from workflows.reminder import ReminderWorkflow
from workflows.search import APPOINTMENT_TIME, CONTACT_NUMBER, NOTIFY_TIME, REMINDER_STATUS


def summary_of(inp: ReminderInput) -> str:
    """The one line the Temporal UI lists: who, when, where (only when, if payloads are encrypted)."""
    where = inp.timezone or "UTC offset as given"
    if inp.contact_search:
        return f"{inp.appt_user_dt} ({where})"
    parts = [f"{inp.contact_number}", f"{inp.appt_user_dt} ({where})"]
    if inp.location:
        parts.append(f"at {inp.location}")
    if inp.participant:
        parts.append(f"with {inp.participant}")
    return " · ".join(parts)


def search_attributes_of(inp: ReminderInput) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(CONTACT_NUMBER, inp.contact_search or inp.contact_number),
            SearchAttributePair(REMINDER_STATUS, Status.SCHEDULED.value),
            SearchAttributePair(APPOINTMENT_TIME, inp.appointment),
            SearchAttributePair(NOTIFY_TIME, inp.notify_times()[0]),
        ]
    )


async def start_reminder(
    temporal: Client, inp: ReminderInput, task_queue: str, state: ReminderState | None = None
) -> WorkflowHandle[ReminderWorkflow, ReminderState]:
    """Starts the reminder's workflow, searchable at once. Days ahead it is a timer on the server until its
    send is armed (`start_delay`): no workflow task before then; a cancel or an update starts it sooner.
    `state`: `initial_state(inp)`, where the caller has made it already."""
    return await temporal.start_workflow(
        ReminderWorkflow.run,
        inp,
        id=workflow_id(inp.reminder_id),
        task_queue=task_queue,
        search_attributes=search_attributes_of(inp),
        static_summary=summary_of(inp),
        start_delay=start_delay(state or initial_state(inp), datetime.now(UTC)),
        # A retried create joins the workflow the first one started, running or not.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
