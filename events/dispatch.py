"""The dispatcher: runs in every worker, delivers each receiver's queue from PostgreSQL.

One worker at a time serves a receiver (a row lock on the receiver, taken per round with SKIP LOCKED: a
second worker finds it held and waits). A round takes the next event of each reminder, POSTs them (several
reminders at once, one reminder's events strictly in order), and acknowledges the ones the receiver took
in the same transaction; a worker that dies mid-round leaves them queued, and they go again under the
same `webhook-id`. A round with failures backs off, doubling up to a ceiling; a receiver down for a while
gets everything once it answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from db.store import DATABASE_ERRORS, Store
from db.views import event_view
from events.ids import event_id
from events.signing import headers, secret_bytes

log = logging.getLogger("reminders.events")

ROUND_SIZE = 100
"""Reminders whose next event one round delivers."""
CONCURRENT_POSTS = 8
IDLE_POLL = 0.5
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
PRUNE_EVERY = 600.0
POST_TIMEOUT = 10.0


def event_body(row: asyncpg.Record | dict[str, Any]) -> str:
    data = row["data"]
    payload = event_view(row["type"], row["at"], json.loads(data) if isinstance(data, str) else data)
    return json.dumps(payload, separators=(",", ":"))


class Dispatcher:
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        urls: list[str],
        secret: str | None,
        retention_days: float,
        *,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self._store = store
        self._http = http
        self._urls = urls
        self._key = secret_bytes(secret) if secret else None
        self._retention = timedelta(days=retention_days)
        self._backoff_max = backoff_max

    async def run(self, stop: asyncio.Event) -> None:
        receivers: dict[str, int] = {}
        while not stop.is_set():
            try:
                receivers = await self._store.register_receivers(self._urls)
                break
            except DATABASE_ERRORS as err:
                log.warning("event receivers not registered yet: %s", err)
                await _sleep(stop, 2.0)
        if self._urls and self._key is None:
            log.warning("EVENT_WEBHOOK_SECRET is not set: events go out unsigned")
        tasks = [asyncio.create_task(self._serve(url, rid, stop)) for url, rid in receivers.items()]
        tasks.append(asyncio.create_task(self._prune_forever(stop)))
        await asyncio.gather(*tasks)

    async def _prune_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for url, lost in await self._store.prune_events(self._retention):
                    log.error("receiver %s lost %d events older than the retention", url, lost)
            except DATABASE_ERRORS as err:
                log.warning("events not pruned: %s", err)
            await _sleep(stop, PRUNE_EVERY)

    async def _serve(self, url: str, receiver: int, stop: asyncio.Event) -> None:
        backoff = BACKOFF_FIRST
        while not stop.is_set():
            try:
                delivered, failed = await self.round(url, receiver)
            except DATABASE_ERRORS as err:
                log.warning("events for %s wait on PostgreSQL: %s", url, err)
                delivered, failed = 0, 1
            except Exception:  # noqa: BLE001 - the dispatcher outlives any one round's fault
                log.exception("events for %s: round failed", url)
                delivered, failed = 0, 1
            if failed:
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            backoff = BACKOFF_FIRST
            if not delivered:
                await _sleep(stop, IDLE_POLL)

    async def round(self, url: str, receiver: int) -> tuple[int, int]:
        """One round for one receiver; answers how many events it took and how many it did not."""
        async with self._store.receiver_round(receiver) as conn:
            if conn is None:
                return 0, 0  # another worker serves it now
            heads = await self._store.event_heads(conn, receiver, ROUND_SIZE)
            if not heads:
                return 0, 0
            slots = asyncio.Semaphore(CONCURRENT_POSTS)

            async def post(row: asyncpg.Record) -> bool:
                async with slots:
                    return await self._post(url, row)

            results = await asyncio.gather(*(post(row) for row in heads))
            taken = [row["event_id"] for row, ok in zip(heads, results, strict=True) if ok]
            missed = [row["event_id"] for row, ok in zip(heads, results, strict=True) if not ok]
            await self._store.acknowledge(conn, receiver, taken, missed)
            return len(taken), len(missed)

    async def _post(self, url: str, row: asyncpg.Record) -> bool:
        msg_id = event_id(row["event_id"])
        try:
            body = event_body(row)
        except (ValueError, KeyError, TypeError):
            log.exception("event %s could not be read; it stays queued", msg_id)
            return False
        try:
            response = await self._http.post(
                url,
                content=body.encode(),
                headers=headers(self._key, msg_id, int(time.time()), body),
                timeout=POST_TIMEOUT,
            )
        except httpx.HTTPError as err:
            log.info("event %s to %s not delivered: %s", msg_id, url, err)
            return False
        if 200 <= response.status_code < 300:
            return True
        log.info("event %s to %s refused: HTTP %d", msg_id, url, response.status_code)
        return False


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
