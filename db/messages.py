"""The PostgreSQL side of every message: consent, pacing, the send fence, what was sent and received, and
delivery receipts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from db.state import STATE_ARGS, UPSERT_STATE, state_args, with_state_written
from workflows.models import ReminderState

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
    SELECT provider_id, attempt, claimed_at, body FROM messages WHERE send_key = $6
), chosen AS (
    -- The first text ever sent to a number gets the opt-out line ($13).
    SELECT CASE WHEN $13::text IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM messages WHERE contact_number = $2 AND direction = 'outbound'
                                             AND provider_id IS NOT NULL)
                THEN $13 ELSE $4 END AS body
), may AS (
    -- Nothing stops this attempt's claim but, perhaps, the pacing. A claim this attempt ($10) made already
    -- (its answer lost with the connection) is its own: the provider has not been called under it.
    SELECT NOT gate.opted_out AND NOT gate.withdrawn AND NOT EXISTS (
        SELECT 1 FROM prior WHERE provider_id IS NOT NULL
            OR (claimed_at IS NOT NULL AND attempt IS DISTINCT FROM $10
                AND NOT (attempt IS NOT DISTINCT FROM $11 AND claimed_at IS NOT DISTINCT FROM $12))
    ) AS ok FROM gate
), pace AS (
    -- The pacing key ($14) calls the provider no sooner than its interval ($15) after its last call.
    UPDATE send_pacing SET last_sent = clock_timestamp()
    WHERE $14::text IS NOT NULL AND sender = $14 AND (SELECT ok FROM may)
      AND (last_sent IS NULL OR last_sent + make_interval(secs => $15::float8) <= clock_timestamp())
    RETURNING 1
), claim AS (
    INSERT INTO messages (reminder_id, contact_number, direction, purpose, body, provider, send_key, sender,
                          attempt, claimed_at)
    SELECT $1, $2, 'outbound', $3, chosen.body, $5, $6, $9, $10, clock_timestamp()
    FROM gate, chosen, may WHERE may.ok AND ($14::text IS NULL OR EXISTS (SELECT 1 FROM pace))
    ON CONFLICT (send_key) DO UPDATE SET
        attempt = EXCLUDED.attempt, claimed_at = EXCLUDED.claimed_at, body = EXCLUDED.body,
        sender = EXCLUDED.sender,
        resent = messages.resent
                 + (messages.claimed_at IS NOT NULL AND messages.attempt IS DISTINCT FROM $10)::integer
    WHERE messages.provider_id IS NULL
      AND (messages.claimed_at IS NULL OR messages.attempt = $10
           OR (messages.attempt = $11 AND messages.claimed_at = $12))
    RETURNING body
)
SELECT gate.opted_out, gate.withdrawn, prior.provider_id AS sent_as, prior.attempt AS held_by,
       prior.claimed_at AS held_since, EXISTS (SELECT 1 FROM claim) AS claimed, clock_timestamp() AS now,
       coalesce((SELECT body FROM claim), prior.body) AS body,
       $14::text IS NOT NULL AND (SELECT ok FROM may) AND NOT EXISTS (SELECT 1 FROM pace) AS paced_out,
       extract(epoch FROM (SELECT last_sent FROM send_pacing WHERE sender = $14)
                          + make_interval(secs => $15::float8) - clock_timestamp())::float8 AS pace_wait
FROM gate LEFT JOIN prior ON true
"""

# The fence with the reminder's state written in the same round trip: an answer to a reply records
# "answered" as it claims its text. Not for an armed send: its fence reads the row's wanted_send, which the
# statement's own write would not yet show it.
_CLAIM_SEND_MIRRORED = with_state_written(_CLAIM_SEND)


# The texts whose delivery a reminder shows: its reminder text and a deliberate resend of it.
REMINDER_TEXTS = ("reminder", "resend")
# A receipt for a message, and for the reminder whose newest reminder text it is, in one statement.
_RECEIPT = """
WITH m AS (
    UPDATE messages SET {set} delivery_status = $2, delivery_at = now() WHERE {where}
    RETURNING id, reminder_id, purpose
), r AS (
    UPDATE reminders SET delivery_status = $2 FROM m
    WHERE m.purpose = ANY($3::text[]) AND reminders.reminder_id = m.reminder_id
      AND reminders.delivery_status IS DISTINCT FROM $2
      AND m.id >= coalesce((SELECT max(x.id) FROM messages x WHERE x.reminder_id = m.reminder_id
                            AND x.purpose = ANY($3::text[]) AND x.provider_id IS NOT NULL), 0)
    RETURNING 1
)
SELECT count(*) > 0 FROM m
"""


# A received text is stored once per provider message: delivered again, the row stays as the first delivery
# left it (its reminder above all), and RETURNING still gives it.
INBOUND_ONCE = (
    " ON CONFLICT (provider, provider_id) WHERE direction = 'inbound'"
    " DO UPDATE SET provider = EXCLUDED.provider"
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
    body: str | None
    """The text as claimed: this attempt's, or the earlier claim's (what a doubt is looked up by)."""
    paced_out: bool = False
    """Nothing but the pacing stopped the claim: try again in `pace_wait` seconds."""
    pace_wait: float | None = None


class MessageRows:
    pool: asyncpg.Pool

    # Pacing

    async def reserve_send_slot(self, sender: str, interval: float, max_wait: float) -> datetime | None:
        """Takes the sender's next send slot, `interval` seconds after the one before; answers when it is
        (an instant, so the time this round trip took does not shift the send), or None (nothing taken)
        when it is further away than `max_wait`."""
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
            slot: datetime = row["slot"]
            return slot

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
        first_body: str | None = None,
        pacing: tuple[str, float] | None = None,
        mirror: ReminderState | None = None,
    ) -> Claim:
        """The send fence; `mirror`, a state to write with it (never for an armed send)."""
        assert mirror is None or not armed
        row = await self.pool.fetchrow(
            _CLAIM_SEND if mirror is None else _CLAIM_SEND_MIRRORED,
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
            first_body,
            pacing[0] if pacing else None,
            pacing[1] if pacing else 0.0,
            *(state_args(mirror) if mirror is not None else ()),
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
            body=row["body"],
            paced_out=row["paced_out"],
            pace_wait=row["pace_wait"],
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
        self,
        key: str,
        provider_id: str,
        mirror: ReminderState | None = None,
        recorded_by: str = "answer",
        cost: tuple[str, int] | None = None,
    ) -> None:
        """The provider has the message: its id (with any receipt that came first), and the state it leads
        to, in one statement. The first id recorded for a send key stays."""
        encoding = cost or (None, None)
        n = STATE_ARGS if mirror is not None else 0
        record = (
            f"UPDATE messages SET provider_id = ${n + 2}, at = now(), recorded_by = ${n + 3},"
            f" encoding = ${n + 4}, segments = ${n + 5},"
            f" delivery_status = coalesce(messages.delivery_status,"
            f" (SELECT delivery_status FROM delivery_receipts WHERE provider_id = ${n + 2}))"
            f" WHERE send_key = ${n + 1} AND provider_id IS NULL"
        )
        if mirror is None:
            await self.pool.execute(record, key, provider_id, recorded_by, *encoding)
            return
        # The reminder shows its newest reminder text's delivery: a receipt may have come before the answer
        # (then `sent` carries it) or been recorded under the send key already (then the row holds it).
        shows_delivery = (
            f" updated_at = now(), delivery_status = CASE"
            f" WHEN (SELECT purpose FROM messages WHERE send_key = ${n + 1}) = ANY(${n + 6}::text[])"
            f" THEN coalesce((SELECT delivery_status FROM sent),"
            f" (SELECT delivery_status FROM messages WHERE send_key = ${n + 1}))"
            f" ELSE reminders.delivery_status END"
        )
        upsert = UPSERT_STATE.replace(" updated_at = now()", shows_delivery)
        assert upsert != UPSERT_STATE
        await self.pool.execute(
            f"WITH sent AS ({record} RETURNING delivery_status) {upsert}",
            *state_args(mirror),
            key,
            provider_id,
            recorded_by,
            *encoding,
            list(REMINDER_TEXTS),
        )

    async def record_inbound(
        self,
        *,
        provider: str,
        provider_id: str,
        contact_number: str,
        body: str,
        reminder_id: str | None,
        needs_attention: bool = False,
    ) -> tuple[bool, str | None]:
        """Stores a received text once per provider message. Answers whether this call stored it, and the
        reminder it belongs to: a webhook delivered again goes to the reminder the first delivery went to.
        `needs_attention` puts it in the inbox (with no reminder to take it: the reply after the window)."""
        row = await self.pool.fetchrow(
            "INSERT INTO messages (reminder_id, contact_number, direction, body, provider, provider_id,"
            " needs_attention) VALUES ($1, $2, 'inbound', $3, $4, $5, $6)"
            f"{INBOUND_ONCE} RETURNING reminder_id, (xmax = 0) AS inserted",
            reminder_id,
            contact_number,
            body,
            provider,
            provider_id,
            needs_attention,
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
                found = await conn.fetchval(
                    _RECEIPT.format(
                        set="provider_id = coalesce(provider_id, $1), recorded_by = coalesce(recorded_by, 'receipt'),",
                        where="send_key = $4 AND direction = 'outbound' AND (provider_id IS NULL OR provider_id = $1)",
                    ),
                    provider_id,
                    delivery_status,
                    list(REMINDER_TEXTS),
                    send_key,
                )
                if found:
                    return True
            found = await conn.fetchval(
                _RECEIPT.format(set="", where="provider_id = $1 AND direction = 'outbound'"),
                provider_id,
                delivery_status,
                list(REMINDER_TEXTS),
            )
            if found:
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
