"""Processes the bench starts beside a stack: a second service worker on the same Temporal server and
PostgreSQL, and the helpers the raw backlog's worker process (bench/backlog.py) shares with it."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.system import usage_of
from devstack.embedded import spawn, stop_process
from devstack.harness import ROOT, Stack

READY_TIMEOUT_S = 60.0
# Right after a 5,000 burst the server is still working through the burst's completions, and a worker's
# graceful stop waits on its calls to it (heartbeats, workflow task completions, polls): more than 20 s in
# three of four full profiles and in two of three runs of that burst alone. Killed sooner, the stop's
# length would not be known.
STOP_TIMEOUT_S = 90.0


def wait_ready(ready: Path, proc: Any, what: str) -> None:
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
        await asyncio.to_thread(wait_ready, ready, proc, name)
        yield proc.pid
    finally:
        await asyncio.to_thread(stop_process, proc, name, STOP_TIMEOUT_S)


def usage(pid: int) -> dict[str, Any]:
    got = usage_of(pid) or {}
    return {
        "rss_bytes": int(got.get("rss", 0)),
        "pss_bytes": int(got.get("pss", got.get("rss", 0))),
        "cpu_s": round(got.get("cpu_s", 0.0), 2),
    }


def child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
