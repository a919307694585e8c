"""`python -m bench.shapes`: what a reply costs the Temporal server, by the shape of the workflow it goes to.

The replies phase compares the service's reply with raw Temporal's on one server, and the service's
reminders differ from raw's reply workflow in more than the reply: four search attributes and a summary
from their start, a send already made, a pending timer for the appointment. This asks whether any of that
makes the server's work for a reply dearer. A dev server of its own (headless, the service's search
attributes registered) and a raw worker in this process; three shapes, each signalled 'Yes' and answering
with an upsert and a local activity, taking turns in alternating order:

- bare: the raw baseline's workflow, started with no search attributes;
- attributes: the same, started with the four search attributes and the summary the API gives a reminder;
- reminder: that start, an activity run and a two-hour timer pending before the reply.

Prints, per shape, the median over the rounds of the server's CPU per reply and of the replies a second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from api.starts import search_attributes_of, summary_of
from bench.load import run_batch
from bench.raw import RawReply, RawReplyShaped, Recorder, raw_worker
from bench.system import quiet_window, usage_of
from devstack.embedded import TemporalDevServer, free_port
from workflows.models import ReminderInput

IN_FLIGHT = 50
# Before the turns, the server must have been this idle (a share of a core) over a window of seconds: the
# starts leave it visibility and transfer tasks to work through, and the first turn would pay for them.
QUIET_SHARE = 0.05
QUIET_WINDOW_S = 3.0
QUIET_WAIT_S = 180.0
TURN_QUIET_WAIT_S = 20.0


def _cpu_s(pid: int) -> float:
    got = usage_of(pid)
    if got is None:
        raise RuntimeError(f"the dev server (pid {pid}) cannot be read")
    return got["cpu_s"]


def _reminder_start(i: int) -> dict[str, Any]:
    """What the API's start carries besides the input: its search attributes and summary."""
    now = datetime.now(UTC)
    inp = ReminderInput(
        reminder_id=uuid.uuid4().hex,
        contact_number=f"1555{i:07d}",
        appointment=now + timedelta(hours=2),
        appt_user_dt=(now + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M"),
        notify_windows=[3],
        timezone="America/New_York",
        location="West Side Mechanics",
        participant="Dr Smith",
    )
    return {"search_attributes": search_attributes_of(inp), "static_summary": summary_of(inp)}


async def _gathered(count: int, job: Callable[[int], Awaitable[Any]]) -> None:
    batch = await run_batch(count, IN_FLIGHT, job)
    if batch.errors:
        raise RuntimeError(f"{len(batch.errors)} of {count} calls failed: {batch.errors[:3]}")


async def _quiet(pid: int, limit: float = QUIET_WAIT_S) -> float:
    return (await quiet_window(lambda: _cpu_s(pid), QUIET_SHARE, QUIET_WINDOW_S, time.time() + limit))[0]


async def measure(count: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    with tempfile.TemporaryDirectory(prefix="reminders-shapes-") as folder:
        server = TemporalDevServer(Path(folder), port=free_port(), ui_port=free_port(), headless=True)
        server.start()
        try:
            assert server.proc is not None
            pid = server.proc.pid
            client = await Client.connect(server.address)
            recorder = Recorder()
            worker = raw_worker(
                client, "shapes", recorder, pollers=25, cache_size=5000, activity_slots=1000, sandboxed=True
            )
            shapes: dict[str, tuple[Any, Callable[[int], dict[str, Any]]]] = {
                "bare": (RawReply.run, lambda i: {}),
                "attributes": (RawReply.run, _reminder_start),
                "reminder": (RawReplyShaped.run, _reminder_start),
            }
            async with worker:
                ids: dict[str, list[str]] = {}
                for name, (run, start) in shapes.items():
                    ids[name] = [f"shape-{name}-{i}-{uuid.uuid4().hex[:8]}" for i in range(count * rounds)]

                    async def begin(
                        i: int, run: Any = run, start: Any = start, made: list[str] = ids[name]
                    ) -> None:
                        await client.start_workflow(run, made[i], id=made[i], task_queue="shapes", **start(i))

                    await _gathered(count * rounds, begin)
                # The reminder-shaped ones have each run their activity (the send) before the replies.
                while len(recorder.arrivals) < count * rounds:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
                print(f"started {count * rounds} of each shape; server quiet after {await _quiet(pid):.0f} s")
                figures: dict[str, list[tuple[float, float]]] = {name: [] for name in shapes}
                names = list(shapes)
                for n in range(rounds):
                    for name in names if n % 2 == 0 else names[::-1]:
                        turn = ids[name][n * count : (n + 1) * count]
                        cpu0, t0 = _cpu_s(pid), time.time()

                        async def signal(i: int, turn: list[str] = turn) -> None:
                            await client.get_workflow_handle(turn[i]).signal(RawReply.reply, "Yes")

                        await _gathered(count, signal)
                        while not all(w in recorder.answers for w in turn):  # noqa: ASYNC110
                            await asyncio.sleep(0.05)
                        last = max(recorder.answers[w] for w in turn)
                        # The server's own work for the turn ends shortly after the last answer.
                        await asyncio.sleep(0.5)
                        cpu_ms = 1000 * (_cpu_s(pid) - cpu0) / count
                        figures[name].append((round(cpu_ms, 2), round(count / (last - t0), 1)))
                        print(f"round {n + 1} {name}: {cpu_ms:.2f} ms of server CPU a reply")
                        await _quiet(pid, TURN_QUIET_WAIT_S)
                return figures
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300, help="replies per shape per round")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.count, args.rounds))
    print(f"\n{'shape':<12} {'server CPU ms/reply (median)':>30} {'replies/s (median)':>20}")
    for name, rows in figures.items():
        cpu = statistics.median(r[0] for r in rows)
        rate = statistics.median(r[1] for r in rows)
        print(f"{name:<12} {cpu:>30.2f} {rate:>20.1f}")
    base = statistics.median(r[0] for r in figures["bare"])
    for name in ("attributes", "reminder"):
        print(f"{name} / bare, server CPU: {statistics.median(r[0] for r in figures[name]) / base:.2f}")


if __name__ == "__main__":
    main()
