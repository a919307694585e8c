"""One workflow per carrier keyword (STOP, START, HELP) received: the number's open reminders told, the
answer sent. The webhook has already written the opt-out itself, in order, before answering the provider.
Its own module, so the sandbox does not define it again for every reminder it sets up."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activities import (
        MIRROR_RETRY,
        MIRROR_TIMEOUT,
        SEND_HEARTBEAT,
        SEND_RETRY,
        SEND_START_TO_CLOSE,
    )
    from workflows.models import (
        OPEN_REMINDERS,
        SEND_MESSAGE,
        KeywordInput,
        OpenReminders,
        OptOut,
        Purpose,
        SendRequest,
        SendResult,
        workflow_id,
    )
    from workflows.reminder import ReminderWorkflow


@workflow.defn
class KeywordWorkflow:
    """A carrier keyword from one number: applied once per provider message id."""

    @workflow.run
    async def run(self, inp: KeywordInput) -> None:
        purpose = Purpose(inp.keyword)
        if purpose == Purpose.OPT_OUT:
            opened = await workflow.execute_activity(
                OPEN_REMINDERS,
                inp.contact_number,
                result_type=OpenReminders,
                start_to_close_timeout=MIRROR_TIMEOUT,
                retry_policy=MIRROR_RETRY,
            )
            for reminder_id in opened.reminder_ids:
                handle = workflow.get_external_workflow_handle_for(
                    ReminderWorkflow.run, workflow_id(reminder_id)
                )
                try:
                    await handle.signal(
                        ReminderWorkflow.opt_out, OptOut(declines=reminder_id == inp.declines)
                    )
                except Exception as err:  # noqa: BLE001 - a reminder that already ended needs nothing
                    workflow.logger.info("reminder %s not signalled: %s", reminder_id, err)
        if not inp.answer:
            return
        await workflow.execute_activity(
            SEND_MESSAGE,
            SendRequest(
                reminder_id=None,
                contact_number=inp.contact_number,
                purpose=purpose,
                key=f"keyword:{inp.message_id}",
            ),
            result_type=SendResult,
            start_to_close_timeout=SEND_START_TO_CLOSE,
            heartbeat_timeout=SEND_HEARTBEAT,
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=SEND_RETRY,
        )
