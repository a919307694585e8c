"""The activities the reminder workflows run: send a text, mirror the state, record an opt-out."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.providers import Provider, ProviderError
from activities.store import DATABASE_ERRORS, Store
from activities.texts import Texts
from workflows.models import OpenReminders, OptOutChange, Purpose, ReminderState, SendRequest, SendResult

log = logging.getLogger("reminders.activities")

# Answers to carrier keywords go out even to an opted-out number; everything else is held back.
_SENT_WHEN_OPTED_OUT = frozenset({Purpose.OPT_OUT, Purpose.OPT_IN, Purpose.HELP})


def _count(name: str, description: str, **labels: str) -> None:
    """A counter on the SDK's meter, exported with the worker's Temporal metrics on METRICS_PORT."""
    activity.metric_meter().create_counter(name, description).with_additional_attributes(labels).add(1)


# A send whose slot is further away than this gives its activity slot back and is retried later.
MAX_PACING_WAIT = 20.0
# How long a send the provider accepted keeps trying to record itself through a database outage.
RECORD_PATIENCE = 60.0
# Heartbeats at least this often while waiting, so a dead worker's send is noticed and retried quickly.
HEARTBEAT_EVERY = 2.0
# Texts on their way to the provider at once, one connection each. More sends wait on a semaphore: a
# thousand requests queued inside httpx's pool made it spend more time sorting its queue than sending.
PROVIDER_CONNECTIONS = 16
# Added to each send's spacing: a provider counting a strict one-second window must not see the network's
# jitter as a sixth message in a second.
PACING_GUARD = 0.02


async def _sleep_alive(seconds: float) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    # A local activity (an answer to a reply) has no heartbeat of its own: its workflow task is kept alive.
    beat = not activity.info().is_local
    while (left := until - loop.time()) > 0:
        if beat:
            activity.heartbeat()
        await asyncio.sleep(min(left, HEARTBEAT_EVERY))


class ReminderActivities:
    def __init__(
        self, store: Store, provider: Provider, texts: Texts, send_rate_per_second: float = 0.0
    ) -> None:
        self._store = store
        self._provider = provider
        self._texts = texts
        self._provider_slots = asyncio.Semaphore(PROVIDER_CONNECTIONS)
        # Providers cap each sending number (Flowroute: 5 a second); 0 sends as fast as they come.
        self._send_interval = 1.0 / send_rate_per_second + PACING_GUARD if send_rate_per_second > 0 else 0.0

    async def _wait_for_send_slot(self, contact_number: str) -> None:
        if not self._send_interval:
            return
        sender = self._provider.sender_for(contact_number)
        wait = await self._store.reserve_send_slot(sender, self._send_interval, MAX_PACING_WAIT)
        if wait is None:
            raise ApplicationError(
                f"sending number {sender} is booked for the next {MAX_PACING_WAIT:.0f} s",
                type="Paced",
                next_retry_delay=timedelta(seconds=MAX_PACING_WAIT / 2),
            )
        await _sleep_alive(wait)

    async def _record_sent(self, request: SendRequest, provider_id: str) -> None:
        """The provider has the message: record it before giving up, or a retry would send it again. A
        database outage is waited out here (heartbeating) rather than failing the activity."""
        delay = 0.2
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECORD_PATIENCE
        while True:
            try:
                await self._store.complete_send(request.key, provider_id, request.mirror)
                return
            except DATABASE_ERRORS as err:
                if loop.time() + delay > deadline:
                    raise
                log.warning("recording sent message %s waits for PostgreSQL: %r", provider_id, err)
                await _sleep_alive(delay)
                delay = min(delay * 2, 3.0)

    @activity.defn
    async def send_message(self, request: SendRequest) -> SendResult:
        number = request.contact_number
        extra = {"reminder_id": request.reminder_id}
        if request.not_before is not None:
            # Armed ahead of its time: hold until the instant. The heartbeat timeout covers the hold.
            hold = (request.not_before - datetime.now(UTC)).total_seconds()
            if hold > 0:
                await asyncio.sleep(hold)
        body = self._texts.render(
            request.purpose,
            appt_user_dt=request.appt_user_dt,
            location=request.location,
            participant=request.participant,
            language=request.language,
        )
        # Checked right before sending, so a STOP, a delete or a reschedule that lands at notify time is
        # still honoured.
        gate = await self._store.open_send(
            key=request.key,
            reminder_id=request.reminder_id,
            contact_number=number,
            purpose=request.purpose.value,
            body=body,
            provider=self._provider.name,
            check_opt_out=request.purpose not in _SENT_WHEN_OPTED_OUT,
            generation=request.generation,
            mirror_before=request.mirror_before,
        )
        if gate.sent_as is not None:
            if request.mirror is not None:
                await self._store.upsert_state(request.mirror)
            log.info("%s was sent before as %s; not sending again", request.key, gate.sent_as, extra=extra)
            return SendResult(delivered_to_provider=True, provider_id=gate.sent_as)
        if gate.opted_out:
            log.info("not sending %s to opted-out %s", request.purpose.value, number, extra=extra)
            _count("reminders_held_for_opt_out", "Messages not sent because the number opted out")
            return SendResult(delivered_to_provider=False, opted_out=True)
        if gate.withdrawn:
            log.info("armed %s stands down: the reminder no longer wants it", request.key, extra=extra)
            return SendResult(delivered_to_provider=False, withdrawn=True)
        await self._wait_for_send_slot(number)
        try:
            async with self._provider_slots:
                provider_id = await self._provider.send(number, body)
        except ProviderError as err:
            if err.opted_out:
                await self._store.set_opt_out(number, True)
                _count("reminders_held_for_opt_out", "Messages not sent because the number opted out")
                return SendResult(delivered_to_provider=False, opted_out=True)
            if err.retryable:
                raise
            _count(
                "reminders_send_failed",
                "Messages the provider refused for good",
                purpose=request.purpose.value,
            )
            raise ApplicationError(str(err), type="ProviderRefused", non_retryable=True) from err
        await self._record_sent(request, provider_id)
        _count("reminders_messages_sent", "Messages the provider accepted", purpose=request.purpose.value)
        log.info(
            "sent %s for reminder %s as %s",
            request.purpose.value,
            request.reminder_id,
            provider_id,
            extra=extra,
        )
        return SendResult(delivered_to_provider=True, provider_id=provider_id)

    @activity.defn
    async def mirror_state(self, state: ReminderState) -> None:
        await self._store.upsert_state(state)

    @activity.defn
    async def set_opt_out(self, change: OptOutChange) -> OpenReminders:
        await self._store.set_opt_out(change.contact_number, change.opted_out)
        return OpenReminders(reminder_ids=await self._store.open_reminders(change.contact_number))
