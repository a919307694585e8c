"""`python -m bench.reports`: who-is-coming at scale. Loads N reminders (default 1,000,000, over a year of
appointments) straight into the mirror of an embedded PostgreSQL, then times, through the API app in
process, a month's daily report, a day's list page, a day's CSV and an inbox page. Prints medians and p99.

    python -m bench.reports [--rows 1000000] [--repeat 40]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from api.main import create_app
from db.store import Store, create_pool
from devstack.embedded import EmbeddedPostgres
from settings import Settings

ZONE = "America/New_York"
FIRST_DAY = datetime(2027, 1, 1, 5, tzinfo=UTC)
DAYS = 365
TARGET_MS = 100.0
STATUSES = [
    ("confirmed", True, "delivered"),
    ("declined", True, "delivered"),
    ("awaiting_reply", True, "delivered"),
    ("no_response", True, None),
    ("scheduled", False, None),
    ("opted_out", True, "delivered"),
    ("failed", False, None),
]
WEIGHTS = [45, 8, 10, 20, 12, 2, 3]
COLUMNS = (
    "reminder_id",
    "contact_number",
    "appointment",
    "appt_user_dt",
    "notify_times",
    "timezone",
    "status",
    "reminder_sent",
    "delivery_status",
    "seq",
    "notify_windows",
)


def rows(count: int, rng: random.Random) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for _ in range(count):
        appointment = FIRST_DAY + timedelta(seconds=rng.randrange(DAYS * 86400))
        status, sent, delivery = rng.choices(STATUSES, WEIGHTS)[0]
        out.append(
            (
                uuid.uuid4().hex,
                f"1555{rng.randrange(10**7):07d}",
                appointment,
                appointment.strftime("%Y-%m-%d %H:%M:%S"),
                [appointment - timedelta(hours=24)],
                ZONE,
                status,
                sent,
                delivery,
                3,
                [24],
            )
        )
    return out


async def load(dsn: str, count: int) -> float:
    pool = await create_pool(dsn, max_size=2)
    store = Store(pool)
    await store.migrate()
    rng = random.Random(7)
    started = time.perf_counter()
    async with pool.acquire() as conn:
        # Loading a year of history: the events its rows would have made are not the point here.
        await conn.execute("ALTER TABLE reminders DISABLE TRIGGER reminder_events")
        for done in range(0, count, 50_000):
            await conn.copy_records_to_table(
                "reminders", records=rows(min(50_000, count - done), rng), columns=COLUMNS
            )
        await conn.execute("ALTER TABLE reminders ENABLE TRIGGER reminder_events")
        await conn.execute("VACUUM ANALYZE reminders")
    await pool.close()
    return time.perf_counter() - started


async def timed(repeat: int, call: Callable[[], Awaitable[httpx.Response]]) -> list[float]:
    await call()  # warm
    spent = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await call()
        spent.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text[:300]
    return spent


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def measure(dsn: str, repeat: int) -> dict[str, list[float]]:
    app = create_app(Settings(database_url=dsn, org_timezone=ZONE, _env_file=None))  # type: ignore[call-arg]
    results: dict[str, list[float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=60) as http:
            month = {"from": "2027-06-01", "to": "2027-06-30"}
            day = {"from": "2027-06-15", "to": "2027-06-15"}
            results["report, a month (30 days)"] = await timed(
                repeat, lambda: http.get("/reports/daily", params=month)
            )
            results["report, a year (365 days)"] = await timed(
                max(5, repeat // 4),
                lambda: http.get("/reports/daily", params={"from": "2027-01-01", "to": "2027-12-31"}),
            )
            results["list, a day's first page (100)"] = await timed(
                repeat, lambda: http.get("/reminder", params=day)
            )
            results["list, a day as CSV (every row)"] = await timed(
                max(5, repeat // 4), lambda: http.get("/reminder", params=day, headers={"Accept": "text/csv"})
            )
            csv_rows = (await http.get("/reminder", params=day, headers={"Accept": "text/csv"})).text.count(
                "\n"
            ) - 1
            print(f"a day's CSV holds {csv_rows} reminders")
            results["inbox, first page"] = await timed(repeat, lambda: http.get("/inbox"))
    return results


async def main_async(count: int, repeat: int) -> int:
    with tempfile.TemporaryDirectory(prefix="reminders-bench-reports-") as folder:
        pg = EmbeddedPostgres(Path(folder) / "pg")
        dsn = pg.start()
        try:
            seconds = await load(dsn, count)
            print(f"loaded {count:,} reminders in {seconds:.1f} s")
            results = await measure(dsn, repeat)
        finally:
            pg.stop()
    print(f"{'request':<34} {'median ms':>10} {'p99 ms':>8}  under {TARGET_MS:.0f} ms")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:<34} {median:>10.1f} {p99(values):>8.1f}  {'yes' if median < TARGET_MS else 'NO'}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main_async(args.rows, args.repeat)))


if __name__ == "__main__":
    main()
