"""What operators rely on: search attributes in Temporal, metrics, readiness, 503 when a dependency is down."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from api.main import create_app
from devstack.embedded import free_port
from devstack.harness import FakeProvider, Stack, new_number, wait_until
from settings import Settings
from stack.clients import connect_temporal
from tests.e2e.test_reminders_e2e import appointment_in, create, iso
from tests.e2e.test_replies_e2e import flowroute_inbound, sent_reminder

pytestmark = pytest.mark.e2e


async def temporal_of(stack: Stack) -> Client:
    return await connect_temporal(Settings(_env_file=None, temporal_address=stack.run_info()["temporal"]))


def list_ids(stack: Stack, query: str) -> list[str]:
    async def run() -> list[str]:
        return [w.id async for w in (await temporal_of(stack)).list_workflows(query)]

    return asyncio.run(run())


def test_search_attributes_follow_the_reminder(stack: Stack, fake: FakeProvider):
    number = new_number()
    reminder_id = sent_reminder(stack, fake, number)
    wid = f"reminder-{reminder_id}"
    wait_until(
        lambda: list_ids(stack, f"ContactNumber = '{number}' AND ReminderStatus = 'awaiting_reply'") == [wid],
        what="awaiting_reply visible",
    )
    flowroute_inbound(stack, number, "yes")
    wait_until(
        lambda: list_ids(stack, f"ContactNumber = '{number}' AND ReminderStatus = 'confirmed'") == [wid],
        what="confirmed visible",
    )
    assert list_ids(stack, f"ContactNumber = '{number}' AND ReminderStatus = 'awaiting_reply'") == []
    assert wid in list_ids(stack, f"ContactNumber = '{number}' AND AppointmentTime > '2000-01-01T00:00:00Z'")


def test_a_reminder_days_ahead_is_searchable_and_runs_no_workflow_task(stack: Stack):
    number = new_number()
    reminder_id = create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(days=3))),
        notify_window=24,
    )

    async def events() -> list[int]:
        history = (
            await (await temporal_of(stack)).get_workflow_handle(f"reminder-{reminder_id}").fetch_history()
        )
        return [e.event_type for e in history.events]

    wid = f"reminder-{reminder_id}"
    wait_until(
        lambda: list_ids(stack, f"ContactNumber = '{number}' AND ReminderStatus = 'scheduled'") == [wid],
        what="scheduled visible",
    )
    # Until its send is armed it is a timer on the server: no task, nothing in a worker's cache.
    assert asyncio.run(events()) == [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]
    with stack.client() as http:
        assert http.get(f"/reminder/{reminder_id}").json()["status"] == "scheduled"


def test_metrics_after_a_create(stack: Stack, fake: FakeProvider):
    number = new_number()
    create(
        stack,
        contact_number=number,
        appointment_time=iso(appointment_in(timedelta(minutes=30))),
        notify_window=1,
    )
    fake.wait_for(number, 1)
    with stack.client() as http:
        text = http.get("/metrics").text
    created = [line for line in text.splitlines() if line.startswith("reminders_created_total")]
    assert created and float(created[0].split()[-1]) >= 1
    assert 'reminders_api_requests_total{method="POST",route="/reminder",status="200"}' in text
    worker_metrics = f"http://127.0.0.1:{stack.env['METRICS_PORT']}/metrics"
    sent = wait_until(
        lambda: "reminders_messages_sent" in (t := httpx.get(worker_metrics).text) and t,
        what="worker metrics",
    )
    assert "temporal_workflow_task_execution_latency" in sent or "workflow_task" in sent


async def create_then_get(
    settings: Settings, number: str | int, then: str
) -> tuple[httpx.Response, httpx.Response]:
    """A create through the app in this process, then one GET, with whatever dependencies `settings` name."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            body = {"contact_number": number, "appointment_time": "2030-01-01T10:00Z", "notify_window": 1}
            return await http.post("/reminder", json=body), await http.get(then)


def test_temporal_down_gives_503_and_no_row(stack: Stack):
    info = stack.run_info()
    settings = Settings(
        _env_file=None, database_url=info["database_url"], temporal_address=f"127.0.0.1:{free_port()}"
    )
    number = new_number()

    async def run() -> tuple[httpx.Response, httpx.Response, int]:
        created, ready = await create_then_get(settings, number, "/readyz")
        conn = await asyncpg.connect(info["database_url"])
        try:
            rows = await conn.fetchval("SELECT count(*) FROM reminders WHERE contact_number = $1", number)
        finally:
            await conn.close()
        return created, ready, rows

    created, ready, rows = asyncio.run(run())
    assert created.status_code == 503 and "Temporal" in created.json()["message"]
    assert ready.status_code == 503
    assert rows == 0


def test_postgres_down_gives_503(tmp_path):
    settings = Settings(
        _env_file=None,
        database_url=f"postgresql://postgres@/postgres?host={tmp_path}",
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    created, listed = asyncio.run(create_then_get(settings, 12223334444, "/reminder"))
    assert created.status_code == 503 and "PostgreSQL" in created.json()["message"]
    assert listed.status_code == 503
