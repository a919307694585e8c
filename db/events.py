"""The PostgreSQL side of the business: the events outbox and its receivers' queues, and the inbox of replies
a person must read. The events themselves are written by triggers (migration 009), by the statement that
makes each change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A receiver's next event for each reminder, oldest first: events of one reminder go out one at a time.
# Heads are taken from the oldest $3 entries of the queue only, so a receiver that was down with a long
# queue costs each poll that many rows, not the whole queue. Among those entries the oldest of a reminder is
# its true head: any older one of the same reminder would be older still, so it would be among them too.
_HEADS = """
SELECT * FROM (
    SELECT DISTINCT ON (q.ordering) q.event_id, q.attempts, e.type, e.at, e.data, e.reminder_id, e.message_id
    FROM (
        SELECT * FROM event_queue WHERE receiver = $1 ORDER BY event_id LIMIT $3
    ) q JOIN events e ON e.id = q.event_id
    ORDER BY q.ordering, q.event_id
) heads ORDER BY event_id LIMIT $2
"""
# How many of the oldest queue entries a poll looks at, per head it wants.
HEADS_WINDOW = 20

# Events past their retention go, and each receiver that had not taken them counts them as lost.
_PRUNE = """
WITH gone AS (
    DELETE FROM events WHERE at < now() - $1::interval RETURNING id
), lost AS (
    SELECT q.receiver, count(*) AS n FROM event_queue q JOIN gone ON gone.id = q.event_id GROUP BY q.receiver
), counted AS (
    UPDATE event_receivers r SET lost = r.lost + lost.n FROM lost WHERE r.id = lost.receiver
    RETURNING r.url, lost.n
)
SELECT url, n FROM counted
"""


Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True)
class InboxPage:
    rows: list[asyncpg.Record]
    next_after: tuple[datetime, int] | None


class EventRows:
    pool: asyncpg.Pool

    # Events

    async def register_receivers(self, urls: list[str]) -> dict[str, int]:
        """Makes these the receivers that get new events; one no longer configured stops getting them and
        its queue is dropped. Answers each receiver's id."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "INSERT INTO event_receivers (url) SELECT unnest($1::text[])"
                " ON CONFLICT (url) DO UPDATE SET active = true RETURNING id, url",
                urls,
            )
            gone = await conn.fetch(
                "UPDATE event_receivers SET active = false WHERE active AND NOT url = ANY($1::text[]) RETURNING id",
                urls,
            )
            if gone:
                await conn.execute(
                    "DELETE FROM event_queue WHERE receiver = ANY($1::int[])", [r["id"] for r in gone]
                )
        return {r["url"]: r["id"] for r in rows}

    @asynccontextmanager
    async def receiver_round(self, receiver: int) -> AsyncIterator[Conn | None]:
        """A transaction holding the receiver for one round, or None when another worker holds it."""
        async with self.pool.acquire() as conn, conn.transaction():
            held = await conn.fetchval(
                "SELECT id FROM event_receivers WHERE id = $1 AND active FOR NO KEY UPDATE SKIP LOCKED",
                receiver,
            )
            yield conn if held is not None else None

    @staticmethod
    async def event_heads(conn: Conn, receiver: int, limit: int) -> list[asyncpg.Record]:
        return await conn.fetch(_HEADS, receiver, limit, limit * HEADS_WINDOW)

    @staticmethod
    async def acknowledge(conn: Conn, receiver: int, taken: list[int], missed: list[int]) -> None:
        """The events the receiver took leave its queue; the others count one more attempt."""
        await conn.execute(
            "DELETE FROM event_queue WHERE receiver = $1 AND event_id = ANY($2::bigint[])", receiver, taken
        )
        if missed:
            await conn.execute(
                "UPDATE event_queue SET attempts = attempts + 1 WHERE receiver = $1 AND event_id = ANY($2::bigint[])",
                receiver,
                missed,
            )

    async def prune_events(self, keep: timedelta) -> list[tuple[str, int]]:
        """Removes events older than `keep`; answers, per receiver that had not taken some, how many."""
        rows = await self.pool.fetch(_PRUNE, keep)
        return [(r["url"], r["n"]) for r in rows]

    async def list_events(
        self, *, since: int | None, limit: int, reminder_id: str | None = None
    ) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT id, type, at, data, reminder_id, message_id FROM events"
            " WHERE id > $1 AND ($3::text IS NULL OR reminder_id = $3) ORDER BY id LIMIT $2",
            since or 0,
            limit,
            reminder_id,
        )

    # The inbox

    async def flag_attention(self, provider: str, provider_id: str) -> None:
        """A reply routed to a reminder whose workflow had already ended: a person must read it."""
        await self.pool.execute(
            "UPDATE messages SET needs_attention = true"
            " WHERE provider = $1 AND provider_id = $2 AND direction = 'inbound' AND NOT needs_attention",
            provider,
            provider_id,
        )

    async def inbox_page(
        self, *, limit: int, after: tuple[datetime, int] | None = None, newest_first: bool = False
    ) -> InboxPage:
        order = "DESC" if newest_first else "ASC"
        compare = "<" if newest_first else ">"
        rows = await self.pool.fetch(
            "SELECT * FROM messages WHERE needs_attention AND attention_done_at IS NULL"
            f" AND ($1::timestamptz IS NULL OR (at, id) {compare} ($1, $2))"
            f" ORDER BY at {order}, id {order} LIMIT $3",
            after[0] if after else None,
            after[1] if after else 0,
            limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more else None
        return InboxPage(rows=rows, next_after=(last["at"], last["id"]) if last else None)

    async def inbox_count(self) -> int:
        count: int = await self.pool.fetchval(
            "SELECT count(*) FROM messages WHERE needs_attention AND attention_done_at IS NULL"
        )
        return count

    async def message(self, message_id: int) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM messages WHERE id = $1", message_id)

    async def conversation(self, contact_number: str, limit: int = 50) -> list[asyncpg.Record]:
        """The latest texts to and from a number, oldest first (texts claimed but not sent left out)."""
        return (await self.conversations([contact_number], limit)).get(contact_number, [])

    async def conversations(self, numbers: list[str], limit: int = 50) -> dict[str, list[asyncpg.Record]]:
        """`conversation` of each number, for a page of the inbox in one round trip."""
        rows = await self.pool.fetch(
            "SELECT m.* FROM unnest($1::text[]) AS n(number) CROSS JOIN LATERAL ("
            " SELECT * FROM messages WHERE contact_number = n.number"
            " AND (direction = 'inbound' OR provider_id IS NOT NULL)"
            " ORDER BY at DESC, id DESC LIMIT $2) m",
            sorted(set(numbers)),
            limit,
        )
        found: dict[str, list[asyncpg.Record]] = {}
        for row in reversed(rows):
            found.setdefault(row["contact_number"], []).append(row)
        return found

    async def mark_done(self, message_id: int) -> bool:
        """Clears a reply from the inbox; False when it was not waiting there."""
        status = await self.pool.execute(
            "UPDATE messages SET attention_done_at = now()"
            " WHERE id = $1 AND needs_attention AND attention_done_at IS NULL",
            message_id,
        )
        return status.endswith(" 1")
