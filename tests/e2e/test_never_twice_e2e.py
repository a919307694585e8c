"""Never twice, never after STOP, against fakes that behave like the providers: latency, a connection cut
after the provider took the text, a 500 after it took it, receipts, retried webhooks, both providers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from db.messages import Claim
from db.store import Store
from devstack.fakes import FakeProvider
from devstack.harness import Stack, flowroute_env, new_number, running_stack, twilio_env, wait_until
from tests.e2e.test_reminders_e2e import create_due_now, get
from tests.e2e.test_replies_e2e import flowroute_inbound, sent_reminder
from workflows.models import ReminderInput, Status, initial_state

pytestmark = pytest.mark.e2e

# A doubtful send is looked up this soon (the provider timeout must be shorter).
FAST_DOUBT = {
    "SEND_DOUBT_SETTLE": "2",
    "PROVIDER_TIMEOUT": "1.5",
    "SEND_RATE_PER_SECOND": "0",
    "PUBLIC_URL": "auto",
}


@pytest.fixture(scope="module")
def slow() -> Iterator[FakeProvider]:
    provider = FakeProvider(latency=0.3)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def flowroute(tmp_path_factory: pytest.TempPathFactory, slow: FakeProvider) -> Iterator[Stack]:
    yield from running_stack(Path(tmp_path_factory.mktemp("never-twice")), flowroute_env(slow, **FAST_DOUBT))


@pytest.fixture(scope="module")
def twilio_fake() -> Iterator[FakeProvider]:
    provider = FakeProvider(latency=0.3, twilio_token="never-twice-token")
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def twilio(tmp_path_factory: pytest.TempPathFactory, twilio_fake: FakeProvider) -> Iterator[Stack]:
    yield from running_stack(
        Path(tmp_path_factory.mktemp("never-twice-twilio")), twilio_env(twilio_fake, **FAST_DOUBT)
    )


def messages(stack: Stack, reminder_id: str) -> list[dict]:
    with stack.client() as http:
        return http.get(f"/reminder/{reminder_id}/messages").json()["messages"]


def outbound(stack: Stack, reminder_id: str) -> list[dict]:
    return [m for m in messages(stack, reminder_id) if m["direction"] == "outbound"]


def test_a_burst_behind_a_slow_provider_sends_each_once(flowroute: Stack, slow: FakeProvider):
    contacts = [new_number() for _ in range(40)]
    ids = [create_due_now(flowroute, n) for n in contacts]
    for number in contacts:
        slow.wait_for(number, 1, timeout=60)
    wait_until(lambda: all(get(flowroute, i)["reminder_sent"] for i in ids), timeout=30, what="all recorded")
    time.sleep(1)
    assert {n: len(slow.to(n)) for n in contacts} == dict.fromkeys(contacts, 1)


@pytest.mark.parametrize("fault", ["drop_after_accept", "error_after_accept"])
def test_taken_then_no_answer_is_found_at_the_provider_not_sent_again(
    flowroute: Stack, slow: FakeProvider, fault
):
    """The provider took the text and the answer never came (connection cut, or a 500 after it took it):
    the next attempt finds it in the provider's message list and records it. (Receipts off: with them, the
    receipt naming the send key would settle it first.)"""
    number = new_number()
    slow.receipts = False
    setattr(slow, fault, 1)
    reminder_id = create_due_now(flowroute, number)
    state = wait_until(
        lambda: (r := get(flowroute, reminder_id))["reminder_sent"] and r, timeout=30, what="recorded"
    )
    assert state["status"] == "awaiting_reply"
    time.sleep(3)
    taken = slow.to(number)
    assert len(taken) == 1, "taken once, never sent again"
    assert [m["provider_id"] for m in outbound(flowroute, reminder_id)] == [taken[0].id]
    slow.receipts = True


def test_a_claim_whose_answer_was_lost_is_its_own_attempts_and_no_other(flowroute: Stack):
    """The claim's statement committed and its answer was lost with the connection: the same attempt asking
    again holds it (the provider was never called under it), and it is not counted as a resend; another
    attempt is held off by it."""
    key = f"lost-answer-{uuid.uuid4().hex}"

    async def claims() -> tuple[Claim, Claim, Claim, int]:
        pool = await asyncpg.create_pool(flowroute.run_info()["database_url"], min_size=1, max_size=2)
        store = Store(pool)

        async def claim(attempt: str) -> Claim:
            return await store.claim_send(
                key=key,
                reminder_id=None,
                contact_number=new_number(),
                purpose="reminder",
                body="hello",
                provider="flowroute",
                sender="18005550100",
                attempt=attempt,
                check_opt_out=False,
                armed=False,
            )

        try:
            first, again, other = await claim("a/1"), await claim("a/1"), await claim("b/1")
            resent = await pool.fetchval("SELECT resent FROM messages WHERE send_key = $1", key)
            return first, again, other, resent
        finally:
            await pool.close()

    first, again, other, resent = asyncio.run(claims())
    assert first.claimed and again.claimed
    assert not other.claimed and other.held_by == "a/1" and other.sent_as is None
    assert resent == 0


def test_a_502_the_provider_did_not_take_is_sent_again_once(flowroute: Stack, slow: FakeProvider):
    """A 502 leaves the send in doubt; the provider's records lack it, so it goes out again, once."""
    number = new_number()
    attempts = slow.attempts
    slow.script.append(502)
    reminder_id = create_due_now(flowroute, number)
    wait_until(lambda: get(flowroute, reminder_id)["reminder_sent"], timeout=30, what="recorded")
    assert len(slow.to(number)) == 1
    assert slow.attempts >= attempts + 2
    assert "not in the provider's records; sending again" in (flowroute.data_dir / "worker.log").read_text()


def test_delivery_receipt_comes_back_through_the_callback(flowroute: Stack, slow: FakeProvider):
    number = new_number()
    reminder_id = sent_reminder(flowroute, slow, number)
    sent = wait_until(
        lambda: (m := outbound(flowroute, reminder_id)) and m[0]["delivery_status"] and m, what="receipt"
    )
    assert sent[0]["delivery_status"] == "delivered"
    assert "key=" in slow.to(number)[0].body["dlr_callback"]


def test_a_receipt_before_its_id_is_kept_until_the_id_is_recorded(flowroute: Stack, slow: FakeProvider):
    number = new_number()
    slow.callback_delay = 30.0
    try:
        # The fake's ids are sequential: the next text it takes gets this one.
        upcoming = f"mdr2-{len(slow.received) + 1:032x}"
        receipt = {"data": {"id": upcoming, "type": "delivery_receipt", "attributes": {"status": "early"}}}
        with flowroute.client() as http:
            assert http.post("/webhooks/flowroute/dlr", json=receipt).json()["message"].startswith("kept")
        reminder_id = sent_reminder(flowroute, slow, number)
        assert slow.to(number)[0].id == upcoming
        assert outbound(flowroute, reminder_id)[0]["delivery_status"] == "early"
        # The reminder shows it too, written with the send's own state.
        with flowroute.client() as http:
            assert http.get(f"/reminder/{reminder_id}").json()["delivery_status"] == "early"
    finally:
        slow.callback_delay = 0.2


def test_a_late_start_never_undoes_a_later_stop(flowroute: Stack, slow: FakeProvider):
    number = new_number()
    now = datetime.now(UTC).replace(microsecond=0)

    def keyword(body: str, at: datetime) -> None:
        payload = {
            "data": {
                "type": "message",
                "id": f"mdr2-{uuid.uuid4().hex}",
                "attributes": {
                    "to": "18005550100",
                    "from": number,
                    "body": body,
                    "timestamp": at.isoformat(),
                },
            }
        }
        with flowroute.client() as http:
            assert http.post("/webhooks/flowroute", json=payload).status_code == 200

    keyword("STOP", now)
    keyword("START", now - timedelta(seconds=5))  # sent before the STOP, delivered after it
    reminder_id = create_due_now(flowroute, number)
    wait_until(lambda: get(flowroute, reminder_id)["status"] == "opted_out", timeout=20, what="opted out")
    assert [m.text for m in slow.to(number) if "appointment on" in m.text] == []


def test_a_retried_webhook_never_reaches_a_second_reminder(flowroute: Stack, slow: FakeProvider):
    number = new_number()
    first = sent_reminder(flowroute, slow, number, minutes=30)
    flowroute_inbound(flowroute, number, "Yes", message_id="mdr2-retried-reply")
    wait_until(lambda: get(flowroute, first)["confirm_sent"], what="first confirmed")
    second = sent_reminder(flowroute, slow, number, minutes=40)
    flowroute_inbound(flowroute, number, "Yes", message_id="mdr2-retried-reply")
    time.sleep(2)
    assert get(flowroute, second)["status"] == "awaiting_reply"
    assert sum("confirmed" in m.text for m in slow.to(number)) == 1


def test_twilio_taken_then_cut_is_found_and_its_status_recorded(twilio: Stack, twilio_fake: FakeProvider):
    number = new_number()
    twilio_fake.receipts = False
    twilio_fake.drop_after_accept = 1
    reminder_id = create_due_now(twilio, number)
    wait_until(lambda: get(twilio, reminder_id)["reminder_sent"], timeout=30, what="recorded")
    time.sleep(2)
    taken = twilio_fake.to(number)
    assert len(taken) == 1
    assert outbound(twilio, reminder_id)[0]["provider_id"] == taken[0].id
    twilio_fake.receipts = True
    # The status callback still works for the next send.
    reminder_id = create_due_now(twilio, number, minutes=40)
    taken = twilio_fake.wait_for(number, 2)
    sent = wait_until(
        lambda: (m := outbound(twilio, reminder_id)) and m[0]["delivery_status"] and m, what="status"
    )
    assert sent[0]["provider_id"] == taken[1].id and sent[0]["delivery_status"] == "delivered"
    assert "key=" in taken[1].body["StatusCallback"]


def test_twilio_status_callback_needs_its_signature(twilio: Stack):
    with twilio.client() as http:
        response = http.post(
            "/webhooks/twilio/status", data={"MessageSid": "SM1", "MessageStatus": "delivered"}
        )
    assert response.status_code == 403


def test_an_answer_claims_its_text_and_writes_the_reminders_state_in_one_statement(flowroute: Stack):
    """An answer's claim carries the reminder's state: written with the claim, only over an older state, and
    written even when the fence refuses the text (the number opted out)."""
    reminder_id = f"fold-{uuid.uuid4().hex}"
    number = new_number()
    at = datetime.now(UTC) + timedelta(hours=2)
    state = initial_state(
        ReminderInput(
            reminder_id=reminder_id,
            contact_number=number,
            appointment=at,
            appt_user_dt=at.strftime("%Y-%m-%d %H:%M:%S"),
            notify_windows=[1],
        )
    )

    async def run() -> tuple[list[tuple[bool, str, int]], list[Claim]]:
        pool = await asyncpg.create_pool(flowroute.run_info()["database_url"], min_size=1, max_size=2)
        store = Store(pool)

        async def claim(key: str, seq: int, status: Status) -> Claim:
            mirror = dataclasses.replace(
                state, seq=seq, status=status, will_attend=status == Status.CONFIRMED
            )
            return await store.claim_send(
                key=f"{reminder_id}:{key}",
                reminder_id=reminder_id,
                contact_number=number,
                purpose="confirmation",
                body="Thanks",
                provider="flowroute",
                sender="18005550100",
                attempt=f"{key}/1",
                check_opt_out=True,
                armed=False,
                mirror=mirror,
            )

        async def row() -> tuple[bool, str, int]:
            got = await pool.fetchrow("SELECT status, seq FROM reminders WHERE reminder_id = $1", reminder_id)
            return got is not None, got["status"] if got else "", got["seq"] if got else -1

        try:
            rows, claims = [], []
            claims.append(await claim("answer:1", 3, Status.CONFIRMED))
            rows.append(await row())
            # An older state loses to the newer one already there; its claim is still made.
            claims.append(await claim("answer:2", 2, Status.DECLINED))
            rows.append(await row())
            await store.set_consent(number, True, at=datetime.now(UTC), source="keyword")
            claims.append(await claim("answer:3", 5, Status.DECLINED))
            rows.append(await row())
            return rows, claims
        finally:
            await pool.close()

    rows, claims = asyncio.run(run())
    assert rows == [(True, "confirmed", 3), (True, "confirmed", 3), (True, "declined", 5)]
    assert [c.claimed for c in claims] == [True, True, False]
    assert claims[2].opted_out
