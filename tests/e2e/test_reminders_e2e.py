"""The whole service on the real embedded stack, Flowroute played by a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from devstack.harness import FakeProvider, Stack, new_number, wait_until
from settings import Settings
from stack.clients import connect_temporal

pytestmark = pytest.mark.e2e


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def appointment_in(delta: timedelta) -> datetime:
    return (datetime.now(UTC) + delta).replace(microsecond=0)


def create(stack: Stack, **fields) -> str:
    with stack.client() as http:
        response = http.post("/reminder", json=fields)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == f"Successfully created a reminder with id {body['reminder_id']}."
    return body["reminder_id"]


def create_due_now(stack: Stack, number: str, minutes: int = 30, **fields) -> str:
    """A reminder whose notify time (one hour before an appointment `minutes` away) has passed: it goes at once."""
    return create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=minutes))),
        notify_window=1,
        **fields,
    )


def get(stack: Stack, reminder_id: str) -> dict:
    with stack.client() as http:
        response = http.get(f"/reminder/{reminder_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_reminder_arrives_at_notify_time_with_the_seed_text(stack: Stack, fake: FakeProvider):
    number = new_number()
    appointment = appointment_in(timedelta(hours=1, seconds=5))
    reminder_id = create(
        stack,
        contact_number=int(number),
        appointment_time=iso(appointment),
        notify_window="1",
        location="West Side Mechanics",
        participant="Dr Smith",
    )
    before = get(stack, reminder_id)
    assert before["status"] == "scheduled" and before["reminder_sent"] is False
    assert before["appt_sys_dt"] == appointment.strftime("%Y-%m-%d %H:%M:%S")
    assert before["notify_sys_dt"] == (appointment - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    [message] = fake.wait_for(number, 1, timeout=20)
    notify_at = (appointment - timedelta(hours=1)).timestamp()
    assert notify_at - 0.05 <= message.at < notify_at + 3
    assert message.path == "/v2.1/messages"
    assert message.auth == ("access-key", "secret-key")
    assert message.content_type == "application/vnd.api+json"
    when = appointment.strftime("%A %b %-d, %-I:%M ") + appointment.strftime("%p").lower()
    seed_text = (
        f"[West Side Clinic]\nYou have an appointment on {when} at West Side Mechanics with Dr Smith."
        " Please reply 'Yes' to confirm, or 'No' to cancel."
    )
    # The first text to a number: the seed's text as it was, then the opt-out line (CTIA); with PUBLIC_URL
    # set, the receipt is asked for at the service's own webhook, under this send's key.
    callback = message.body.pop("dlr_callback")
    assert callback.startswith(f"{stack.url}/webhooks/flowroute/dlr?key=")
    assert message.body == {
        "to": number,
        "from": "18005550100",
        "body": f"{seed_text}\nReply STOP to opt out.",
    }
    after = wait_until(
        lambda: (r := get(stack, reminder_id))["status"] == "awaiting_reply" and r, what="mirror"
    )
    assert after["reminder_sent"] is True and after["will_attend"] is None
    with stack.client() as http:
        messages = http.get(f"/reminder/{reminder_id}/messages").json()["messages"]
    assert [(m["direction"], m["provider_id"][:5]) for m in messages] == [("outbound", "mdr2-")]
    assert (messages[0]["encoding"], messages[0]["segments"]) == ("GSM-7", 2)
    assert after["segments"] == 1, "the reminder's own text is one segment"


def test_delete_before_notify_sends_nothing(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(hours=1, seconds=4))),
        notify_window=1,
    )
    with stack.client() as http:
        deleted = http.delete(f"/reminder/{reminder_id}")
        assert deleted.status_code == 200
        assert deleted.json() == {
            "reminder_id": reminder_id,
            "message": f"Successfully deleted reminder with id {reminder_id}.",
        }
        assert http.get(f"/reminder/{reminder_id}").status_code == 404
        assert http.get(f"/reminder/{reminder_id}").json() == {"message": "unknown reminder id"}
        assert http.delete(f"/reminder/{reminder_id}").status_code == 404
        listed = http.get("/reminder", params={"contact_number": number}).json()["reminders"]
        assert listed == []
    import time

    time.sleep(6)
    assert fake.to(number) == []


BAD_BODIES = [
    ("not json", "body"),
    ("[1, 2]", "body"),
    ('{"appointment_time": "2030-01-01T10:00Z", "notify_window": 1}', "contact_number"),
    (
        '{"contact_number": "12345", "appointment_time": "2030-01-01T10:00Z", "notify_window": 1}',
        "contact_number",
    ),
    (
        '{"contact_number": 12223334444, "appointment_time": "2030-01-01 10:00", "notify_window": 1}',
        "appointment_time",
    ),
    (
        '{"contact_number": 12223334444, "appointment_time": "2030-01-01T10:00", "notify_window": 1}',
        "timezone",
    ),
    (
        '{"contact_number": 12223334444, "appointment_time": "2020-01-01T10:00Z", "notify_window": 1}',
        "appointment_time",
    ),
    (
        '{"contact_number": 12223334444, "appointment_time": "2030-01-01T10:00Z", "notify_window": 8761}',
        "notify_window",
    ),
    (
        '{"contact_number": 12223334444, "appointment_time": "2030-01-01T10:00Z", "notify_window": 1, "location": "'
        + "x" * 129
        + '"}',
        "location",
    ),
]


def test_bad_bodies_get_400_and_make_nothing(stack: Stack):
    info = stack.run_info()

    async def counts() -> tuple[int, int]:
        conn = await asyncpg.connect(info["database_url"])
        try:
            rows = await conn.fetchval("SELECT count(*) FROM reminders")
        finally:
            await conn.close()
        client = await connect_temporal(Settings(_env_file=None, temporal_address=info["temporal"]))
        workflows = (await client.count_workflows("WorkflowType = 'ReminderWorkflow'")).count
        return rows, workflows

    before = asyncio.run(counts())
    with stack.client() as http:
        for body, field in BAD_BODIES:
            response = http.post("/reminder", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (body, response.text)
            assert response.json()["message"].startswith(f"{field}:"), (body, response.json())
    assert asyncio.run(counts()) == before


def test_list_pages_and_filters(stack: Stack):
    number = new_number()
    base = appointment_in(timedelta(days=2))
    ids = [
        create(
            stack, contact_number=number, appointment_time=iso(base + timedelta(minutes=m)), notify_window=1
        )
        for m in (30, 10, 20)
    ]
    with stack.client() as http:
        first = http.get("/reminder", params={"contact_number": number, "limit": 2}).json()
        assert [r["reminder_id"] for r in first["reminders"]] == [ids[1], ids[2]]
        second = http.get(
            "/reminder", params={"contact_number": number, "limit": 2, "cursor": first["next_cursor"]}
        ).json()
        assert [r["reminder_id"] for r in second["reminders"]] == [ids[0]]
        assert second.get("next_cursor") is None
        scheduled = http.get("/reminder", params={"contact_number": number, "status": "scheduled"}).json()
        assert len(scheduled["reminders"]) == 3
        assert http.get("/reminder", params={"status": "bogus"}).status_code == 400
        assert http.get("/reminder", params={"limit": 1001}).json()["message"].startswith("limit:")


def test_worker_killed_while_reminder_waits_sends_exactly_once(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(hours=1, seconds=6))),
        notify_window=1,
    )
    old = stack.run_info()["pids"]["worker"]
    os.kill(old, signal.SIGKILL)
    stack.wait_for_pid_change("worker", old)
    fake.wait_for(number, 1, timeout=30)
    import time

    time.sleep(3)
    assert len(fake.to(number)) == 1
    assert wait_until(lambda: get(stack, reminder_id)["status"] == "awaiting_reply", what="mirror")


def test_health_and_readiness(stack: Stack):
    with stack.client() as http:
        assert http.get("/healthz").status_code == 200
        ready = http.get("/readyz")
        assert (
            ready.status_code == 200 and ready.json()["temporal"] == "ok" and ready.json()["postgres"] == "ok"
        )
        assert http.get("/docs").status_code == 200
        assert "/reminder" in http.get("/openapi.json").json()["paths"]
