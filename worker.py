"""The Temporal worker: runs the reminder workflows and their activities. `python worker.py`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import uvloop
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.lanes import Lanes
from activities.providers import provider_from_settings
from activities.reminders import PROVIDER_CONNECTIONS, ReminderActivities
from activities.texts import texts_from_settings
from db.store import Store, create_pool
from events.dispatch import Dispatcher
from settings import Settings, get_settings
from stack.clients import connect_temporal, metrics_runtime
from stack.logs import setup_logging
from stack.reconcile import reconcile_forever
from stack.trim import trim_forever
from workflows.keyword import KeywordWorkflow
from workflows.outbound import OutboundWorkflow
from workflows.reminder import ReminderWorkflow

log = logging.getLogger("reminders.worker")

# Long polls are cut short on shutdown; activities still running get this long to finish.
GRACEFUL_SHUTDOWN = timedelta(seconds=5)


def compile_workflow_modules() -> None:
    """Writes the workflow modules' bytecode. The sandbox imports a workflow's module afresh for every
    reminder it sets up; without a .pyc (PYTHONDONTWRITEBYTECODE, a read-only tree) each of those imports
    compiled the source again, the largest item in a py-spy profile of a create burst. An installed
    package has its bytecode already; where it cannot be written, the worker runs as before."""
    import compileall

    import workflows

    try:
        compileall.compile_dir(Path(workflows.__file__).parent, quiet=1)
    except OSError as err:
        log.info("workflow bytecode not written (%s); sandbox imports compile the source", err)


def build_worker(settings: Settings, client: Client, activities: ReminderActivities) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[ReminderWorkflow, KeywordWorkflow, OutboundWorkflow],
        activities=activities.all(),
        max_cached_workflows=settings.worker_cache_size,
        max_concurrent_workflow_tasks=settings.worker_workflow_task_slots,
        max_concurrent_workflow_task_polls=min(
            settings.worker_workflow_pollers, settings.worker_workflow_task_slots
        ),
        # Sends and mirror writes of a burst arrive together: more pollers drain the activity queue faster.
        max_concurrent_activity_task_polls=10,
        max_concurrent_activities=settings.worker_activity_slots,
        # The sandbox re-imports the workflow module for every reminder it sets up, a guard against
        # nondeterministic code; the replay tests guard the same thing in CI.
        **({} if settings.worker_sandbox else {"workflow_runner": UnsandboxedWorkflowRunner()}),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )


async def run_worker(settings: Settings, stop: asyncio.Event, ready_file: Path | None = None) -> None:
    if not settings.database_url:
        raise SystemExit(
            "DATABASE_URL is not set: start the worker through the launcher, or point it at PostgreSQL"
        )
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            Lanes(PROVIDER_CONNECTIONS, timeout=httpx.Timeout(settings.provider_timeout))
        )
        pool = await create_pool(settings.database_url, min_size=1, max_size=settings.worker_db_pool_size)
        stack.push_async_callback(pool.close)
        store = Store(pool)
        await store.migrate()
        client = await connect_temporal(settings, runtime=metrics_runtime(settings))
        provider = provider_from_settings(settings, http)
        rate = settings.send_rate if provider.name != "console" else 0.0
        activities = ReminderActivities(
            store,
            provider,
            texts_from_settings(settings),
            rate,
            doubt_settle=settings.send_doubt_settle,
            quiet=settings.quiet,
            temporal=client,
        )
        # Events go out on their own connections: a slow receiver never holds up a text.
        event_http = await stack.enter_async_context(httpx.AsyncClient())
        events = Dispatcher(
            store,
            event_http,
            settings.event_receivers,
            settings.event_webhook_secret,
            settings.event_retention_days,
        )
        compile_workflow_modules()
        worker = build_worker(settings, client, activities)
        async with worker:
            log.info("worker polling task queue %s (provider %s)", settings.task_queue, settings.provider)
            if ready_file is not None:
                ready_file.write_text(str(os.getpid()))
            background = [asyncio.create_task(events.run(stop)), asyncio.create_task(trim_forever(stop))]
            if settings.reconcile_interval > 0:
                background.append(
                    asyncio.create_task(
                        reconcile_forever(
                            client,
                            store,
                            settings.reconcile_interval,
                            stop,
                            settings.reconcile_full_interval,
                        )
                    )
                )
            await stop.wait()
            log.info("worker shutting down")
            await asyncio.gather(*background)


def main() -> None:
    settings = get_settings()
    setup_logging(settings)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop, settings.worker_ready_file)

    # libuv's event loop: the activities' HTTP and PostgreSQL traffic costs less CPU on it.
    uvloop.run(_main())


if __name__ == "__main__":
    main()
