"""The mirror's repair walk timed with the backlog in place: the pass over every reminder (the worker's
first, then one each RECONCILE_FULL_INTERVAL) beside two periodic ones, whose cost should follow what
changed and not the reminders waiting: the worker's pass right after the fill (the rows made in its window
are counted, not listed) and one with nothing created since."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.phases import Ctx
from bench.system import cpu_seconds, cpu_spent
from db.store import Store
from stack.reconcile import ORPHAN_AGE, OVERLAP, reconcile


async def reconcile_passes(ctx: Ctx, interval_s: float) -> dict[str, Any]:
    """Three passes: over every reminder, the worker's periodic one right after the fill, and one with
    nothing created since (the worker's passes every `interval_s` once the creates stop)."""
    pool = await asyncpg.create_pool(ctx.stack.run_info()["database_url"], min_size=1, max_size=2)
    out: dict[str, Any] = {"interval_s": interval_s}
    try:
        # The worker's pass right after the fill: what it reaches back over (see plan_pass).
        after_fill = datetime.now(UTC) - timedelta(seconds=interval_s) - ORPHAN_AGE - OVERLAP
        for name, since in (
            ("every_reminder", None),
            ("periodic_after_the_fill", after_fill),
            ("periodic_nothing_new", datetime.now(UTC)),
        ):
            ctx.say(f"backlog: reconcile pass, {name.replace('_', ' ')}")
            before, t0 = cpu_seconds(ctx.stack), time.perf_counter()
            report = await reconcile(ctx.temporal, Store(pool), changed_since=since)
            seconds = time.perf_counter() - t0
            spent = cpu_spent(before, cpu_seconds(ctx.stack))
            out[name] = {
                "seconds": round(seconds, 2),
                "checked": report.checked,
                "repaired": report.repaired,
                "orphans_checked": report.orphans_checked,
                "rows_counted": report.rows_counted,
                "cpu_s": {k: round(v, 2) for k, v in spent.items()},
            }
    finally:
        await pool.close()
    return out
