"""The business side on the real stack: signed events to the clinic's systems (a receiver down for a minute
loses none), the inbox of replies a person must read and answer, and who is coming (range, CSV, report)."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from standardwebhooks import Webhook

from db.store import Store
from devstack.harness import FakeProvider, Stack, new_number, wait_until
from devstack.receiver import Delivery, EventReceiver
from tests.e2e.conftest import EVENT_SECRET
from tests.e2e.test_reminders_e2e import create, create_due_now
from tests.e2e.test_replies_e2e import flowroute_inbound, texts

pytestmark = pytest.mark.e2e

NEW_YORK = ZoneInfo("America/New_York")
LIFE = ["reminder.scheduled", "reminder.sent", "reminder.delivered", "reminder.confirmed", "reminder.deleted"]


def verified(delivery: Delivery) -> dict:
    """The event, its Standard Webhooks signature checked by the reference library."""
    event = Webhook(EVENT_SECRET).verify(delivery.body, delivery.headers)
    assert isinstance(event, dict)
    return event


def types_of(receiver: EventReceiver, reminder_id: str) -> list[str]:
    return [d.event["type"] for d in receiver.events_of(reminder_id)]


def wait_for_types(
    receiver: EventReceiver, reminder_id: str, expected: list[str], timeout: float = 20
) -> None:
    wait_until(
        lambda: types_of(receiver, reminder_id) == expected,
        timeout=timeout,
        what=f"{expected}, got {types_of(receiver, reminder_id)}",
    )


def live_reminder(stack: Stack, fake: FakeProvider, number: str) -> str:
    reminder_id = create_due_now(stack, number)
    fake.wait_for(number, 1)
    return reminder_id


def test_a_reminders_life_reaches_the_receiver_once_in_order_and_signed(
    stack: Stack, fake: FakeProvider, receiver: EventReceiver
):
    number = new_number()
    reminder_id = live_reminder(stack, fake, number)
    wait_for_types(receiver, reminder_id, LIFE[:3])
    flowroute_inbound(stack, number, "Yes")
    wait_for_types(receiver, reminder_id, LIFE[:4])
    with stack.client() as http:
        assert http.delete(f"/reminder/{reminder_id}").status_code == 200
    wait_for_types(receiver, reminder_id, LIFE)
    time.sleep(1.5)  # nothing more comes, and nothing comes twice
    deliveries = receiver.events_of(reminder_id)
    assert [d.event["type"] for d in deliveries] == LIFE
    ids = [d.headers["webhook-id"] for d in deliveries]
    assert len(set(ids)) == len(ids)
    events = [verified(d) for d in deliveries]
    assert [e["data"]["status"] for e in events] == [
        "scheduled",
        "awaiting_reply",
        "awaiting_reply",
        "confirmed",
        "deleted",
    ]
    assert events[2]["data"]["delivery_status"] == "delivered"
    assert all(e["data"]["contact_number"] == number for e in events)
    # A receiver catching up reads the same events, under the same ids.
    with stack.client() as http:
        listed = http.get("/events", params={"reminder_id": reminder_id}).json()["events"]
    assert [e["id"] for e in listed] == ids
    assert [e["type"] for e in listed] == LIFE
    with stack.client() as http:
        after = http.get("/events", params={"since": ids[2], "reminder_id": reminder_id}).json()["events"]
    assert [e["id"] for e in after] == ids[3:]


def test_a_receiver_down_for_a_minute_gets_every_event_when_it_is_back(
    stack: Stack, fake: FakeProvider, receiver: EventReceiver, flaky_receiver: EventReceiver
):
    flaky_receiver.down_for(60)
    number = new_number()
    reminder_id = live_reminder(stack, fake, number)
    flowroute_inbound(stack, number, "No")
    expected = {*LIFE[:3], "reminder.declined"}
    # The receipt and the reply race: the order is the order they were recorded in.
    wait_until(lambda: set(types_of(receiver, reminder_id)) == expected, timeout=20, what="every event")
    assert flaky_receiver.events_of(reminder_id) == []
    wait_until(lambda: flaky_receiver.refused > 0, what="the receiver refused while down")
    # Back after 60 s; the dispatcher's backoff is at most 30 s.
    wait_until(
        lambda: len(flaky_receiver.events_of(reminder_id)) == len(expected), timeout=110, what="events after"
    )
    assert [d.headers["webhook-id"] for d in flaky_receiver.events_of(reminder_id)] == [
        d.headers["webhook-id"] for d in receiver.events_of(reminder_id)
    ]
    assert types_of(flaky_receiver, reminder_id) == types_of(receiver, reminder_id)
    assert len(types_of(receiver, reminder_id)) == len(expected)


def inbox(stack: Stack) -> dict:
    with stack.client() as http:
        response = http.get("/inbox", params={"limit": 200})
    assert response.status_code == 200, response.text
    return response.json()


def inbox_item(stack: Stack, number: str) -> dict | None:
    found = [i for i in inbox(stack)["items"] if i["message"]["contact_number"] == number]
    return found[0] if found else None


def test_a_reply_not_understood_waits_in_the_inbox_and_staff_answer_from_the_same_number(
    stack: Stack, fake: FakeProvider, receiver: EventReceiver
):
    number = new_number()
    reminder_id = live_reminder(stack, fake, number)
    flowroute_inbound(stack, number, "can I come at 3 instead?")
    fake.wait_for(number, 2)  # "did not understand" still goes out

    def answered_in_inbox() -> dict | None:
        found = inbox_item(stack, number)
        return found if found is not None and len(found["conversation"]) == 3 else None

    item = wait_until(answered_in_inbox, what="the reply and its answer in the inbox")
    assert item["message"]["body"] == "can I come at 3 instead?"
    assert item["reminder"]["reminder_id"] == reminder_id
    assert [m["direction"] for m in item["conversation"]] == ["outbound", "inbound", "outbound"]
    wait_until(
        lambda: "reply.needs_attention" in types_of(receiver, reminder_id), what="reply.needs_attention event"
    )
    message_id = item["message"]["message_id"]
    with stack.client() as http:
        response = http.post(f"/inbox/{message_id}/reply", json={"body": "Yes, 3 pm works. See you then!"})
    assert response.status_code == 200, response.text
    assert response.json()["message"] in ("sent", "queued")
    fake.wait_for(number, 3)
    assert texts(fake, number)[2] == "[West Side Clinic]\nYes, 3 pm works. See you then!"
    assert fake.to(number)[2].sender == fake.to(number)[0].sender == "18005550100"
    with stack.client() as http:
        messages = http.get(f"/reminder/{reminder_id}/messages").json()["messages"]
    assert messages[-1]["purpose"] == "staff_reply"
    assert all(m["message_id"] for m in messages)
    assert inbox_item(stack, number) is None  # answering it cleared it


def test_an_answer_its_reminder_takes_is_recorded_with_it_and_stays_out_of_the_inbox(
    stack: Stack, fake: FakeProvider
):
    number = new_number()
    reminder_id = live_reminder(stack, fake, number)
    flowroute_inbound(stack, number, "Yes")
    fake.wait_for(number, 2)  # the confirmation
    with stack.client() as http:
        messages = http.get(f"/reminder/{reminder_id}/messages").json()["messages"]
    assert [m["body"] for m in messages if m["direction"] == "inbound"] == ["Yes"]
    assert inbox_item(stack, number) is None


def test_a_reply_after_the_window_waits_in_the_inbox_until_done(stack: Stack):
    number = new_number()
    flowroute_inbound(stack, number, "Yes")  # no reminder of this number is waiting for an answer
    item = wait_until(lambda: inbox_item(stack, number), what="the late reply in the inbox")
    assert item["reminder"] is None
    with stack.client() as http:
        response = http.post(f"/inbox/{item['message']['message_id']}/done")
        assert response.status_code == 200
        assert response.json()["message"] == "done"
        assert (
            http.post(f"/inbox/{item['message']['message_id']}/done").json()["message"]
            == "was not in the inbox"
        )
        assert http.post("/inbox/99999999999/done").status_code == 404
        assert http.post(f"/inbox/{item['message']['message_id']}/reply", json={}).status_code == 400
    assert inbox_item(stack, number) is None


def at_local(day: date, hour: int) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK).isoformat()


def test_range_csv_and_daily_report_agree_with_the_reminders_created(stack: Stack):
    # Days of their own, far ahead, so no other test's reminders fall in them.
    day = date(2031, 1, 1) + timedelta(days=random.randrange(3000))
    following = day + timedelta(days=1)
    made = [
        create(stack, contact_number=new_number(), appointment_time=at_local(day, h), notify_window=1)
        for h in (0, 9, 23)
    ]
    late = create(
        stack, contact_number=new_number(), appointment_time=at_local(following, 0), notify_window=1
    )
    with stack.client() as http:
        listed = http.get("/reminder", params={"from": day.isoformat(), "to": day.isoformat()}).json()
        assert sorted(r["reminder_id"] for r in listed["reminders"]) == sorted(made)
        both = http.get("/reminder", params={"from": day.isoformat(), "to": following.isoformat()}).json()
        assert len(both["reminders"]) == 4
        # The same day read in UTC: 23:00 New York is the next day there, 00:00 the next day is too.
        utc = http.get(
            "/reminder", params={"from": day.isoformat(), "to": day.isoformat(), "timezone": "UTC"}
        )
        assert len(utc.json()["reminders"]) == 2
        exported = http.get(
            "/reminder",
            params={"from": day.isoformat(), "to": following.isoformat()},
            headers={"Accept": "text/csv"},
        )
        assert exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["reminder_id"] for r in rows] == [r["reminder_id"] for r in both["reminders"]]
        first = both["reminders"][0]
        assert set(rows[0]) == set(first)
        assert rows[0]["appt_sys_dt"] == first["appt_sys_dt"]
        assert rows[0]["status"] == "scheduled"
        report = http.get(
            "/reports/daily", params={"from": day.isoformat(), "to": (day + timedelta(days=2)).isoformat()}
        ).json()
        assert report["timezone"] == "America/New_York"
        assert [(d["date"], d["scheduled"]) for d in report["days"]] == [
            (day.isoformat(), 3),
            (following.isoformat(), 1),
            ((day + timedelta(days=2)).isoformat(), 0),
        ]
        assert report["total"]["scheduled"] == 4
        assert report["total"]["sent"] == 0 and report["total"]["confirmation_rate"] is None
        assert http.delete(f"/reminder/{late}").status_code == 200
        again = http.get(
            "/reports/daily", params={"from": following.isoformat(), "to": following.isoformat()}
        )
        assert again.json()["days"][0]["scheduled"] == 0


def test_the_report_counts_what_happened_to_todays_reminders(stack: Stack, fake: FakeProvider):
    number, other = new_number(), new_number()
    confirmed = live_reminder(stack, fake, number)
    live_reminder(stack, fake, other)
    flowroute_inbound(stack, number, "yes")
    today = datetime.now(NEW_YORK).date()
    appointment_day = (datetime.now(NEW_YORK) + timedelta(minutes=30)).date()

    def report() -> dict:
        with stack.client() as http:
            return http.get(
                "/reports/daily", params={"from": today.isoformat(), "to": appointment_day.isoformat()}
            ).json()

    with stack.client() as http:
        wait_until(
            lambda: http.get(f"/reminder/{confirmed}").json()["status"] == "confirmed", what="confirmed"
        )
    total = report()["total"]
    assert total["sent"] >= 2 and total["confirmed"] >= 1 and total["no_answer"] >= 1
    assert total["confirmation_rate"] == round(total["confirmed"] / total["sent"], 4)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/reminder", {"from": "tomorrow"}, "from"),
        ("/reminder", {"to": "2030-02-30"}, "to"),
        ("/reminder", {"from": "2030-01-02", "to": "2030-01-01"}, "to"),
        ("/reminder", {"from": "2030-01-01", "timezone": "Mars/Olympus"}, "timezone"),
        ("/reports/daily", {"from": "2030-01-01", "to": "2032-01-01"}, "to"),
        ("/reports/daily", {"from": "01/01/2030"}, "from"),
        ("/events", {"since": "yesterday"}, "since"),
        ("/events", {"limit": "0"}, "limit"),
        ("/inbox", {"order": "sideways"}, "order"),
    ],
)
def test_bad_parameters_on_the_new_routes_are_400_naming_the_field(stack: Stack, path, params, field):
    with stack.client() as http:
        response = http.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith(f"{field}:"), response.json()


def test_events_past_their_retention_go_and_a_receiver_that_missed_them_counts_them(stack: Stack):
    """As the worker's pruning does every few minutes: an event older than the retention, still queued for a
    receiver, is removed and counted as lost for that receiver only."""

    gone_url = f"http://receiver-{random.randrange(10**9)}.invalid/events"

    async def prune() -> tuple[list[tuple[str, int]], int, int]:
        pool = await asyncpg.create_pool(stack.run_info()["database_url"], min_size=1, max_size=2)
        store = Store(pool)
        try:
            async with pool.acquire() as conn:
                made = await conn.fetchval(
                    "INSERT INTO events (type, reminder_id, at, data) VALUES"
                    " ('reminder.sent', 'old', now() - interval '8 days', '{}') RETURNING id"
                )
                # A receiver of its own (no worker serves it), so no dispatcher takes the event first.
                target = await conn.fetchval(
                    "INSERT INTO event_receivers (url, active) VALUES ($1, false) RETURNING id", gone_url
                )
                await conn.execute(
                    "INSERT INTO event_queue (receiver, event_id, ordering) VALUES ($1, $2, 'old')",
                    target,
                    made,
                )
                before = await conn.fetchval("SELECT lost FROM event_receivers WHERE id = $1", target)
                pruned = await store.prune_events(timedelta(days=7))
                after = await conn.fetchval("SELECT lost FROM event_receivers WHERE id = $1", target)
                left = await conn.fetchval("SELECT count(*) FROM events WHERE id = $1", made)
            return pruned, after - before, left
        finally:
            await pool.close()

    pruned, lost, left = asyncio.run(prune())
    assert (gone_url, 1) in pruned
    assert lost == 1 and left == 0


def _pairs(rows: list[asyncpg.Record]) -> list[tuple[str, int]]:
    return [(r["reminder_id"], r["event_id"]) for r in rows]


def test_a_long_queue_gives_each_reminder_its_oldest_event_first(stack: Stack):
    """A receiver that was down has a long queue; a poll looks at its oldest entries only, and what it takes
    is still each reminder's oldest event, never a later one ahead of it."""
    url = f"http://receiver-{random.randrange(10**9)}.invalid/events"

    async def heads() -> tuple[list[tuple[str, int]], list[tuple[str, int]], dict[str, list[int]]]:
        pool = await asyncpg.create_pool(stack.run_info()["database_url"], min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                target = await conn.fetchval(
                    "INSERT INTO event_receivers (url, active) VALUES ($1, false) RETURNING id", url
                )
                made: dict[str, list[int]] = {}
                # One busy reminder's 45 events first, then one each of two more.
                for ordering in ["busy"] * 45 + ["second", "third"]:
                    event = await conn.fetchval(
                        "INSERT INTO events (type, reminder_id, data) VALUES ('reminder.sent', $1, '{}')"
                        " RETURNING id",
                        ordering,
                    )
                    await conn.execute(
                        "INSERT INTO event_queue (receiver, event_id, ordering) VALUES ($1, $2, $3)",
                        target,
                        event,
                        ordering,
                    )
                    made.setdefault(ordering, []).append(event)
                one = await Store.event_heads(conn, target, 1)
                three = await Store.event_heads(conn, target, 3)
                await conn.execute("DELETE FROM event_receivers WHERE id = $1", target)
            return _pairs(one), _pairs(three), made
        finally:
            await pool.close()

    one, three, made = asyncio.run(heads())
    assert one == [("busy", made["busy"][0])]
    # Three heads look at the oldest 60 entries: the busy reminder's first and both others, nothing later.
    assert three == [("busy", made["busy"][0]), ("second", made["second"][0]), ("third", made["third"][0])]


def test_a_reschedule_and_a_staff_opt_out_are_events(stack: Stack, receiver: EventReceiver):
    number = new_number()
    later = (datetime.now(NEW_YORK) + timedelta(days=3)).replace(second=0, microsecond=0)
    reminder_id = create(
        stack, contact_number=number, appointment_time=later.isoformat(timespec="minutes"), notify_window=24
    )
    with stack.client() as http:
        moved = http.patch(
            f"/reminder/{reminder_id}", json={"appointment_time": (later + timedelta(hours=2)).isoformat()}
        )
        assert moved.status_code == 200, moved.text
        assert (
            http.post("/opt-outs", json={"contact_number": number, "note": "asked by phone"}).status_code
            == 201
        )
    wait_for_types(
        receiver, reminder_id, ["reminder.scheduled", "reminder.rescheduled", "reminder.opted_out"]
    )
    rescheduled = receiver.events_of(reminder_id)[1].event["data"]
    assert rescheduled["appt_user_dt"] == (later + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
