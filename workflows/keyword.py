"""One workflow per carrier keyword (STOP, START, HELP) received: the opt-out recorded, the number's open
reminders told, the answer sent. Its own module, so the sandbox does not define it again for every
reminder it sets up."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.reminders import ReminderActivities
    from workflows.models import KeywordInput, OptOutChange, Purpose, SendRequest, workflow_id
    from workflows.reminder import MIRROR_RETRY, SEND_RETRY, SEND_START_TO_CLOSE, ReminderWorkflow


@workflow.defn
class KeywordWorkflow:
    """A carrier keyword (STOP, START, HELP) from one number: applied once per provider message id."""

    @workflow.run
    async def run(self, inp: KeywordInput) -> None:
        purpose = Purpose(inp.keyword)
        if purpose in (Purpose.OPT_OUT, Purpose.OPT_IN):
            opened = await workflow.execute_activity_method(
                ReminderActivities.set_opt_out,
                OptOutChange(contact_number=inp.contact_number, opted_out=purpose == Purpose.OPT_OUT),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=MIRROR_RETRY,
            )
            if purpose == Purpose.OPT_OUT:
                for reminder_id in opened.reminder_ids:
                    handle = workflow.get_external_workflow_handle_for(
                        ReminderWorkflow.run, workflow_id(reminder_id)
                    )
                    try:
                        await handle.signal(ReminderWorkflow.opt_out)
                    except Exception as err:  # noqa: BLE001 - a reminder that already ended needs nothing
                        workflow.logger.info("reminder %s not signalled: %s", reminder_id, err)
        await workflow.execute_activity_method(
            ReminderActivities.send_message,
            SendRequest(
                reminder_id=None,
                contact_number=inp.contact_number,
                purpose=purpose,
                key=f"keyword:{inp.message_id}",
            ),
            start_to_close_timeout=SEND_START_TO_CLOSE,
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=SEND_RETRY,
        )
