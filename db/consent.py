"""Consent as the service holds it: opt-outs and opt-ins, ordered by when they were made."""

from __future__ import annotations

from datetime import datetime

import asyncpg


class ConsentRows:
    pool: asyncpg.Pool

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

    async def opt_out(self, contact_number: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow("SELECT * FROM opt_outs WHERE contact_number = $1", contact_number)

    async def list_opt_outs(self, *, limit: int, after: str | None = None) -> list[asyncpg.Record]:
        """The numbers opted out now, by number."""
        return await self.pool.fetch(
            "SELECT * FROM opt_outs WHERE opted_out AND ($1::text IS NULL OR contact_number > $1)"
            " ORDER BY contact_number LIMIT $2",
            after,
            limit,
        )
