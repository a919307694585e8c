"""Processes the bench starts beside a stack: a second service worker on the same Temporal server and
PostgreSQL, and a raw-Temporal stack of its own (dev server plus a minimal worker) for the memory baseline.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.load import run_batch
from bench.phases import backlog_count, backlog_stages
from bench.system import usage_of
from devstack.embedded import TemporalDevServer, free_port, spawn, stop_process
from devstack.harness import ROOT, Stack

READY_TIMEOUT_S = 60.0


def _wait_ready(ready: Path, proc: Any, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited at start ({proc.returncode})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


@asynccontextmanager
async def extra_worker(stack: Stack, name: str = "worker2") -> AsyncIterator[int]:
    """One more `python -m worker` with the stack's settings, polling the same task queue on the same
    Temporal server and PostgreSQL; yields its pid and stops it (SIGTERM, as the launcher does) after."""
    info = stack.run_info()
    ready = stack.data_dir / f"{name}.ready"
    ready.unlink(missing_ok=True)
    env = {
        **stack.env,
        "TEMPORAL_ADDRESS": info["temporal"],
        "DATABASE_URL": info["database_url"],
        "WORKER_READY_FILE": str(ready),
        "PYTHONPATH": str(ROOT),
    }
    proc = spawn([sys.executable, "-m", "worker"], stack.data_dir / f"{name}.log", env)
    try:
        await asyncio.to_thread(_wait_ready, ready, proc, name)
        yield proc.pid
    finally:
        await asyncio.to_thread(stop_process, proc, name, 20)


def usage(pid: int) -> dict[str, Any]:
    got = usage_of(pid) or {}
    return {
        "rss_bytes": int(got.get("rss", 0)),
        "pss_bytes": int(got.get("pss", got.get("rss", 0))),
        "cpu_s": round(got.get("cpu_s", 0.0), 2),
    }


# How far off the raw backlog's workflows start: days, like the reminders the service's backlog holds.
RAW_BACKLOG_DELAY = timedelta(days=2)


async def raw_memory(
    workdir: Path,
    count: int,
    *,
    cache_size: int,
    server_cache_size: int,
    sandboxed: bool,
    pollers: int,
    concurrency: int,
    say: Callable[[str], None],
    deadline: float,
    settle_s: float,
) -> dict[str, Any]:
    """`count` sleeping minimal workflows (started deferred) on a Temporal dev server of their own, held by a minimal worker
    process with the service worker's cache, pollers and runner, the server with the service's server cache:
    the memory of each process, as the service's backlog is measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = TemporalDevServer(
        workdir, port=free_port(), ui_port=free_port(), cache_size=server_cache_size, headless=True
    )
    await asyncio.to_thread(server.start)
    ready = workdir / "raw-worker.ready"
    queue = "bench-raw-memory"
    worker = None
    try:
        client = await Client.connect(server.address)
        worker = spawn(
            [
                sys.executable,
                "-m",
                "bench.raw",
                server.address,
                queue,
                str(cache_size),
                str(pollers),
                str(ready),
                "sandboxed" if sandboxed else "unsandboxed",
            ],
            workdir / "raw-worker.log",
            {"PYTHONPATH": str(ROOT), **_env()},
        )
        await asyncio.to_thread(_wait_ready, ready, worker, "raw worker")
        idle = {"temporal": usage(server.proc.pid if server.proc else 0), "worker": usage(worker.pid)}
        say(f"backlog_raw: {count} sleeping workflows on a raw stack of their own ({server.address})")

        stages: list[dict[str, Any]] = []
        done = 0

        async def start(i: int) -> bool:
            # `done` is the count started in the stages before this one. Deferred, as the service starts a
            # reminder made days ahead: until then each is a start event and a timer on the server.
            await client.start_workflow(
                "BenchSleep",
                60.0,
                id=f"bench-mem-{done + i}",
                task_queue=queue,
                start_delay=RAW_BACKLOG_DELAY,
            )
            return True

        for stage in backlog_stages(count):
            started = await run_batch(stage - done, concurrency, start, deadline)
            done = stage
            settled = await _settle(client, queue, time.time() + settle_s)
            held = {"temporal": usage(server.proc.pid if server.proc else 0), "worker": usage(worker.pid)}
            held["total"] = {k: sum(p[k] for p in held.values()) for k in ("rss_bytes", "pss_bytes", "cpu_s")}
            stages.append(
                {"pending": stage, "start": started.figures(), "settle": settled, "usage_held": held}
            )
            say(
                f"backlog_raw: {stage} started ({started.rate:.0f}/s); PSS temporal "
                f"{held['temporal']['pss_bytes'] >> 20} MB, worker {held['worker']['pss_bytes'] >> 20} MB"
            )
        return {
            "count": count,
            "start": stages[-1]["start"],
            "settle": stages[-1]["settle"],
            "stages": stages,
            "cache_size": cache_size,
            "usage_idle": idle,
            "usage_held": stages[-1]["usage_held"],
        }
    finally:
        if worker is not None:
            await asyncio.to_thread(stop_process, worker, "raw worker", 15)
        await asyncio.to_thread(server.stop)


async def _settle(client: Client, queue: str, deadline: float) -> dict[str, Any]:
    """Until the queue has had no backlog for a second (every workflow has run its first task)."""
    t0 = time.monotonic()
    quiet_since: float | None = None
    while time.time() < deadline:
        now = time.monotonic()
        if await backlog_count(client, queue) == 0:
            quiet_since = quiet_since or now
            if now - quiet_since >= 1.0:
                return {"seconds": round(now - t0, 2), "settled": True}
        else:
            quiet_since = None
        await asyncio.sleep(0.25)
    return {"seconds": round(time.monotonic() - t0, 2), "settled": False}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
