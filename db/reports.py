"""Who is coming: per-day counts of a range of appointments, in a time zone, and per-status counts of one."""

from __future__ import annotations

from datetime import datetime

import asyncpg

# One row per day (its place among the midnights in $3) that has appointments. "No answer" is a reminder that went out and was not answered
# (still waiting, or closed unanswered); failed includes a reminder quiet hours kept from going out.
_DAILY = """
SELECT width_bucket(appointment, $3::timestamptz[]) AS day,
       count(*) AS scheduled,
       count(*) FILTER (WHERE reminder_sent) AS sent,
       count(*) FILTER (WHERE lower(delivery_status) = 'delivered') AS delivered,
       count(*) FILTER (WHERE status = 'confirmed') AS confirmed,
       count(*) FILTER (WHERE status = 'declined') AS declined,
       count(*) FILTER (WHERE status IN ('awaiting_reply', 'no_response')) AS no_answer,
       count(*) FILTER (WHERE status = 'opted_out') AS opted_out,
       count(*) FILTER (WHERE status IN ('failed', 'not_sent')) AS failed
FROM reminders
WHERE deleted_at IS NULL AND appointment >= $1 AND appointment < $2
GROUP BY 1 ORDER BY 1
"""

REPORT_COUNTS = (
    "scheduled",
    "sent",
    "delivered",
    "confirmed",
    "declined",
    "no_answer",
    "opted_out",
    "failed",
)


class ReportRows:
    pool: asyncpg.Pool

    async def daily_counts(self, midnights: list[datetime]) -> dict[int, asyncpg.Record]:
        """Counts per local day, the days given by their midnights (and the midnight after the last): the
        answer is keyed by the day's place, 0 the first. Bucketing by instants leaves the time zone out of
        the per-row work."""
        found = await self.pool.fetch(_DAILY, midnights[0], midnights[-1], midnights)
        return {r["day"] - 1: r for r in found}

    async def status_counts(self, start: datetime, end: datetime) -> dict[str, tuple[int, int]]:
        """Appointments from `start` to `end` (exclusive) by status: how many, and how many of them were
        sent their reminder. Counted in PostgreSQL, so a busy week is counted whole, however few are listed."""
        found = await self.pool.fetch(
            "SELECT status, count(*) AS n, count(*) FILTER (WHERE reminder_sent) AS sent FROM reminders"
            " WHERE deleted_at IS NULL AND appointment >= $1 AND appointment < $2 GROUP BY status",
            start,
            end,
        )
        return {r["status"]: (r["n"], r["sent"]) for r in found}
