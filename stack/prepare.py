"""Gets the servers ready for the service: waits until Temporal answers, then applies the migrations.

`python -m stack.prepare` (TEMPORAL_ADDRESS and DATABASE_URL from the environment) exits 0 once both are
done. The launcher runs it as a process of its own, so the launcher itself, which only supervises, never
loads the Temporal client or asyncpg and stays small for as long as the service runs.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from db.store import Store, create_pool
from settings import Settings, get_settings
from stack.clients import connect_temporal
from stack.logs import setup_logging

log = logging.getLogger("reminders.prepare")


async def wait_for_temporal(settings: Settings, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await connect_temporal(settings)
            await client.count_workflows()
            return
        except Exception as err:  # noqa: BLE001 - keep trying until the deadline
            if time.monotonic() > deadline:
                raise RuntimeError(f"Temporal at {settings.temporal_address} did not answer: {err}") from err
            await asyncio.sleep(0.3)


async def migrate(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        applied = await Store(pool).migrate()
        if applied:
            log.info("applied migrations %s", ", ".join(applied))
    finally:
        await pool.close()


async def prepare(settings: Settings, timeout: float = 60) -> None:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    await wait_for_temporal(settings, timeout)
    await migrate(settings.database_url)


def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    try:
        asyncio.run(prepare(settings))
    except Exception as err:  # noqa: BLE001 - one line for the launcher to show
        log.error("%s", err)
        sys.exit(1)


if __name__ == "__main__":
    main()
