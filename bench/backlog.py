"""The backlog: 100,000 reminders made days ahead through the service's API, and as many sleeping minimal
workflows on a raw-Temporal stack of its own (dev server plus a minimal worker) for the memory baseline.

Both fills run in the background through the bench's gate, which is open only while nothing is measured
(the minutes each burst's reminders wait to be armed), and are finished by the backlog phase, which then
reads memory and times the reads with the backlog in place. Memory is read at each pending count on the
way (BACKLOG_STAGES), whatever else the stack is doing then.
"""

from __future__ import annotations

import asyncio
import functools
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.load import Batch, Gate, run_batch
from bench.phases import (
    BACKLOG_STAGES,
    DAY,
    Ctx,
    pooled,
    reminder_body,
    settle,
    settle_queues,
    warm_up,
)
from bench.stats import summary
from bench.system import disk_usage
from bench.workers import child_env, usage, wait_ready
from devstack.embedded import TemporalDevServer, free_port, spawn, stop_process
from devstack.harness import ROOT

# How far off the raw backlog's workflows start: days, like the reminders the service's backlog holds.
RAW_BACKLOG_DELAY = timedelta(days=2)
# The service's fill: reminders a request, and requests in flight (as many creates in flight as the raw fill).
FILL_BATCH = 50
FILL_REQUESTS = 2
# At each pending count, memory is read once the worker has no task queued, or after this long.
STAGE_SETTLE_S = 10.0


def backlog_stages(count: int) -> list[int]:
    """The pending counts memory is read at on the way to `count`: whether it follows the reminders
    waiting is told by how it changes between them."""
    return [s for s in BACKLOG_STAGES if s < count] + [count]


async def _shifted(op: Callable[[int], Awaitable[Any]], base: int, i: int) -> Any:
    """`op` on the whole fill's index: a stage's batch counts from 0."""
    return await op(base + i)


def _fill_figures(
    batches: list[Batch], gate: Gate, began: float | None, made: int | None = None
) -> dict[str, Any]:
    """The creates of a fill, their rate counted over the time the gate was open until its last one.
    `made`: how many a fill of batch requests made (its requests' figures are under `requests`)."""
    figures = pooled(batches).figures() if batches else {}
    if made is not None:
        figures = {"count": made, "ok": made, "batch_size": FILL_BATCH, "requests": figures}
    if batches and began is not None:
        open_s = gate.open_seconds(since=began, until=max(b.ended_at for b in batches))
        figures["gate_open_s"] = round(open_s, 1)
        figures["per_s"] = round(figures["ok"] / open_s, 1) if open_s > 0 else None
    return figures


async def service_fill(
    ctx: Ctx, count: int, usage_of_stack: Callable[[], dict[str, Any]], gate: Gate
) -> dict[str, Any]:
    """`count` reminders through POST /reminder/batch (FILL_BATCH a request), each due days ahead, while
    the gate is open. The create phase times single creates; the backlog needs them made."""
    contacts = ctx.contacts(5, count)
    start = time.time() + 3 * DAY
    # Spread over a week so the notify times are days ahead and distinct.
    bodies = [reminder_body(c, start + (i * 6.048) % (7 * DAY), 24) for i, c in enumerate(contacts)]

    def batch_of(done: int, upto: int) -> Callable[[int], Awaitable[list[str]]]:
        """Request j of a stage: the reminders from done + j * FILL_BATCH, up to the stage's end."""

        async def create(j: int) -> list[str]:
            first = done + j * FILL_BATCH
            chunk = bodies[first : min(first + FILL_BATCH, upto)]
            response = await ctx.http.post("/reminder/batch", json={"reminders": chunk})
            if response.status_code != 200:
                raise RuntimeError(
                    f"POST /reminder/batch answered {response.status_code}: {response.text[:200]}"
                )
            return [str(r) for r in response.json()["reminder_ids"]]

        return create

    await gate.enter()
    before = usage_of_stack()
    gate.leave()
    began = time.time()
    stages: list[dict[str, Any]] = []
    batches: list[Batch] = []
    ids: list[str] = []
    done = 0
    for stage in backlog_stages(count):
        ctx.say(f"backlog: creating reminders {done + 1} to {stage} whenever nothing is measured")
        batch = await run_batch(
            -(-(stage - done) // FILL_BATCH),
            FILL_REQUESTS,
            batch_of(done, stage),
            ctx.by(ctx.limits.creates_s),
            gate,
        )
        batches.append(batch)
        ids += [r for made in batch.results if made for r in made]
        done = stage
        if stage == count:
            # The backlog phase reads the full backlog's memory, the fills done and the stack at rest.
            stages.append({"pending": len(ids), "requests": batch.figures()})
            break
        # Read inside an opening of the gate: between measurements, not during one.
        await gate.enter()
        try:
            settled = await settle(ctx, [ctx.service_queue], ctx.by(STAGE_SETTLE_S))
            stages.append(
                {
                    "pending": len(ids),
                    "requests": batch.figures(),
                    "settle": settled,
                    "usage": usage_of_stack(),
                    "during": gate.windows[-1]["why"] if gate.windows else None,
                    # A burst's reminders being armed hold memory the backlog does not.
                    "at_rest": time.time() < ctx.arming_from,
                }
            )
        finally:
            gate.leave()
        ctx.say(f"backlog: {len(ids)} reminders pending; memory read")
    return {
        "ids": ids,
        "create": _fill_figures(batches, gate, began, made=len(ids)),
        "stages": stages,
        "usage_before": before,
    }


@dataclass(kw_only=True)
class RawBacklog:
    """`count` sleeping minimal workflows (started deferred) on a Temporal dev server of their own, held by
    a minimal worker process with the service worker's cache, pollers and runner, the server with the
    service's server cache: the memory of each process, as the service's backlog is measured."""

    workdir: Path
    count: int
    cache_size: int
    server_cache_size: int
    sandboxed: bool
    pollers: int
    concurrency: int
    say: Callable[[str], None]
    worker: Any = None
    server: TemporalDevServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = TemporalDevServer(
            self.workdir,
            port=free_port(),
            ui_port=free_port(),
            cache_size=self.server_cache_size,
            headless=True,
        )

    async def fill(self, gate: Gate, deadline: float, settle_s: float) -> dict[str, Any]:
        """Starts the raw stack at the gate's first opening, then fills it while the gate is open."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        await gate.enter()
        try:
            await asyncio.to_thread(self.server.start)
            ready = self.workdir / "raw-worker.ready"
            queue = "bench-raw-memory"
            self.worker = spawn(
                [
                    sys.executable,
                    "-m",
                    "bench.raw",
                    self.server.address,
                    queue,
                    str(self.cache_size),
                    str(self.pollers),
                    str(ready),
                    "sandboxed" if self.sandboxed else "unsandboxed",
                ],
                self.workdir / "raw-worker.log",
                {"PYTHONPATH": str(ROOT), **child_env()},
            )
            await asyncio.to_thread(wait_ready, ready, self.worker, "raw worker")
            client = await Client.connect(self.server.address)
            idle = self._usage()
        finally:
            gate.leave()
        self.say(
            f"backlog_raw: {self.count} sleeping workflows on a raw stack of their own ({self.server.address})"
        )
        began = time.time()
        stages: list[dict[str, Any]] = []
        batches: list[Batch] = []
        done = 0

        async def start(i: int) -> bool:
            # Deferred, as the service starts a reminder made days ahead: until then each is a start event
            # and a timer on the server.
            await client.start_workflow(
                "BenchSleep",
                60.0,
                id=f"bench-mem-{i}",
                task_queue=queue,
                start_delay=RAW_BACKLOG_DELAY,
            )
            return True

        for stage in backlog_stages(self.count):
            started = await run_batch(
                stage - done, self.concurrency, functools.partial(_shifted, start, done), deadline, gate
            )
            batches.append(started)
            done = stage
            await gate.enter()
            try:
                settled = await settle_queues(client, [queue], time.time() + settle_s)
                held = self._usage()
            finally:
                gate.leave()
            held["total"] = {k: sum(p[k] for p in held.values()) for k in ("rss_bytes", "pss_bytes", "cpu_s")}
            stages.append(
                {"pending": stage, "start": started.figures(), "settle": settled, "usage_held": held}
            )
            self.say(
                f"backlog_raw: {stage} started; PSS temporal "
                f"{held['temporal']['pss_bytes'] >> 20} MB, worker {held['worker']['pss_bytes'] >> 20} MB"
            )
        return {
            "count": self.count,
            "start": _fill_figures(batches, gate, began),
            "settle": stages[-1]["settle"],
            "stages": stages,
            "cache_size": self.cache_size,
            "usage_idle": idle,
            "usage_held": stages[-1]["usage_held"],
        }

    def _usage(self) -> dict[str, Any]:
        return {
            "temporal": usage(self.server.proc.pid if self.server.proc else 0),
            "worker": usage(self.worker.pid if self.worker else 0),
        }

    async def stop(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(stop_process, self.worker, "raw worker", 15)
        await asyncio.to_thread(self.server.stop)


async def read_times(ctx: Ctx, ids: list[str]) -> dict[str, Any]:
    """GET /reminder/{id} and list pages, one at a time, with the backlog in place."""
    ctx.say("backlog: GET /reminder/{id} and GET /reminder?limit=100, one at a time")
    await warm_up(ctx)
    by_id: list[float] = []
    for rid in random.sample(ids, min(500, len(ids))):
        t0 = time.perf_counter()
        response = await ctx.http.get(f"/reminder/{rid}")
        by_id.append(time.perf_counter() - t0)
        response.raise_for_status()
    listing: list[float] = []
    cursor: str | None = None
    for _ in range(300):
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        t0 = time.perf_counter()
        response = await ctx.http.get("/reminder", params=params)
        listing.append(time.perf_counter() - t0)
        response.raise_for_status()
        # Walking the pages reaches deep into the table, where an OFFSET-style listing would slow down.
        cursor = response.json().get("next_cursor")
    return {
        "get_by_id_ms": summary(by_id, scale=1000, digits=2),
        "get_list_100_ms": summary(listing, scale=1000, digits=2),
        "get_concurrency": 1,
    }


async def backlog_phase(
    ctx: Ctx, count: int, filled: dict[str, Any], usage_of_stack: Callable[[], dict[str, Any]], data_dir: Path
) -> dict[str, Any]:
    """With both fills done and the gate closed: the full backlog's memory, then the reads timed."""
    stages = filled["stages"]
    settled = await settle(ctx, [ctx.service_queue], ctx.by(ctx.limits.settle_s))
    after = usage_of_stack()
    if stages:
        stages[-1].update(settle=settled, usage=after, during="backlog phase", at_rest=True)
    return {
        "count": count,
        "create": filled["create"],
        "settle": settled,
        "stages": stages,
        "usage_before": filled["usage_before"],
        "usage_after": after,
        "disk": disk_usage(data_dir),
        **(await read_times(ctx, filled["ids"])),
    }
