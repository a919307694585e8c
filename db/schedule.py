"""The reconcile schedule: when the mirror was last compared with Temporal, shared by all the workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass
class ReconcileTurn:
    """One worker's hold on the reconcile schedule: the time now, when the last good pass began, and the
    last full one. `done` records this pass, written as the hold ends."""

    now: datetime
    last_start: datetime | None
    last_full: datetime | None
    finished: bool = False
    full: bool = False

    def done(self, full: bool) -> None:
        """The pass that began at `now` finished (over every reminder, if `full`)."""
        self.finished, self.full = True, full


class ReconcileRows:
    pool: asyncpg.Pool

    @asynccontextmanager
    async def reconcile_turn(self, name: str = "mirror") -> AsyncIterator[ReconcileTurn | None]:
        """The reconcile schedule's row, held for one pass (a transaction around it), or None while another
        worker holds it. What the turn records is written when the pass is done; a worker that dies
        mid-pass leaves the row as it was."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO reconcile_passes (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
            )
            async with conn.transaction():
                # PostgreSQL's clock, not the worker's: every worker reads the schedule by the same one.
                row = await conn.fetchrow(
                    "SELECT last_start, last_full, now() AS now FROM reconcile_passes WHERE name = $1"
                    " FOR NO KEY UPDATE SKIP LOCKED",
                    name,
                )
                if row is None:
                    yield None
                    return
                turn = ReconcileTurn(row["now"], row["last_start"], row["last_full"])
                yield turn
                if turn.finished:
                    await conn.execute(
                        "UPDATE reconcile_passes SET last_start = $2,"
                        " last_full = CASE WHEN $3 THEN $2 ELSE last_full END WHERE name = $1",
                        name,
                        turn.now,
                        turn.full,
                    )
