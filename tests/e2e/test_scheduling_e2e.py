"""Reschedule through PATCH and idempotent creates, on the real stack."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest

from devstack.harness import FakeProvider, Stack, new_number, wait_until
from tests.e2e.test_reminders_e2e import appointment_in, create, get, iso
from tests.e2e.test_replies_e2e import flowroute_inbound, sent_reminder

pytestmark = pytest.mark.e2e


def patch(stack: Stack, reminder_id: str, body) -> httpx.Response:
    with stack.client() as http:
        return http.patch(f"/reminder/{reminder_id}", json=body)


def test_reschedule_before_send_moves_the_send(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(hours=1, seconds=4))),
        notify_window=1,
    )
    moved = appointment_in(timedelta(hours=1, seconds=9))
    response = patch(stack, reminder_id, {"appointment_time": iso(moved), "location": "East Side"})
    assert response.status_code == 200, response.text
    assert response.json()["appt_sys_dt"] == moved.strftime("%Y-%m-%d %H:%M:%S")
    time.sleep(6)
    assert fake.to(number) == [], "the old notify time passed without a send"
    [message] = fake.wait_for(number, 1, timeout=10)
    assert message.at >= (moved - timedelta(hours=1)).timestamp() - 0.05
    assert "East Side" in message.text


def test_reschedule_after_send_prompts_again(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = sent_reminder(stack, fake, number)
    flowroute_inbound(stack, number, "yes")
    wait_until(lambda: get(stack, reminder_id)["status"] == "confirmed", what="confirmed")
    response = patch(stack, reminder_id, {"appointment_time": iso(appointment_in(timedelta(minutes=50)))})
    assert response.status_code == 200
    assert response.json()["will_attend"] is None
    messages = fake.wait_for(number, 3)
    assert messages[2].text.startswith("[West Side Clinic]\nYou have an appointment on")
    wait_until(lambda: get(stack, reminder_id)["status"] == "awaiting_reply", what="prompted again")


def test_invalid_patch_changes_nothing(stack: Stack):
    number = new_number()
    reminder_id = create(
        stack, contact_number=number, appointment_time=iso(appointment_in(timedelta(days=1))), notify_window=2
    )
    before = get(stack, reminder_id)
    for body, status, field in [
        ({"appointment_time": "2020-01-01T10:00Z"}, 400, "appointment_time"),
        ({"notify_window": -1}, 400, "notify_window"),
        ({"contact_number": "12223334444"}, 400, "contact_number"),
        ({}, 400, "body"),
    ]:
        response = patch(stack, reminder_id, body)
        assert response.status_code == status and response.json()["message"].startswith(f"{field}:"), (
            response.text
        )
    assert patch(stack, "0" * 32, {"location": "x"}).status_code == 404
    time.sleep(0.5)
    assert get(stack, reminder_id) == before


def test_patch_on_a_closed_reminder_is_409(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(seconds=4))),
        notify_window=1,
    )
    wait_until(lambda: get(stack, reminder_id)["status"] == "no_response", timeout=20, what="closed")
    response = patch(stack, reminder_id, {"appointment_time": iso(appointment_in(timedelta(hours=3)))})
    assert response.status_code == 409


def test_twenty_concurrent_creates_with_one_key_make_one_reminder(stack: Stack, fake: FakeProvider):
    number = new_number()
    key = f"order-{uuid.uuid4()}"
    body = {
        "contact_number": number,
        "appointment_time": iso(appointment_in(timedelta(minutes=30))),
        "notify_window": 1,
    }

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
            return await asyncio.gather(
                *(http.post("/reminder", json=body, headers={"Idempotency-Key": key}) for _ in range(20))
            )

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} == {200}
    ids = {r.json()["reminder_id"] for r in responses}
    assert len(ids) == 1
    fake.wait_for(number, 1)
    time.sleep(2)
    assert len(fake.to(number)) == 1
    again = httpx.post(f"{stack.url}/reminder", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["reminder_id"] in ids
    other = httpx.post(
        f"{stack.url}/reminder", json={**body, "notify_window": 2}, headers={"Idempotency-Key": key}
    )
    assert other.status_code == 409

    async def rows() -> int:
        conn = await asyncpg.connect(stack.run_info()["database_url"])
        try:
            return await conn.fetchval("SELECT count(*) FROM reminders WHERE contact_number = $1", number)
        finally:
            await conn.close()

    assert asyncio.run(rows()) == 1


def test_two_windows_send_two_prompts(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(hours=1, seconds=4))),
        notify_windows=[2, 1],
    )
    assert len(get(stack, reminder_id)["notify_sys_dts"]) == 2
    fake.wait_for(number, 1, timeout=3)  # the 2 h window is already past: sent at once
    fake.wait_for(number, 2, timeout=15)  # the 1 h window, four seconds on
