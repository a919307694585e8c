"""`POST /reminder/{id}/resend` on the real stack: the reminder's text once more, recorded with its own
purpose and key, and nothing for a contact who opted out."""

from __future__ import annotations

import pytest

from devstack.harness import FakeProvider, Stack, new_number, wait_until
from tests.e2e.test_reminders_e2e import create_due_now

pytestmark = pytest.mark.e2e


def messages(stack: Stack, reminder_id: str) -> list[dict]:
    with stack.client() as http:
        return http.get(f"/reminder/{reminder_id}/messages").json()["messages"]


def test_a_resend_goes_once_with_its_own_purpose_and_never_to_an_opted_out_contact(
    stack: Stack, fake: FakeProvider
):
    number = new_number()
    reminder_id = create_due_now(stack, number, location="West Side Clinic")
    fake.wait_for(number, 1)
    with stack.client() as http:
        first = http.post(f"/reminder/{reminder_id}/resend")
        assert first.status_code == 200, first.text
        assert first.json()["message"] in ("sent", "queued")
        fake.wait_for(number, 2)
        second = http.post(f"/reminder/{reminder_id}/resend")
        assert second.status_code == 200, second.text
    sent = fake.wait_for(number, 3)
    # The same text as the reminder, less the first-text opt-out line.
    assert sent[1].text == sent[2].text and sent[1].text in sent[0].text
    wait_until(lambda: len(messages(stack, reminder_id)) == 3, what="three messages recorded")
    purposes = [m["purpose"] for m in messages(stack, reminder_id)]
    assert purposes == ["reminder", "resend", "resend"]
    with stack.client() as http:
        assert http.get(f"/reminder/{reminder_id}").json()["status"] == "awaiting_reply"
        assert http.post("/opt-outs", json={"contact_number": number, "note": "by phone"}).status_code == 201
        refused = http.post(f"/reminder/{reminder_id}/resend")
        assert refused.status_code == 409, refused.text
        assert http.post(f"/reminder/{'0' * 32}/resend").status_code == 404
        assert http.post("/reminder/not-an-id/resend").status_code == 404
    assert len(fake.to(number)) == 3
