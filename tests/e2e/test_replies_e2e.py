"""Replies on the real stack: webhooks in each provider's format, answers at the fake Flowroute."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from devstack.harness import FakeProvider, Stack, new_number, wait_until
from tests.e2e.conftest import TWILIO_TOKEN
from tests.e2e.test_reminders_e2e import appointment_in, create, get, iso

pytestmark = pytest.mark.e2e

CONFIRMED = "[West Side Clinic]\nThank you! Your appointment has been marked confirmed."
CANCELED = "[West Side Clinic]\nThank you! Your appointment has been marked canceled."
UNPARSABLE = "[West Side Clinic]\nSorry, we did not understand your response. Please reply 'Yes' to confirm, or 'No' to cancel."
# "Did not understand" ends with the opt-out line.
UNPARSABLE += "\nReply STOP to opt out."


def sent_reminder(stack: Stack, fake: FakeProvider, number: str, minutes: int = 30) -> str:
    """A reminder whose notify time is past, so it goes out at once; waits until the mirror shows it."""
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=minutes))),
        notify_window=1,
    )
    wait_until(lambda: get(stack, reminder_id)["status"] == "awaiting_reply", what="reminder sent")
    return reminder_id


def flowroute_inbound(stack: Stack, number: str, body: str, message_id: str | None = None) -> dict:
    payload = {
        "data": {
            "type": "message",
            "id": message_id or f"mdr2-{uuid.uuid4().hex}",
            "attributes": {"to": "18005550100", "from": number, "body": body, "direction": "inbound"},
        }
    }
    with stack.client() as http:
        response = http.post("/webhooks/flowroute", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


def texts(fake: FakeProvider, number: str) -> list[str]:
    return [m.text for m in fake.to(number)]


def test_yes_then_no_then_changes_recorded(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = sent_reminder(stack, fake, number)
    flowroute_inbound(stack, number, "Yes!")
    fake.wait_for(number, 2)
    state = wait_until(lambda: (r := get(stack, reminder_id))["confirm_sent"] and r, what="confirmation")
    assert (state["status"], state["will_attend"]) == ("confirmed", True)
    assert texts(fake, number)[1] == CONFIRMED
    flowroute_inbound(stack, number, "no.")
    fake.wait_for(number, 3)
    state = wait_until(lambda: (r := get(stack, reminder_id))["status"] == "declined" and r, what="decline")
    assert state["will_attend"] is False
    assert texts(fake, number)[2] == CANCELED
    with stack.client() as http:
        log = http.get(f"/reminder/{reminder_id}/messages").json()["messages"]
    assert [(m["direction"], m["body"]) for m in log][1:] == [
        ("inbound", "Yes!"),
        ("outbound", CONFIRMED),
        ("inbound", "no."),
        ("outbound", CANCELED),
    ]


def test_garbage_gets_unparsable_and_leaves_answer_open(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = sent_reminder(stack, fake, number)
    flowroute_inbound(stack, number, "I know, noon works?")
    fake.wait_for(number, 2)
    assert texts(fake, number)[1] == UNPARSABLE
    state = get(stack, reminder_id)
    assert state["will_attend"] is None and state["status"] == "awaiting_reply"


def test_reply_goes_to_the_latest_sent_reminder(stack: Stack, fake: FakeProvider):
    number = new_number()
    first = sent_reminder(stack, fake, number, minutes=40)
    second = sent_reminder(stack, fake, number, minutes=50)
    flowroute_inbound(stack, number, "yes")
    wait_until(lambda: get(stack, second)["status"] == "confirmed", what="second confirmed")
    assert get(stack, first)["status"] == "awaiting_reply"


def test_same_webhook_twice_gets_one_answer(stack: Stack, fake: FakeProvider):
    number = new_number()
    sent_reminder(stack, fake, number)
    message_id = f"mdr2-{uuid.uuid4().hex}"
    flowroute_inbound(stack, number, "YES", message_id)
    flowroute_inbound(stack, number, "YES", message_id)
    fake.wait_for(number, 2)
    time.sleep(2)
    assert len(fake.to(number)) == 2


def test_stop_before_notify_time_sends_no_reminder(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(hours=1, seconds=5))),
        notify_window=1,
    )
    with stack.client() as http:
        response = http.post("/", json={"to": "18005550100", "from": number, "body": " Stop. "})
    assert response.status_code == 200
    [confirmation] = fake.wait_for(number, 1)
    assert "unsubscribed" in confirmation.text
    wait_until(lambda: get(stack, reminder_id)["status"] == "opted_out", what="opted out")
    time.sleep(6)
    assert len(fake.to(number)) == 1, "no reminder after STOP"
    # A reminder created while opted out is not sent either; START lets the next one through.
    late = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=30))),
        notify_window=1,
    )
    wait_until(lambda: get(stack, late)["status"] == "opted_out", what="new reminder opted out")
    with stack.client() as http:
        http.post("/", json={"to": "18005550100", "from": number, "body": "START"})
    fake.wait_for(number, 2)
    again = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=30))),
        notify_window=1,
    )
    wait_until(lambda: get(stack, again)["status"] == "awaiting_reply", what="sent after START")


def test_help_gets_the_help_text(stack: Stack, fake: FakeProvider):
    number = new_number()
    with stack.client() as http:
        http.post("/", json={"to": "18005550100", "from": number, "body": "help"})
    [answer] = fake.wait_for(number, 1)
    assert answer.text.startswith("[West Side Clinic]") and "STOP" in answer.text


def test_delivery_receipt_recorded(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = sent_reminder(stack, fake, number)
    with stack.client() as http:
        [outbound] = http.get(f"/reminder/{reminder_id}/messages").json()["messages"]
        receipt = {
            "data": {"id": outbound["provider_id"], "type": "message", "attributes": {"status": "delivered"}}
        }
        assert http.post("/webhooks/flowroute/dlr", json=receipt).status_code == 200
        [after] = http.get(f"/reminder/{reminder_id}/messages").json()["messages"]
    assert after["delivery_status"] == "delivered"


def test_malformed_webhooks_get_400(stack: Stack):
    with stack.client() as http:
        assert http.post("/", json={"to": "1", "from": "12223334444"}).status_code == 400
        assert http.post("/", json={"to": "1", "from": "1" * 19, "body": "yes"}).status_code == 400
        assert http.post("/webhooks/flowroute", json={"data": {"id": "x"}}).status_code == 400
        assert http.post("/webhooks/flowroute", content=b"\xff\xfe").status_code == 400
        assert http.post("/webhooks/flowroute/dlr", json={"data": {}}).status_code == 400


def twilio_post(stack: Stack, params: dict[str, str], signature: str | None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    with stack.client() as http:
        return http.post("/webhooks/twilio", content=urlencode(params), headers=headers)


def test_twilio_signature_valid_invalid_missing(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = sent_reminder(stack, fake, number)
    params = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "From": f"+{number}",
        "To": "+18005550100",
        "Body": "yes",
    }
    url = f"{stack.url}/webhooks/twilio"
    good = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    assert twilio_post(stack, params, None).status_code == 403
    assert twilio_post(stack, params, "bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert twilio_post(stack, {**params, "Body": "no"}, good).status_code == 403, "signature covers the body"
    assert get(stack, reminder_id)["will_attend"] is None
    accepted = twilio_post(stack, params, good)
    assert accepted.status_code == 200 and "<Response>" in accepted.text
    wait_until(lambda: get(stack, reminder_id)["status"] == "confirmed", what="confirmed via twilio")


def test_unmatched_reply_is_200(stack: Stack):
    assert flowroute_inbound(stack, new_number(), "yes")["message"] == "unmatched"


def test_no_answer_until_appointment_is_no_response(stack: Stack, fake: FakeProvider):
    number = new_number()
    appointment = datetime.now(UTC) + timedelta(seconds=6)
    reminder_id = create(stack, contact_number=number, appointment_time=iso(appointment), notify_window=1)
    fake.wait_for(number, 1)
    wait_until(lambda: get(stack, reminder_id)["status"] == "no_response", timeout=20, what="no_response")
    assert flowroute_inbound(stack, number, "yes")["message"] == "unmatched", "too late to answer"


def test_provider_errors_are_retried_and_sent_once(stack: Stack, fake: FakeProvider):
    """A reduced fault case for `make test`: the provider answers 503, 503, 429, then takes the message."""
    number = new_number()
    with fake.lock:
        fake.script.extend([503, 503, 429])
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=30))),
        notify_window=1,
    )
    fake.wait_for(number, 1, timeout=30)
    wait_until(lambda: get(stack, reminder_id)["status"] == "awaiting_reply", what="sent after retries")
    time.sleep(2)
    assert len(fake.to(number)) == 1


def test_provider_refusal_marks_failed(stack: Stack, fake: FakeProvider):
    number = new_number()
    with fake.lock:
        fake.script.append(400)
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=30))),
        notify_window=1,
    )
    state = wait_until(lambda: (r := get(stack, reminder_id))["status"] == "failed" and r, what="failed")
    assert state["reminder_sent"] is False
    assert fake.to(number) == []
