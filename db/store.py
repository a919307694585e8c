"""The PostgreSQL mirror: every reminder's state and every message, for listing and reporting.

All SQL of the service lives here. Temporal is the source of truth; rows follow the workflows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import asyncpg

from workflows.models import OPEN_STATUSES, ReminderState, Status

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

_STATE_COLUMNS = (
    "reminder_id, contact_number, appointment, appt_user_dt, notify_times, timezone, location, participant,"
    " language, status, reminder_sent, will_attend, confirm_sent, sent_at, seq, notify_windows, generation,"
    " wanted_send"
)
_STATE_ARGS = 18
_STATE_VALUES = ", ".join(f"${i}" for i in range(1, _STATE_ARGS + 1))
# Writes the workflow's state unless a newer one is already there.
_UPSERT_STATE = (
    f"INSERT INTO reminders ({_STATE_COLUMNS}) VALUES ({_STATE_VALUES})"
    " ON CONFLICT (reminder_id) DO UPDATE SET"
    " contact_number = EXCLUDED.contact_number, appointment = EXCLUDED.appointment,"
    " appt_user_dt = EXCLUDED.appt_user_dt, notify_times = EXCLUDED.notify_times,"
    " timezone = EXCLUDED.timezone, location = EXCLUDED.location,"
    " participant = EXCLUDED.participant, language = EXCLUDED.language, status = EXCLUDED.status,"
    " reminder_sent = EXCLUDED.reminder_sent, will_attend = EXCLUDED.will_attend,"
    " confirm_sent = EXCLUDED.confirm_sent, sent_at = EXCLUDED.sent_at, seq = EXCLUDED.seq,"
    " notify_windows = EXCLUDED.notify_windows, generation = EXCLUDED.generation,"
    " wanted_send = EXCLUDED.wanted_send,"
    " updated_at = now()"
    " WHERE reminders.seq < EXCLUDED.seq"
)
# The send fence, one round trip right before the provider is called: is the number opted out, does an armed
# reminder still want this very send (the mirror's wanted_send is its key, and it is not deleted), has
# this send been made before; and if it may go, the claim "attempt A calls the provider now". A claim is
# taken when there is none, when the one there was released (the provider surely did not take it), or
# when it is the doubtful claim ($11, $12) the caller has looked up at the provider and not found.
# A STOP or a DELETE committed before this statement is seen by it; one after it is "after the text".
# The `prior` SELECT sees the table as it was before the INSERT.
_CLAIM_SEND = """
WITH gate AS (
    SELECT
        $7::boolean AND coalesce(
            (SELECT opted_out FROM opt_outs WHERE contact_number = $2), false) AS opted_out,
        $8::boolean AND NOT EXISTS (
            SELECT 1 FROM reminders WHERE reminder_id = $1 AND deleted_at IS NULL AND wanted_send = $6
        ) AS withdrawn
), prior AS (
    SELECT provider_id, attempt, claimed_at FROM messages WHERE send_key = $6
), claim AS (
    INSERT INTO messages (reminder_id, contact_number, direction, purpose, body, provider, send_key, sender,
                          attempt, claimed_at)
    SELECT $1, $2, 'outbound', $3, $4, $5, $6, $9, $10, clock_timestamp()
    FROM gate WHERE NOT opted_out AND NOT withdrawn
    ON CONFLICT (send_key) DO UPDATE SET
        attempt = EXCLUDED.attempt, claimed_at = EXCLUDED.claimed_at, body = EXCLUDED.body,
        sender = EXCLUDED.sender, resent = messages.resent + (messages.claimed_at IS NOT NULL)::integer
    WHERE messages.provider_id IS NULL
      AND (messages.claimed_at IS NULL OR (messages.attempt = $11 AND messages.claimed_at = $12))
    RETURNING 1
)
SELECT gate.opted_out, gate.withdrawn, prior.provider_id AS sent_as, prior.attempt AS held_by,
       prior.claimed_at AS held_since, EXISTS (SELECT 1 FROM claim) AS claimed, clock_timestamp() AS now
FROM gate LEFT JOIN prior ON true
"""


def _state_args(state: ReminderState) -> tuple[Any, ...]:
    return (
        state.reminder_id,
        state.contact_number,
        state.appointment,
        state.appt_user_dt,
        state.notify_times,
        state.timezone,
        state.location,
        state.participant,
        state.language,
        state.status.value,
        state.reminder_sent,
        state.will_attend,
        state.confirm_sent,
        state.sent_at,
        state.seq,
        state.notify_windows,
        state.generation,
        state.wanted_send,
    )


@dataclass(frozen=True)
class Claim:
    """What a send found at the fence, right before calling the provider."""

    opted_out: bool
    withdrawn: bool
    claimed: bool
    """This attempt holds the claim: it may call the provider."""
    sent_as: str | None
    """The provider id of this very send, made before (a retry): it must not go out again."""
    held_by: str | None
    held_since: datetime | None
    """Another attempt's claim with no provider id: live while young, in doubt once older."""
    now: datetime


@dataclass(frozen=True)
class Page:
    rows: list[asyncpg.Record]
    next_after: tuple[datetime, str] | None


async def create_pool(dsn: str, *, min_size: int = 0, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=10)
    assert pool is not None
    return pool


class Store:
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
        self, state: ReminderState, request_hash: str | None = None
    ) -> tuple[bool, str | None]:
        """The API's first row, so a reminder is readable the moment it is created; the workflow's own
        writes carry higher sequence numbers and win. Answers whether this call made the row, and the
        request hash the row holds."""
        async with self.pool.acquire() as conn:
            status = await conn.execute(
                f"INSERT INTO reminders ({_STATE_COLUMNS}, request_hash)"
                f" VALUES ({_STATE_VALUES}, ${_STATE_ARGS + 1})"
                " ON CONFLICT (reminder_id) DO NOTHING",
                *_state_args(state),
                request_hash,
            )
            if status.endswith(" 1"):
                return True, request_hash
            held = await conn.fetchval(
                "SELECT request_hash FROM reminders WHERE reminder_id = $1", state.reminder_id
            )
            return False, held

    async def upsert_state(self, state: ReminderState) -> bool:
        """Writes the workflow's state unless a newer one is already there. True when it was written."""
        status = await self.pool.execute(_UPSERT_STATE, *_state_args(state))
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

    async def set_status(self, reminder_id: str, status: str) -> None:
        """For a workflow that ended without writing its last state (terminated by an operator)."""
        await self.pool.execute(
            "UPDATE reminders SET status = $2, seq = seq + 1, updated_at = now() WHERE reminder_id = $1",
            reminder_id,
            status,
        )

    async def unstarted_rows(self, older_than: timedelta) -> list[str]:
        """Rows the API wrote that no workflow has written since."""
        rows = await self.pool.fetch(
            "SELECT reminder_id FROM reminders WHERE seq = 0 AND deleted_at IS NULL"
            " AND created_at < now() - $1::interval",
            older_than,
        )
        return [r["reminder_id"] for r in rows]

    async def get(self, reminder_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM reminders WHERE reminder_id = $1 AND deleted_at IS NULL", reminder_id
        )

    async def list_page(
        self,
        *,
        limit: int,
        after: tuple[datetime, str] | None = None,
        status: str | None = None,
        contact_number: str | None = None,
    ) -> Page:
        where = ["deleted_at IS NULL"]
        args: list[Any] = []
        if status is not None:
            args.append(status)
            where.append(f"status = ${len(args)}")
        if contact_number is not None:
            args.append(contact_number)
            where.append(f"contact_number = ${len(args)}")
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

    async def open_reminders(self, contact_number: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT reminder_id FROM reminders WHERE contact_number = $1 AND deleted_at IS NULL"
            " AND status = ANY($2::text[]) AND appointment > now()",
            contact_number,
            [s.value for s in OPEN_STATUSES],
        )
        return [r["reminder_id"] for r in rows]

    async def route_reply(self, contact_number: str) -> str | None:
        """The sender's reminder sent most recently whose appointment has not begun."""
        return await self.pool.fetchval(
            "SELECT reminder_id FROM reminders WHERE contact_number = $1 AND sent_at IS NOT NULL"
            " AND deleted_at IS NULL AND appointment > now() AND status <> ALL($2::text[])"
            " ORDER BY sent_at DESC LIMIT 1",
            contact_number,
            [Status.OPTED_OUT.value, Status.FAILED.value, Status.DELETED.value],
        )

    # Opt-outs

    async def set_consent(
        self,
        contact_number: str,
        opted_out: bool,
        *,
        at: datetime,
        source: str,
        message_id: str | None = None,
        note: str | None = None,
    ) -> bool:
        """Records an opt-out or opt-in made at `at` (the provider's time where it gives one). An older change
        arriving late does not undo a newer one; at the same instant a STOP wins. True when it took effect."""
        status = await self.pool.execute(
            "INSERT INTO opt_outs (contact_number, opted_out, changed_at, source, message_id, note)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (contact_number) DO UPDATE SET opted_out = EXCLUDED.opted_out,"
            " changed_at = EXCLUDED.changed_at, source = EXCLUDED.source, message_id = EXCLUDED.message_id,"
            " note = EXCLUDED.note, updated_at = now()"
            " WHERE opt_outs.changed_at < EXCLUDED.changed_at"
            " OR (opt_outs.changed_at = EXCLUDED.changed_at AND EXCLUDED.opted_out AND NOT opt_outs.opted_out)",
            contact_number,
            opted_out,
            at,
            source,
            message_id,
            note,
        )
        return status.endswith(" 1")

    # Pacing

    async def reserve_send_slot(self, sender: str, interval: float, max_wait: float) -> float | None:
        """Takes the sender's next send slot, `interval` seconds after the one before; answers how long to
        wait for it, or None (nothing taken) when it is further away than `max_wait`."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO send_pacing (sender, next_slot) VALUES ($1, '-infinity') ON CONFLICT DO NOTHING",
                sender,
            )
            row = await conn.fetchrow(
                "SELECT greatest(next_slot, clock_timestamp()) AS slot, clock_timestamp() AS now"
                " FROM send_pacing WHERE sender = $1 FOR UPDATE",
                sender,
            )
            assert row is not None
            wait = (row["slot"] - row["now"]).total_seconds()
            if wait > max_wait:
                return None
            await conn.execute(
                "UPDATE send_pacing SET next_slot = $2::timestamptz + make_interval(secs => $3::float8) WHERE sender = $1",
                sender,
                row["slot"],
                interval,
            )
            return wait

    # Messages

    async def claim_send(
        self,
        *,
        key: str,
        reminder_id: str | None,
        contact_number: str,
        purpose: str,
        body: str,
        provider: str,
        sender: str,
        attempt: str,
        check_opt_out: bool,
        armed: bool,
        take_over: tuple[str, datetime] | None = None,
    ) -> Claim:
        row = await self.pool.fetchrow(
            _CLAIM_SEND,
            reminder_id,
            contact_number,
            purpose,
            body,
            provider,
            key,
            check_opt_out,
            armed,
            sender,
            attempt,
            take_over[0] if take_over else None,
            take_over[1] if take_over else None,
        )
        assert row is not None
        return Claim(
            opted_out=row["opted_out"],
            withdrawn=row["withdrawn"],
            claimed=row["claimed"],
            sent_as=row["sent_as"],
            held_by=row["held_by"],
            held_since=row["held_since"],
            now=row["now"],
        )

    async def release_claim(self, key: str, attempt: str) -> None:
        """The provider surely did not take this attempt's message: the next attempt claims it freely."""
        await self.pool.execute(
            "UPDATE messages SET claimed_at = NULL WHERE send_key = $1 AND attempt = $2 AND provider_id IS NULL",
            key,
            attempt,
        )

    async def sent_as(self, key: str) -> str | None:
        return await self.pool.fetchval("SELECT provider_id FROM messages WHERE send_key = $1", key)

    async def recorded_ids(self, provider: str, provider_ids: list[str]) -> set[str]:
        """Which of these provider ids some send has recorded already."""
        rows = await self.pool.fetch(
            "SELECT provider_id FROM messages WHERE provider = $1 AND direction = 'outbound'"
            " AND provider_id = ANY($2::text[])",
            provider,
            provider_ids,
        )
        return {r["provider_id"] for r in rows}

    async def complete_send(
        self, key: str, provider_id: str, mirror: ReminderState | None = None, recorded_by: str = "answer"
    ) -> None:
        """The provider has the message: its id (with any receipt that came first), and the state it leads
        to, in one statement. The first id recorded for a send key stays."""
        n = _STATE_ARGS if mirror is not None else 0
        record = (
            f"UPDATE messages SET provider_id = ${n + 2}, at = now(), recorded_by = ${n + 3},"
            f" delivery_status = coalesce(messages.delivery_status,"
            f" (SELECT delivery_status FROM delivery_receipts WHERE provider_id = ${n + 2}))"
            f" WHERE send_key = ${n + 1} AND provider_id IS NULL"
        )
        if mirror is None:
            await self.pool.execute(record, key, provider_id, recorded_by)
            return
        await self.pool.execute(
            f"WITH sent AS ({record}) {_UPSERT_STATE}", *_state_args(mirror), key, provider_id, recorded_by
        )

    async def record_inbound(
        self, *, provider: str, provider_id: str, contact_number: str, body: str, reminder_id: str | None
    ) -> tuple[bool, str | None]:
        """Stores a received text once per provider message. Answers whether this call stored it, and the
        reminder it belongs to: a webhook delivered again goes to the reminder the first delivery went to."""
        row = await self.pool.fetchrow(
            "INSERT INTO messages (reminder_id, contact_number, direction, body, provider, provider_id)"
            " VALUES ($1, $2, 'inbound', $3, $4, $5)"
            " ON CONFLICT (provider, provider_id) WHERE direction = 'inbound'"
            " DO UPDATE SET provider = EXCLUDED.provider"
            " RETURNING reminder_id, (xmax = 0) AS inserted",
            reminder_id,
            contact_number,
            body,
            provider,
            provider_id,
        )
        assert row is not None
        return row["inserted"], row["reminder_id"]

    async def record_delivery(
        self, provider_id: str, delivery_status: str, send_key: str | None = None
    ) -> bool:
        """A delivery receipt. With our send key (from the callback URL) it also fills in a provider id the
        send could not record; for an id not known yet it is kept and taken in when the id is recorded."""
        async with self.pool.acquire() as conn:
            if send_key is not None:
                status = await conn.execute(
                    "UPDATE messages SET provider_id = coalesce(provider_id, $1),"
                    " recorded_by = coalesce(recorded_by, 'receipt'), delivery_status = $2, delivery_at = now()"
                    " WHERE send_key = $3 AND direction = 'outbound' AND (provider_id IS NULL OR provider_id = $1)",
                    provider_id,
                    delivery_status,
                    send_key,
                )
                if not status.endswith(" 0"):
                    return True
            status = await conn.execute(
                "UPDATE messages SET delivery_status = $2, delivery_at = now()"
                " WHERE provider_id = $1 AND direction = 'outbound'",
                provider_id,
                delivery_status,
            )
            if not status.endswith(" 0"):
                return True
            await conn.execute(
                "INSERT INTO delivery_receipts (provider_id, delivery_status) VALUES ($1, $2)"
                " ON CONFLICT (provider_id) DO UPDATE SET delivery_status = EXCLUDED.delivery_status, at = now()",
                provider_id,
                delivery_status,
            )
            return False

    async def messages(self, reminder_id: str) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT * FROM messages WHERE reminder_id = $1 AND (direction = 'inbound' OR provider_id IS NOT NULL)"
            " ORDER BY at, id",
            reminder_id,
        )
