"""The mirror converges on Temporal's truth whatever happened to the rows."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from db.store import Store
from devstack.harness import FakeProvider, Stack, new_number, wait_until
from settings import Settings
from stack.clients import connect_temporal
from stack.reconcile import (
    COUNT_BATCH,
    QUERY_TIMEOUT,
    Report,
    listing,
    reconcile,
    without_running_workflow,
)
from tests.e2e.test_operators_e2e import list_ids
from tests.e2e.test_reminders_e2e import appointment_in, create, get, iso
from tests.e2e.test_replies_e2e import sent_reminder

pytestmark = pytest.mark.e2e


def run_reconcile(stack: Stack, damage: str, *args, changed_since: datetime | None = None) -> Report:
    info = stack.run_info()

    async def go():
        client = await connect_temporal(Settings(_env_file=None, temporal_address=info["temporal"]))
        pool = await asyncpg.create_pool(info["database_url"], min_size=1, max_size=2)
        try:
            await pool.execute(damage, *args)
            return await reconcile(client, Store(pool), changed_since=changed_since)
        finally:
            await pool.close()

    return asyncio.run(go())


def settled(stack: Stack, fake: FakeProvider) -> str:
    """A sent reminder whose search attribute, not only its row, already says awaiting_reply: reconcile
    compares the two, and the send activity writes the row a moment before the workflow upserts it."""
    number = new_number()
    reminder_id = sent_reminder(stack, fake, number)
    wait_until(
        lambda: list_ids(stack, f"ContactNumber = '{number}' AND ReminderStatus = 'awaiting_reply'"),
        what="search attribute",
    )
    return reminder_id


STALE = (
    "UPDATE reminders SET status = 'scheduled', reminder_sent = false, seq = 0{aged} WHERE reminder_id = $1"
)


def test_a_stale_row_is_repaired(stack: Stack, fake: FakeProvider):
    reminder_id = settled(stack, fake)
    report = run_reconcile(stack, STALE.format(aged=", updated_at = now() - interval '1 hour'"), reminder_id)
    assert report.repaired >= 1
    row = get(stack, reminder_id)
    assert row["status"] == "awaiting_reply" and row["reminder_sent"] is True


def test_a_row_written_within_the_minute_is_left_to_the_next_pass(stack: Stack, fake: FakeProvider):
    """Its workflow's search attribute may not have caught up yet (a send writes the row as it goes out):
    asking the workflow would cost a replay for nothing, and the next pass compares it again."""
    reminder_id = settled(stack, fake)
    report = run_reconcile(stack, STALE.format(aged=""), reminder_id)
    assert report.repaired == 0
    assert get(stack, reminder_id)["status"] == "scheduled"


def test_a_lost_row_is_written_again(stack: Stack, fake: FakeProvider):
    reminder_id = settled(stack, fake)
    run_reconcile(stack, "DELETE FROM reminders WHERE reminder_id = $1", reminder_id)
    assert get(stack, reminder_id)["status"] == "awaiting_reply"


def test_a_sleeping_reminders_lost_row_is_written_again_from_its_input(stack: Stack):
    """Its start is deferred, so it has run no task a query could ask: the row is rebuilt from the input in
    its history's one event, without waiting out a query's timeout."""
    number = new_number()
    sleeping = create(
        stack, contact_number=number, appointment_time=iso(appointment_in(timedelta(days=2))), notify_window=1
    )
    wait_until(lambda: list_ids(stack, f"ContactNumber = '{number}'"), what="the sleeping reminder listed")
    with stack.client() as http:
        made = http.get(f"/reminder/{sleeping}").json()
    t0 = time.monotonic()
    report = run_reconcile(stack, "DELETE FROM reminders WHERE reminder_id = $1", sleeping)
    assert time.monotonic() - t0 < QUERY_TIMEOUT.total_seconds()
    assert report.repaired >= 1
    with stack.client() as http:
        again = http.get(f"/reminder/{sleeping}").json()
    # The text's segment count is the API's estimate at create, not part of the workflow's state.
    assert {**again, "segments": None} == {**made, "segments": None}


def test_a_row_without_a_workflow_is_removed_and_a_sleeping_one_is_not_looked_up(stack: Stack):
    """A reminder sleeping until its notify time has not written its row since the API made it (seq 0),
    like an orphan: only the one the listing does not show costs a describe, and only it goes."""
    number = new_number()
    sleeping = create(
        stack, contact_number=number, appointment_time=iso(appointment_in(timedelta(days=2))), notify_window=1
    )
    wait_until(lambda: list_ids(stack, f"ContactNumber = '{number}'"), what="the sleeping reminder listed")
    orphan = "f" * 32
    report = run_reconcile(
        stack,
        "WITH aged AS (UPDATE reminders SET created_at = now() - interval '1 hour' WHERE reminder_id = $3)"
        " INSERT INTO reminders (reminder_id, contact_number, appointment, appt_user_dt, notify_times, status,"
        " seq, created_at) VALUES ($1, '12223334444', $2, '2030-01-01 10:00:00', ARRAY[$2]::timestamptz[],"
        " 'scheduled', 0, now() - interval '1 hour')",
        orphan,
        datetime.now(UTC) + timedelta(days=1),
        sleeping,
    )
    assert (report.orphans_removed, report.orphans_checked) == (1, 1)
    with stack.client() as http:
        assert http.get(f"/reminder/{orphan}").status_code == 404
    assert get(stack, sleeping)["status"] == "scheduled"


def test_a_periodic_pass_lists_what_moved_and_leaves_sleeping_reminders_out(stack: Stack, fake: FakeProvider):
    """The server's own filter, on its own visibility store: a sleeping reminder, even one started within
    the pass's window, is left to the full pass (its row is checked by a count); one sent is compared."""
    number = new_number()
    before = datetime.now(UTC) - timedelta(seconds=2)
    sleeping = create(
        stack, contact_number=number, appointment_time=iso(appointment_in(timedelta(days=2))), notify_window=1
    )
    sent = sent_reminder(stack, fake, number)
    wait_until(
        lambda: (
            len(list_ids(stack, f"ContactNumber = '{number}' AND ReminderStatus = 'awaiting_reply'")) == 1
        ),
        what="the sent reminder's search attribute",
    )
    time.sleep(1.5)  # the listing compares times to the second
    after = datetime.now(UTC)
    mine = {f"reminder-{sleeping}", f"reminder-{sent}"}

    def listed(changed_since: datetime | None) -> set[str]:
        now = datetime.now(UTC)
        query = listing(now, changed_since, timedelta(days=2))
        return set(list_ids(stack, f"ContactNumber = '{number}' AND {query}")) & mine

    assert listed(None) == mine
    assert listed(before) == {f"reminder-{sent}"}
    assert listed(after) == {f"reminder-{sent}"}


def test_rows_made_since_are_checked_by_counting_their_workflows(stack: Stack):
    """The periodic pass's orphan check: per batch of rows one count of running workflows, a listing of
    the batch where it falls short. Two batches, one of them a full one, on the server's own query."""
    number = new_number()
    sleeping = create(
        stack, contact_number=number, appointment_time=iso(appointment_in(timedelta(days=2))), notify_window=1
    )
    wait_until(lambda: list_ids(stack, f"ContactNumber = '{number}'"), what="the sleeping reminder listed")
    missing = {f"{i:032x}" for i in range(COUNT_BATCH + 50)}

    async def go() -> set[str]:
        client = await connect_temporal(
            Settings(_env_file=None, temporal_address=stack.run_info()["temporal"])
        )
        return await without_running_workflow(client, {sleeping, *missing, "not'plain"})

    assert asyncio.run(go()) == {*missing, "not'plain"}


def test_a_periodic_pass_looks_up_only_rows_made_since(stack: Stack):
    """An orphan row older than the pass's window waits for the full pass; one within it goes at once."""
    recent, old = "e" * 32, "d" * 32
    columns = "'12223334444', $3, '2030-01-01 10:00:00', ARRAY[$3]::timestamptz[], 'scheduled', 0"
    report = run_reconcile(
        stack,
        "INSERT INTO reminders (reminder_id, contact_number, appointment, appt_user_dt, notify_times, status,"
        f" seq, created_at) VALUES ($1, {columns}, now() - interval '10 minutes'),"
        f" ($2, {columns}, now() - interval '3 hours')",
        recent,
        old,
        datetime.now(UTC) + timedelta(days=1),
        changed_since=datetime.now(UTC) - timedelta(hours=1),
    )
    assert (report.orphans_removed, report.orphans_checked) == (1, 1)
    with stack.client() as http:
        assert http.get(f"/reminder/{recent}").status_code == 404
        assert http.get(f"/reminder/{old}").status_code == 200
    report = run_reconcile(stack, "SELECT 1")
    assert report.orphans_removed >= 1
    with stack.client() as http:
        assert http.get(f"/reminder/{old}").status_code == 404


def test_one_worker_at_a_time_holds_the_reconcile_schedule(stack: Stack):
    """The schedule's row in PostgreSQL: a second worker asking while the first holds it is told no; what a
    finished pass records is there for the next; a pass that fails records nothing."""
    name = f"test-{new_number()}"

    async def go() -> None:
        pool = await asyncpg.create_pool(stack.run_info()["database_url"], min_size=2, max_size=3)
        store = Store(pool)
        try:
            async with store.reconcile_turn(name) as first:
                assert first is not None and first.last_start is None and first.last_full is None
                async with store.reconcile_turn(name) as second:
                    assert second is None
                first.done(full=True)
            async with store.reconcile_turn(name) as again:
                assert again is not None
                assert again.last_start == first.now and again.last_full == first.now
                recorded = again.now
                again.done(full=False)
            with pytest.raises(RuntimeError):
                async with store.reconcile_turn(name) as failing:
                    assert failing is not None
                    failing.done(full=True)
                    raise RuntimeError("the pass failed")
            async with store.reconcile_turn(name) as last:
                assert last is not None
                assert last.last_start == recorded and last.last_full == first.now
        finally:
            await pool.execute("DELETE FROM reconcile_passes WHERE name = $1", name)
            await pool.close()

    asyncio.run(go())
