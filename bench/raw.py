"""The raw-Temporal baseline: the smallest workflows that do what a reminder does, with no service code.

They live in an importable module because the workflow sandbox re-imports the module a workflow is
defined in; the bench's own process runs their worker.
"""

from __future__ import annotations

import py_compile
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

ARRIVED_ACTIVITY = "bench_arrived"


@workflow.defn(name="BenchSleep")
class RawSleep:
    """What a freshly created reminder amounts to in Temporal: a workflow that waits on a timer."""

    @workflow.run
    async def run(self, seconds: float) -> None:
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


class Recorder:
    """Plays the fake provider's part for the baseline: when did each burst workflow's activity run."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}

    @activity.defn(name=ARRIVED_ACTIVITY)
    async def arrived(self, key: str) -> None:
        self.arrivals.setdefault(key, time.time())


def raw_worker(
    client: Client,
    task_queue: str,
    recorder: Recorder,
    *,
    pollers: int,
    cache_size: int,
    activity_slots: int,
) -> Worker:
    # Tuned like the service's worker (same pollers, cache and slots) so the comparison is of the code
    # each workflow runs, not of worker settings. Its module's bytecode is written first, as the service
    # worker does for its own (the sandbox imports the module again for every workflow).
    py_compile.compile(__file__)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RawSleep, RawBurst],
        activities=[recorder.arrived],
        max_cached_workflows=cache_size,
        max_concurrent_workflow_task_polls=pollers,
        max_concurrent_activities=activity_slots,
        graceful_shutdown_timeout=timedelta(seconds=2),
    )
