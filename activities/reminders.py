"""The activities the reminder workflows run: send a text, mirror the state, mark a deletion, list the
open reminders of a number.

A send goes out at most once per send key, whatever dies or times out, by a fence in PostgreSQL: right
before the provider is called the send claims its key ("attempt A calls now"), in the same statement that
checks the opt-out and whether the reminder still wants it. Another attempt that finds a claim with no
provider id waits for it while it may be live; once it is older than the settle time, the provider's own
records decide: found, it is recorded and not sent again; not found, it is sent again and counted.
A PostgreSQL outage is waited out inside the attempt, before the claim as after the provider's answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.providers import Provider, ProviderError
from activities.texts import Texts
from activities.wake import wake_deferred
from db.messages import Claim
from db.store import Store, waiting_for_postgres
from rules.schedule import QuietHours, quiet_hold
from rules.segments import encoding_of
from workflows.models import (
    MARK_DELETED,
    MIRROR_STATE,
    OPEN_REMINDERS,
    SEND_MESSAGE,
    OpenReminders,
    Purpose,
    ReminderState,
    SendRequest,
    SendResult,
)

log = logging.getLogger("reminders.activities")

# Answers to carrier keywords go out even to an opted-out number; everything else is held back.
_SENT_WHEN_OPTED_OUT = frozenset({Purpose.OPT_OUT, Purpose.OPT_IN, Purpose.HELP})
# A send whose slot is further away than this gives its activity slot back and is retried later.
MAX_PACING_WAIT = 20.0
# Heartbeats this often while a send is past its hold; the SDK sends them on at its own throttle.
HEARTBEAT_EVERY = 2.0
# Texts on their way to the provider at once, one connection each. More sends wait on a semaphore: a
# thousand requests queued inside httpx's pool made it spend more time sorting its queue than sending.
PROVIDER_CONNECTIONS = 16
# Each send's spacing is this much longer than the rate: a provider counting a strict one-second window must
# not see the jitter of a busy worker's timers and the network as one more message in a second.
PACING_GUARD = 0.03
# At the fence, the gap since the key's last actual call must be the rate's interval and this much more:
# less than PACING_GUARD, so a send on its booked slot is held back only when jitter squeezed it. (At 8 % and
# 5 % a fake Twilio saw no second segment from a number within any second, but the fence's holds cascaded
# and three numbers sent 2.44 segments a second, under the 2.7 the rate allows.)
FENCE_GUARD = 0.01
# How often a send waiting on another attempt's live claim looks again.
CLAIM_POLL = 0.5


def _count(name: str, description: str, **labels: str) -> None:
    """A counter on the SDK's meter, exported with the worker's Temporal metrics on METRICS_PORT."""
    activity.metric_meter().create_counter(name, description).with_additional_attributes(labels).add(1)


async def _heartbeat_forever() -> None:
    # The first beat after a pause: a send done within it costs the server no heartbeat write (5,000 due at
    # one instant each sent one at that instant). The heartbeat timeout leaves SEND_HEARTBEAT past the hold.
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        activity.heartbeat()


class _Fence:
    """Whether this attempt holds the claim: from then on the text may be on its way, and nothing (a
    cancellation included) may stop the attempt before it has recorded the outcome."""

    __slots__ = ("claimed",)

    def __init__(self) -> None:
        self.claimed = False


class ReminderActivities:
    def __init__(
        self,
        store: Store,
        provider: Provider,
        texts: Texts,
        send_rate_per_second: float = 0.0,
        doubt_settle: float = 30.0,
        quiet: QuietHours | None = None,
        temporal: Client | None = None,
    ) -> None:
        self._store = store
        self._temporal = temporal
        self._provider = provider
        self._texts = texts
        self._provider_slots = asyncio.Semaphore(PROVIDER_CONNECTIONS)
        self._send_interval = (1.0 + PACING_GUARD) / send_rate_per_second if send_rate_per_second > 0 else 0.0
        self._settle = timedelta(seconds=doubt_settle)
        self._quiet = quiet

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendRequest) -> SendResult:
        # The state before the send: an armed send writes it ahead of its hold (its fence reads it back); an
        # answer writes it with its claim, one round trip fewer on a reply's path.
        before = request.mirror_before
        if before is not None and (request.armed or request.not_before is not None):
            ahead = before
            await waiting_for_postgres(f"{request.key}: mirror", lambda: self._store.upsert_state(ahead))
            before = None
        if request.not_before is not None:
            # Armed ahead of its time: hold until the instant. The heartbeat timeout covers the hold.
            hold = (request.not_before - datetime.now(UTC)).total_seconds()
            if hold > 0:
                await asyncio.sleep(hold)
        beat = None if activity.info().is_local else asyncio.create_task(_heartbeat_forever())
        fence = _Fence()
        delivery = asyncio.ensure_future(self._deliver(request, fence, before))
        try:
            while True:
                try:
                    return await asyncio.shield(delivery)
                except asyncio.CancelledError:
                    if not fence.claimed:
                        delivery.cancel()
                        raise
                    log.info("%s is cancelled while on its way: recording it first", request.key)
        finally:
            if beat is not None:
                beat.cancel()

    async def _deliver(self, request: SendRequest, fence: _Fence, before: ReminderState | None) -> SendResult:
        """`before`: the state to write with the first claim."""
        number = request.contact_number
        extra = {"reminder_id": request.reminder_id}
        quiet = quiet_hold(self._quiet, request)
        if quiet is not None:
            # A retry of a send that went out just before the quiet hours began is not held by them.
            sent_as = await self._store.sent_as(request.key) if activity.info().attempt > 1 else None
            if sent_as is None:
                if before is not None:
                    held = before
                    await waiting_for_postgres(
                        f"{request.key}: mirror", lambda: self._store.upsert_state(held)
                    )
                return quiet
        text = self._texts.render(
            request.purpose,
            appt_user_dt=request.appt_user_dt,
            location=request.location,
            participant=request.participant,
            language=request.language,
            body=request.body,
        )
        body = self._texts.finish(text, request.purpose, first_to_number=False)
        # The fence picks this one if the number has never been sent a text (the opt-out line, CTIA).
        first_body = self._texts.finish(text, request.purpose, first_to_number=True)
        sender = self._provider.sender_for(number)
        info = activity.info()
        attempt = f"{info.workflow_run_id}/{info.activity_id}/{info.attempt}/{uuid.uuid4().hex[:8]}"
        take_over: tuple[str, datetime] | None = None
        pacing = None
        while True:
            async with self._provider_slots:
                if pacing is None and self._send_interval:
                    # One slot per send: a send waiting on another attempt's claim does not book more.
                    pacing = await self._wait_for_send_slot(sender, first_body)
                claim = await waiting_for_postgres(
                    f"{request.key}: claim",
                    functools.partial(
                        self._store.claim_send,
                        key=request.key,
                        reminder_id=request.reminder_id,
                        contact_number=number,
                        purpose=request.purpose.value,
                        body=body,
                        provider=self._provider.name,
                        sender=sender,
                        attempt=attempt,
                        check_opt_out=request.purpose not in _SENT_WHEN_OPTED_OUT,
                        armed=request.armed,
                        take_over=take_over,
                        first_body=first_body if first_body != body else None,
                        pacing=pacing,
                        mirror=before,
                    ),
                )
                before = None
                if claim.claimed:
                    fence.claimed = True
                    sent_body = claim.body or body
                    provider_id = await self._call_provider(request, sent_body, attempt)
            if claim.claimed:
                # Recorded after the connection is handed on: the claim holds the send meanwhile, and in a
                # burst the next text does not wait on this one's database round trip.
                if provider_id is None:
                    return SendResult(delivered_to_provider=False, opted_out=True)
                await self._record_sent(request, provider_id, "answer", sent_body)
                _count(
                    "reminders_messages_sent",
                    "Messages the provider accepted",
                    purpose=request.purpose.value,
                )
                log.info("sent %s for %s as %s", request.purpose.value, request.key, provider_id, extra=extra)
                return SendResult(delivered_to_provider=True, provider_id=provider_id)
            if claim.paced_out:
                # The booked slot came, but the last call on this key was later than booked: wait it out.
                await asyncio.sleep(max(claim.pace_wait or 0.0, 0.005))
                continue
            if claim.sent_as is not None:
                if request.mirror is not None:
                    await self._store.upsert_state(request.mirror)
                log.info(
                    "%s was sent before as %s; not sending again", request.key, claim.sent_as, extra=extra
                )
                return SendResult(delivered_to_provider=True, provider_id=claim.sent_as)
            if claim.opted_out:
                log.info("not sending %s to opted-out %s", request.purpose.value, number, extra=extra)
                _count("reminders_held_for_opt_out", "Messages not sent because the number opted out")
                return SendResult(delivered_to_provider=False, opted_out=True)
            if claim.withdrawn:
                log.info("armed %s stands down: the reminder no longer wants it", request.key, extra=extra)
                return SendResult(delivered_to_provider=False, withdrawn=True)
            done, take_over = await self._settle_doubt(request, claim, sender, claim.body or body)
            if done:
                return SendResult(
                    delivered_to_provider=True, provider_id=await self._store.sent_as(request.key)
                )

    async def _settle_doubt(
        self, request: SendRequest, claim: Claim, sender: str, body: str
    ) -> tuple[bool, tuple[str, datetime] | None]:
        """Another attempt's claim stands with no provider id. While it may be live, wait for it; once it is
        older than the settle time, look it up at the provider. Answers whether the send is now known made
        (and recorded), and otherwise the claim to take over for a send again (None: look again)."""
        if claim.held_since is None or claim.held_by is None:
            # The claim was taken between this attempt's look and its own try: look again.
            await asyncio.sleep(CLAIM_POLL / 10)
            return False, None
        age = claim.now - claim.held_since
        if age < self._settle:
            await asyncio.sleep(min((self._settle - age).total_seconds(), CLAIM_POLL))
            return False, None
        found = await self._provider.find_sent(request.contact_number, sender, body, claim.held_since)
        recorded = await self._store.recorded_ids(self._provider.name, found) if found else set()
        unrecorded = [provider_id for provider_id in found if provider_id not in recorded]
        if unrecorded:
            log.info("%s was made before as %s (provider's records); recorded", request.key, unrecorded[0])
            _count("reminders_doubts_found_sent", "Doubtful sends the provider's records showed made")
            await self._record_sent(request, unrecorded[0], "lookup", body)
            return True, None
        log.warning(
            "%s: claimed at %s with no answer and not in the provider's records; sending again",
            request.key,
            claim.held_since.isoformat(),
            extra={"reminder_id": request.reminder_id},
        )
        _count("reminders_sends_resent", "Doubtful sends made again after the provider's records lacked them")
        return False, (claim.held_by, claim.held_since)

    async def _call_provider(self, request: SendRequest, body: str, attempt: str) -> str | None:
        """Calls the provider under this attempt's claim; answers its id, or None for a number the provider
        says opted out. A refusal that surely sent nothing releases the claim; a doubt keeps it."""
        number = request.contact_number
        try:
            return await self._provider.send(number, body, callback_key=request.key)
        except ProviderError as err:
            if err.maybe_sent:
                # The provider may have it: the claim stays, and the next attempt asks its records first.
                raise ApplicationError(
                    f"in doubt: {err}", type="SendInDoubt", next_retry_delay=self._settle
                ) from err
            await self._store.release_claim(request.key, attempt)
            if err.opted_out:
                await self._store.set_consent(number, True, at=datetime.now(UTC), source="provider")
                _count("reminders_held_for_opt_out", "Messages not sent because the number opted out")
                return None
            if err.retryable:
                raise
            _count(
                "reminders_send_failed",
                "Messages the provider refused for good",
                purpose=request.purpose.value,
            )
            raise ApplicationError(str(err), type="ProviderRefused", non_retryable=True) from err

    async def _wait_for_send_slot(self, sender: str, body: str) -> tuple[str, float]:
        """Books this send's slot and sleeps until it; answers the pacing key and interval the fence then
        holds it to (no sooner than that after the key's last actual call)."""
        key = self._provider.pacing_key(sender)
        # Twilio counts segments, Flowroute attempts; the longer of the two texts this send may be is booked.
        cost = encoding_of(body).segments if self._provider.counts_segments else 1
        interval = self._send_interval * cost
        slot = await waiting_for_postgres(
            f"pacing {key}", lambda: self._store.reserve_send_slot(key, interval, MAX_PACING_WAIT)
        )
        if slot is None:
            raise ApplicationError(
                f"{key} is booked for the next {MAX_PACING_WAIT:.0f} s",
                type="Paced",
                next_retry_delay=timedelta(seconds=MAX_PACING_WAIT / 2),
            )
        await asyncio.sleep(max(slot.timestamp() - time.time(), 0.0))
        return key, interval * (1.0 + FENCE_GUARD) / (1.0 + PACING_GUARD)

    async def _record_sent(self, request: SendRequest, provider_id: str, recorded_by: str, body: str) -> None:
        """The provider has the message: record it before anything else, or a retry would have to ask the
        provider's records. A database outage is waited out here (the send heartbeats meanwhile)."""
        cost = encoding_of(body)
        await waiting_for_postgres(
            f"recording sent message {provider_id}",
            lambda: self._store.complete_send(
                request.key, provider_id, request.mirror, recorded_by, (cost.encoding, cost.segments)
            ),
        )

    @activity.defn(name=MIRROR_STATE)
    async def mirror_state(self, state: ReminderState) -> None:
        await self._store.upsert_state(state)

    @activity.defn(name=MARK_DELETED)
    async def mark_deleted(self, reminder_id: str) -> None:
        await self._store.mark_deleted(reminder_id)

    @activity.defn(name=OPEN_REMINDERS)
    async def open_reminders(self, contact_number: str) -> OpenReminders:
        """The number's open reminders, to be told of an opt-out; those still deferred are woken first, so
        it shows at once rather than when their sends are armed."""
        opened = await self._store.open_reminders(contact_number)
        if self._temporal is not None:
            await wake_deferred(self._temporal, [r for r, unwritten in opened if unwritten])
        return OpenReminders(reminder_ids=[r for r, _ in opened])

    def all(self) -> list[object]:
        return [self.send_message, self.mirror_state, self.mark_deleted, self.open_reminders]
