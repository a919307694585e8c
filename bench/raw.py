"""The raw-Temporal baseline: the smallest workflows that do what a reminder does, with no service code.

They live in an importable module because the workflow sandbox re-imports the module a workflow is
defined in; the bench's own process runs their worker.
"""

from __future__ import annotations

import asyncio
import py_compile
import time
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

ARRIVED_ACTIVITY = "bench_arrived"
ANSWERED_ACTIVITY = "bench_answered"
# One of the service's own search attributes (the dev server registers it): a raw reply writes one too.
STATUS = SearchAttributeKey.for_keyword("ReminderStatus")


@workflow.defn(name="BenchSleep")
class RawSleep:
    """What a freshly created reminder amounts to in Temporal: a workflow that waits on a timer."""

    @workflow.run
    async def run(self, seconds: float) -> None:
        await workflow.sleep(seconds)


@workflow.defn(name="BenchSleepCarrying")
class RawSleepCarrying:
    """The sleeping workflow started with what a reminder's start carries: its input as the payload (and,
    from the client, its search attributes and summary). The server's share of a create, without the
    service."""

    @workflow.run
    async def run(self, seconds: float, carried: dict[str, Any]) -> None:
        await workflow.sleep(seconds)


@workflow.defn(name="BenchBurst")
class RawBurst:
    """A reminder reduced to its timer and its one activity: wake at an instant, report the time."""

    @workflow.run
    async def run(self, due_epoch: float, key: str) -> None:
        wait = due_epoch - workflow.now().timestamp()
        if wait > 0:
            await workflow.sleep(wait)
        await workflow.execute_activity(
            ARRIVED_ACTIVITY,
            key,
            start_to_close_timeout=timedelta(seconds=30),
        )


async def _answer(inbox: list[str], key: str) -> None:
    """A reply's work, the same in both reply workflows: take it, upsert one search attribute, answer with a
    local activity."""
    inbox.pop(0)
    workflow.upsert_search_attributes([STATUS.value_set("confirmed")])
    await workflow.execute_local_activity(
        ANSWERED_ACTIVITY, key, start_to_close_timeout=timedelta(seconds=30)
    )


@workflow.defn(name="BenchReply")
class RawReply:
    """A reminder reduced to what a reply costs it: a signal wakes it, it upserts one search attribute and
    answers with a local activity, then waits for the next one."""

    def __init__(self) -> None:
        self._inbox: list[str] = []

    @workflow.run
    async def run(self, key: str) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox))
            await _answer(self._inbox, key)

    @workflow.signal
    def reply(self, body: str) -> None:
        self._inbox.append(body)


@workflow.defn(name="BenchReplyShaped")
class RawReplyShaped:
    """The reply workflow shaped like a reminder awaiting its answer: started with the service's four search
    attributes and a summary (from the client), it has run one activity (its reminder's send) and holds a
    pending timer (its appointment) when the reply comes; the reply itself is RawReply's."""

    def __init__(self) -> None:
        self._inbox: list[str] = []

    @workflow.run
    async def run(self, key: str) -> None:
        await workflow.execute_activity(ARRIVED_ACTIVITY, key, start_to_close_timeout=timedelta(seconds=30))
        workflow.upsert_search_attributes([STATUS.value_set("awaiting_reply")])
        appointment = asyncio.ensure_future(workflow.sleep(timedelta(hours=2)))
        while True:
            await workflow.wait_condition(lambda: bool(self._inbox) or appointment.done())
            if appointment.done():
                return
            await _answer(self._inbox, key)

    @workflow.signal
    def reply(self, body: str) -> None:
        self._inbox.append(body)


class Recorder:
    """Plays the fake provider's part for the baseline: when did each burst workflow's activity run."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.answers: dict[str, float] = {}

    @activity.defn(name=ARRIVED_ACTIVITY)
    async def arrived(self, key: str) -> None:
        self.arrivals.setdefault(key, time.time())

    @activity.defn(name=ANSWERED_ACTIVITY)
    async def answered(self, key: str) -> None:
        self.answers.setdefault(key, time.time())


def raw_worker(
    client: Client,
    task_queue: str,
    recorder: Recorder,
    *,
    pollers: int,
    cache_size: int,
    activity_slots: int,
    sandboxed: bool,
    task_slots: int = 100,
) -> Worker:
    # Tuned like the service's worker (same pollers, cache, slots and runner) so the comparison is of the code
    # each workflow runs, not of worker settings. Its module's bytecode is written first, as the service
    # worker does for its own (the sandbox imports the module again for every workflow).
    py_compile.compile(__file__)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RawSleep, RawSleepCarrying, RawBurst, RawReply, RawReplyShaped],
        activities=[recorder.arrived, recorder.answered],
        max_cached_workflows=cache_size,
        max_concurrent_workflow_tasks=task_slots,
        max_concurrent_workflow_task_polls=min(pollers, task_slots),
        max_concurrent_activities=activity_slots,
        graceful_shutdown_timeout=timedelta(seconds=2),
        workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
    )


async def _serve(
    address: str, task_queue: str, cache_size: int, pollers: int, ready: str, sandboxed: bool
) -> None:
    """A minimal worker process, for the memory baseline: the raw workflows and nothing else."""
    import os
    import signal
    from pathlib import Path

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await Client.connect(address)
    worker = raw_worker(
        client,
        task_queue,
        Recorder(),
        pollers=pollers,
        cache_size=cache_size,
        activity_slots=1000,
        sandboxed=sandboxed,
    )
    async with worker:
        Path(ready).write_text(str(os.getpid()))
        await stop.wait()


if __name__ == "__main__":
    import sys

    address, queue, cache, pollers, ready_file, sandbox = sys.argv[1:7]
    asyncio.run(_serve(address, queue, int(cache), int(pollers), ready_file, sandbox == "sandboxed"))
