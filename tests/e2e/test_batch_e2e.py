"""`POST /reminder/batch` on the real stack: made together, read first, keyed, undone when Temporal is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest

from api.main import create_app
from api.routes.batch import BATCH_MAX
from devstack.embedded import free_port
from devstack.harness import FakeProvider, Stack, new_number
from settings import Settings
from tests.e2e.test_reminders_e2e import appointment_in, get, iso

pytestmark = pytest.mark.e2e


def post_batch(stack: Stack, body, key: str | None = None) -> httpx.Response:
    with stack.client() as http:
        return http.post("/reminder/batch", json=body, headers={"Idempotency-Key": key} if key else {})


def item(number: str, minutes: int = 30, **fields) -> dict:
    """A reminder due at once (notify window 1 h, appointment `minutes` away)."""
    return {
        "contact_number": number,
        "appointment_time": iso(appointment_in(timedelta(minutes=minutes))),
        "notify_window": 1,
        **fields,
    }


def rows_for(stack: Stack, numbers: list[str]) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(stack.run_info()["database_url"])
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM reminders WHERE contact_number = ANY($1::text[])", numbers
            )
        finally:
            await conn.close()

    return asyncio.run(count())


def test_a_batch_makes_each_reminder_in_order_and_each_is_sent_once(stack: Stack, fake: FakeProvider):
    numbers = [new_number() for _ in range(3)]
    later = {
        "contact_number": numbers[2],
        "appointment_time": "2030-03-23T13:00:00+00:00",
        "notify_window": 24,
    }
    response = post_batch(
        stack, {"reminders": [item(numbers[0], location="West Side"), item(numbers[1]), later]}
    )
    assert response.status_code == 200, response.text
    ids = response.json()["reminder_ids"]
    assert len(set(ids)) == 3 and response.json()["message"] == "Successfully created 3 reminders."
    assert [get(stack, r)["contact_number"] for r in ids] == numbers
    assert get(stack, ids[0])["location"] == "West Side"
    [first] = fake.wait_for(numbers[0], 1)
    assert "at West Side" in first.body["body"]
    fake.wait_for(numbers[1], 1)
    time.sleep(2)
    assert [len(fake.to(n)) for n in numbers] == [1, 1, 0]
    assert get(stack, ids[2])["status"] == "scheduled"


def test_one_bad_item_is_named_and_nothing_is_made(stack: Stack, fake: FakeProvider):
    numbers = [new_number() for _ in range(3)]
    body = {"reminders": [item(numbers[0]), {**item(numbers[1]), "notify_window": "soon"}, item(numbers[2])]}
    response = post_batch(stack, body)
    assert response.status_code == 400
    assert response.json()["message"].startswith("reminders[1].notify_window: ")
    time.sleep(1)
    assert rows_for(stack, numbers) == 0
    assert all(fake.to(n) == [] for n in numbers)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "reminders: is required"),
        ({"reminders": {}}, "reminders: is required"),
        ({"reminders": []}, f"reminders: must hold 1 to {BATCH_MAX} reminders"),
        ({"reminders": [{"contact_number": "12223334444"}] * (BATCH_MAX + 1)}, "reminders: must hold"),
        ({"reminders": [None]}, "reminders[0]."),
    ],
)
def test_a_malformed_batch_is_400(stack: Stack, body, problem: str):
    response = post_batch(stack, body)
    assert response.status_code == 400
    assert response.json()["message"].startswith(problem)


def test_a_batch_sent_again_with_its_key_makes_nothing_twice(stack: Stack, fake: FakeProvider):
    numbers = [new_number() for _ in range(2)]
    key = f"import-{uuid.uuid4()}"
    body = {"reminders": [item(n) for n in numbers]}
    first = post_batch(stack, body, key)
    assert first.status_code == 200, first.text
    again = post_batch(stack, body, key)
    assert again.status_code == 200 and again.json()["reminder_ids"] == first.json()["reminder_ids"]
    for n in numbers:
        fake.wait_for(n, 1)
    changed = {"reminders": [body["reminders"][0], {**body["reminders"][1], "location": "East Side"}]}
    other = post_batch(stack, changed, key)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["message"]
    # A key used with another body makes nothing new: not even the items a longer batch adds.
    longer = {"reminders": [*changed["reminders"], item(new_number())]}
    assert post_batch(stack, longer, key).status_code == 409
    assert rows_for(stack, [longer["reminders"][2]["contact_number"]]) == 0
    time.sleep(2)
    assert [len(fake.to(n)) for n in numbers] == [1, 1]
    assert rows_for(stack, numbers) == 2


def test_temporal_down_gives_503_and_leaves_no_row(stack: Stack):
    info = stack.run_info()
    settings = Settings(
        _env_file=None, database_url=info["database_url"], temporal_address=f"127.0.0.1:{free_port()}"
    )
    numbers = [new_number() for _ in range(2)]

    async def run() -> httpx.Response:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                return await http.post("/reminder/batch", json={"reminders": [item(n) for n in numbers]})

    response = asyncio.run(run())
    assert response.status_code == 503 and "Temporal" in response.json()["message"]
    assert rows_for(stack, numbers) == 0
