"""The front desk's day and week: counted whole in PostgreSQL, and filtered there before the list is cut."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from db.store import Store
from devstack.harness import Stack, new_number
from tests.e2e.test_reminders_e2e import create, iso

pytestmark = pytest.mark.e2e


def on_store(stack: Stack, use):
    async def go():
        pool = await asyncpg.create_pool(stack.run_info()["database_url"], min_size=1, max_size=2)
        try:
            return await use(Store(pool))
        finally:
            await pool.close()

    return asyncio.run(go())


def test_counts_cover_the_whole_range_and_filters_apply_before_the_limit(stack: Stack):
    # A day of its own, far enough ahead that no other test books it.
    day = (datetime.now(UTC) + timedelta(days=41)).replace(hour=9, minute=0, second=0, microsecond=0)
    numbers = [new_number() for _ in range(3)]
    ids = [
        create(
            stack, contact_number=n, appointment_time=iso(day + timedelta(minutes=10 * i)), notify_window=1
        )
        for i, n in enumerate(numbers)
    ]
    start, end = day.replace(hour=0), day.replace(hour=0) + timedelta(days=1)
    with stack.client() as http:
        assert http.delete(f"/reminder/{ids[0]}").status_code == 200

    counts = on_store(stack, lambda s: s.status_counts(start, end))
    assert counts == {"scheduled": (2, 0)}

    # Two left on the day; a list cut at one says there is more.
    first = on_store(stack, lambda s: s.list_page(limit=1, appointment_from=start, appointment_to=end))
    assert [r["reminder_id"] for r in first.rows] == [ids[1]] and first.next_after is not None

    # The last one's digits, from its middle: found though the list would be cut before it unfiltered.
    part = numbers[2][3:8]
    found = on_store(
        stack, lambda s: s.list_page(limit=1, appointment_from=start, appointment_to=end, number_part=part)
    )
    assert [r["reminder_id"] for r in found.rows] == [ids[2]] and found.next_after is None
    none = on_store(
        stack,
        lambda s: s.list_page(limit=1, appointment_from=start, appointment_to=end, status="confirmed"),
    )
    assert none.rows == []
