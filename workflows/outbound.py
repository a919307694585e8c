"""One text a person asked for (a reply from the inbox, a reminder sent again): sent once through the same
fence as every text (opt-out checked, paced, recorded in the conversation). Its own module, like the
keyword workflow, so the sandbox does not set it up again for every reminder."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activities import SEND_HEARTBEAT, SEND_RETRY, SEND_START_TO_CLOSE
    from workflows.models import SEND_MESSAGE, OutboundInput, SendResult


@workflow.defn
class OutboundWorkflow:
    @workflow.run
    async def run(self, inp: OutboundInput) -> SendResult:
        return await workflow.execute_activity(
            SEND_MESSAGE,
            inp.request,
            result_type=SendResult,
            start_to_close_timeout=SEND_START_TO_CLOSE,
            heartbeat_timeout=SEND_HEARTBEAT,
            schedule_to_close_timeout=timedelta(hours=1),
            retry_policy=SEND_RETRY,
        )
