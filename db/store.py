"""The PostgreSQL mirror: every reminder's state and every message, for listing and reporting.

All SQL of the service lives in this package. Temporal is the source of truth; rows follow the workflows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, TypeVar

import asyncpg

from db.consent import ConsentRows
from db.events import EventRows
from db.messages import INBOUND_ONCE, MessageRows
from db.reports import ReportRows
from db.schedule import ReconcileRows
from db.state import STATE_ARGS, STATE_COLUMNS, STATE_VALUES, UPSERT_STATE, state_args
from workflows.models import OPEN_STATUSES, ReminderState, Status

log = logging.getLogger("reminders.store")
MIGRATION_LOCK = 0x5E3D_0001
# What a lost or refused connection to PostgreSQL raises.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    # A pooled connection the server dropped mid-statement can come back from the pool in a state
    # asyncpg refuses to use; it is closed on release, and the next try takes a fresh one.
    asyncpg.exceptions._base.InternalClientError,
)


T = TypeVar("T")
# A call waiting out PostgreSQL tries again after this long at first, doubling up to the longest.
DB_WAIT_FIRST = 0.2
DB_WAIT_LONGEST = 3.0


class _Conflict(Exception):
    """A create's Idempotency-Key names a row made by another request: its batch is rolled back."""


# The API's first row of a new reminder; a row already there (a retried create) is left as it is.
_INSERT_NEW = (
    f"INSERT INTO reminders ({STATE_COLUMNS}, request_hash, segments)"
    f" VALUES ({STATE_VALUES}, ${STATE_ARGS + 1}, ${STATE_ARGS + 2})"
    " ON CONFLICT (reminder_id) DO NOTHING"
)


async def waiting_for_postgres(what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Runs a database call until PostgreSQL answers; other errors are raised. A send waits out an outage
    inside its attempt (it heartbeats meanwhile) and goes on within seconds of PostgreSQL's return: failing
    the attempt instead left the next one to Temporal's backoff, up to a minute after PostgreSQL was back."""
    delay = DB_WAIT_FIRST
    while True:
        try:
            return await call()
        except DATABASE_ERRORS as err:
            log.warning("%s waits for PostgreSQL: %r", what, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, DB_WAIT_LONGEST)


# The reminder a reply answers: the sender's sent most recently whose appointment has not begun ($1: the
# number, $2: _NOT_ANSWERABLE).
_ROUTE_REPLY = (
    "SELECT reminder_id FROM reminders WHERE contact_number = $1 AND sent_at IS NOT NULL"
    " AND deleted_at IS NULL AND appointment > now() AND status <> ALL($2::text[])"
    " ORDER BY sent_at DESC LIMIT 1"
)
_NOT_ANSWERABLE = [Status.OPTED_OUT.value, Status.FAILED.value, Status.DELETED.value]


@dataclass(frozen=True)
class Page:
    rows: list[asyncpg.Record]
    next_after: tuple[datetime, str] | None


async def _as_it_is(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: the service sets no session state (no SET, LISTEN,
    cursors outside a transaction, or advisory locks beyond the migration's, which it releases itself).
    asyncpg still rolls back a transaction left open first. Its default reset was one more round trip after
    every statement."""


# A connection idle this long is closed (down to the pool's minimum): PostgreSQL's memory follows the work
# in hand, a backend of a few MB each, not the pool's high-water mark from the last burst.
IDLE_CONNECTION_S = 60.0
UNSTARTED_PREFETCH = 2000


async def create_pool(dsn: str, *, min_size: int = 0, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=10,
        reset=_as_it_is,
        max_inactive_connection_lifetime=IDLE_CONNECTION_S,
    )
    assert pool is not None
    return pool


class Store(MessageRows, ConsentRows, EventRows, ReportRows, ReconcileRows):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def migrate(self) -> list[str]:
        """Applies the migrations not yet applied, one transaction each; safe to run from many processes."""
        applied: list[str] = []
        scripts = sorted(
            (f for f in resources.files("db").joinpath("migrations").iterdir() if f.name.endswith(".sql")),
            key=lambda f: f.name,
        )
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations"
                    " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for script in scripts:
                    if script.name in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(script.read_text())
                        await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", script.name)
                    applied.append(script.name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        return applied

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # Reminders

    async def insert_new(
        self, state: ReminderState, request_hash: str | None = None, segments: int | None = None
    ) -> tuple[bool, str | None]:
        """The API's first row, so a reminder is readable the moment it is created; the workflow's own
        writes carry higher sequence numbers and win. Answers whether this call made the row, and the
        request hash the row holds."""
        async with self.pool.acquire() as conn:
            status = await conn.execute(_INSERT_NEW, *state_args(state), request_hash, segments)
            if status.endswith(" 1"):
                return True, request_hash
            held = await conn.fetchval(
                "SELECT request_hash FROM reminders WHERE reminder_id = $1", state.reminder_id
            )
            return False, held

    async def insert_many(self, rows: list[tuple[ReminderState, str | None, int]]) -> set[str] | None:
        """insert_new for several (state, request hash, segments), all or none, in one round trip: answers
        the ids this call made; None, and nothing made, when a row there already holds another request."""
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    made_rows = await conn.fetchmany(
                        f"{_INSERT_NEW} RETURNING reminder_id", [(*state_args(s), h, n) for s, h, n in rows]
                    )
                    made = {r["reminder_id"] for r in made_rows}
                    wanted = {s.reminder_id: h for s, h, _ in rows if s.reminder_id not in made}
                    if wanted:
                        held = await conn.fetch(
                            "SELECT reminder_id, request_hash FROM reminders WHERE reminder_id = ANY($1::text[])",
                            list(wanted),
                        )
                        if any(r["request_hash"] != wanted[r["reminder_id"]] for r in held):
                            raise _Conflict
            except _Conflict:
                return None
        return made

    async def set_segments(self, reminder_id: str, segments: int) -> None:
        await self.pool.execute(
            "UPDATE reminders SET segments = $2 WHERE reminder_id = $1", reminder_id, segments
        )

    async def upsert_state(self, state: ReminderState) -> bool:
        """Writes the workflow's state unless a newer one is already there. True when it was written."""
        status = await self.pool.execute(UPSERT_STATE, *state_args(state))
        return status.endswith(" 1")

    async def forget(self, reminder_id: str) -> None:
        """Removes a row whose workflow could not be started."""
        await self.pool.execute("DELETE FROM reminders WHERE reminder_id = $1 AND seq = 0", reminder_id)

    async def mark_deleted(self, reminder_id: str) -> None:
        await self.pool.execute(
            "UPDATE reminders SET deleted_at = now() WHERE reminder_id = $1 AND deleted_at IS NULL",
            reminder_id,
        )

    async def get_any(self, reminder_id: str) -> asyncpg.Record | None:
        """The row, deleted or not."""
        return await self.pool.fetchrow("SELECT * FROM reminders WHERE reminder_id = $1", reminder_id)

    async def rows_of(self, reminder_ids: list[str], settling: timedelta) -> dict[str, asyncpg.Record]:
        """The rows (deleted or not) of these reminders, by id, each saying whether it was written within
        `settling`: one round trip for a batch."""
        rows = await self.pool.fetch(
            "SELECT reminder_id, status, deleted_at, updated_at > now() - $2::interval AS settling"
            " FROM reminders WHERE reminder_id = ANY($1::text[])",
            reminder_ids,
            settling,
        )
        return {r["reminder_id"]: r for r in rows}

    async def set_status(self, reminder_id: str, status: str) -> None:
        """For a workflow that ended without writing its last state (terminated by an operator)."""
        await self.pool.execute(
            "UPDATE reminders SET status = $2, seq = seq + 1, updated_at = now() WHERE reminder_id = $1",
            reminder_id,
            status,
        )

    async def unstarted_rows(self, older_than: timedelta, created_after: datetime | None = None) -> set[str]:
        """Rows the API wrote that no workflow has written since (every sleeping reminder's), made before
        `older_than` ago and, if given, after `created_after`: read through a cursor straight into the set,
        so a 100,000-row backlog costs the worker the ids, not a list of records as well, whose memory it
        would keep after."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            return {
                row[0]
                async for row in conn.cursor(
                    "SELECT reminder_id FROM reminders WHERE seq = 0 AND deleted_at IS NULL"
                    " AND created_at < now() - $1::interval AND ($2::timestamptz IS NULL OR created_at > $2)",
                    older_than,
                    created_after,
                    prefetch=UNSTARTED_PREFETCH,
                )
            }

    async def get(self, reminder_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM reminders WHERE reminder_id = $1 AND deleted_at IS NULL", reminder_id
        )

    async def inbox_context(
        self, rows: list[asyncpg.Record], conversation: int = 50
    ) -> list[tuple[asyncpg.Record, asyncpg.Record | None, list[asyncpg.Record]]]:
        """Each inbox row with its reminder's row (None if it has none) and its number's conversation (the
        last `conversation` messages): two round trips for a page, not two for each of its rows."""
        reminders = await self.get_many([r["reminder_id"] for r in rows if r["reminder_id"]])
        talks = await self.conversations([r["contact_number"] for r in rows], conversation)
        return [
            (
                row,
                reminders.get(row["reminder_id"]) if row["reminder_id"] else None,
                talks.get(row["contact_number"], []),
            )
            for row in rows
        ]

    async def get_many(self, reminder_ids: list[str]) -> dict[str, asyncpg.Record]:
        """`get` of each of these reminders, by id, in one round trip."""
        rows = await self.pool.fetch(
            "SELECT * FROM reminders WHERE reminder_id = ANY($1::text[]) AND deleted_at IS NULL",
            sorted(set(reminder_ids)),
        )
        return {r["reminder_id"]: r for r in rows}

    async def list_page(
        self,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
        status: str | None = None,
        contact_number: str | None = None,
        appointment_from: datetime | None = None,
        appointment_to: datetime | None = None,
        number_part: str | None = None,
    ) -> Page:
        """A page of reminders by appointment; `appointment_to` is exclusive; `number_part`: digits the
        contact number contains."""
        where = ["deleted_at IS NULL"]
        args: list[Any] = []
        for test, value in (
            ("appointment >= {}", appointment_from),
            ("appointment < {}", appointment_to),
            ("status = {}", status),
            ("contact_number = {}", contact_number),
            ("strpos(contact_number, {}) > 0", number_part),
        ):
            if value is not None:
                args.append(value)
                where.append(test.format(f"${len(args)}"))
        if after is not None:
            args.extend(after)
            where.append(f"(appointment, reminder_id) > (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        rows = await self.pool.fetch(
            f"SELECT * FROM reminders WHERE {' AND '.join(where)}"
            f" ORDER BY appointment, reminder_id LIMIT ${len(args)}",
            *args,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more else None
        return Page(rows=rows, next_after=(last["appointment"], last["reminder_id"]) if last else None)

    async def open_reminders(self, contact_number: str) -> list[tuple[str, bool]]:
        """The number's open reminders, each with whether its workflow has yet to write its row (true of
        every reminder whose start is still deferred)."""
        rows = await self.pool.fetch(
            "SELECT reminder_id, seq = 0 AS unwritten FROM reminders WHERE contact_number = $1"
            " AND deleted_at IS NULL"
            " AND status = ANY($2::text[]) AND appointment > now()",
            contact_number,
            [s.value for s in OPEN_STATUSES],
        )
        return [(r["reminder_id"], r["unwritten"]) for r in rows]

    async def route_reply(self, contact_number: str) -> str | None:
        """The sender's reminder sent most recently whose appointment has not begun."""
        return await self.pool.fetchval(_ROUTE_REPLY, contact_number, _NOT_ANSWERABLE)

    async def record_reply(
        self, *, provider: str, provider_id: str, contact_number: str, body: str, understood: bool
    ) -> str | None:
        """Stores a received reply with the reminder it answers (route_reply's), in one statement; answers
        that reminder. A text delivered again keeps the reminder its first delivery went to. A person reads
        in the inbox what no reminder takes (after the answer window) and what was not understood."""
        return await self.pool.fetchval(
            f"WITH routed AS ({_ROUTE_REPLY})"
            " INSERT INTO messages (reminder_id, contact_number, direction, body, provider, provider_id,"
            " needs_attention)"
            " SELECT (SELECT reminder_id FROM routed), $1, 'inbound', $3, $4, $5,"
            f" NOT $6 OR NOT EXISTS (SELECT 1 FROM routed){INBOUND_ONCE} RETURNING reminder_id",
            contact_number,
            _NOT_ANSWERABLE,
            body,
            provider,
            provider_id,
            understood,
        )
