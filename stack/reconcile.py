"""Brings the PostgreSQL mirror back in line with Temporal, the source of truth.

`python -m stack.reconcile` runs it once over every reminder; the workers run it every RECONCILE_INTERVAL
seconds over what can have changed since the last pass, and over every reminder each
RECONCILE_FULL_INTERVAL, one worker at a time by a schedule kept in PostgreSQL. Workflows write their own
rows, with a sequence number so an old write never wins; this repairs what those writes cannot: a row
lost with a restored database, a workflow an operator terminated, a row left by an API that died between
writing it and starting the workflow.

A sleeping reminder (status scheduled) changes nothing until its send is armed, so the periodic pass
leaves it out of its listing, however recently it was made: its cost follows the reminders sent, answered
and closed since the last pass, not the reminders waiting. The reminders created since cost it only an
orphan check, a count of their workflows per batch of rows.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from db.store import DATABASE_ERRORS, Store, create_pool
from settings import get_settings
from stack.clients import connect_temporal
from stack.logs import setup_logging
from workflows.models import (
    WORKFLOW_ID_PREFIX,
    ReminderInput,
    ReminderState,
    Status,
    initial_state,
    workflow_id,
)
from workflows.reminder import ReminderWorkflow
from workflows.search import REMINDER_STATUS

log = logging.getLogger("reminders.reconcile")

# A row the API wrote whose workflow never started is removed only once it is this old, so a create in
# flight is never mistaken for one.
ORPHAN_AGE = timedelta(minutes=5)
QUERY_TIMEOUT = timedelta(seconds=10)
# A periodic pass reaches this far before the one before it began: the worker's clock against PostgreSQL's
# and the server's, and a row written while the last pass was reading.
OVERLAP = timedelta(minutes=1)
WORKFLOW_TYPE = "WorkflowType = 'ReminderWorkflow'"
# A row written this recently is left to the next pass: a send writes the row as it goes out, and its
# workflow's search attribute (and the listing, which the server indexes after) follows within seconds.
# Asked, such a reminder is replayed into the worker's cache if it was not there: a pass that started at
# a 5,000 burst's instant took 79 s, five of its queries timing out, where one over the same reminders at
# rest took 2 s.
SETTLING = timedelta(minutes=1)


@dataclass
class Report:
    checked: int = 0
    repaired: int = 0
    orphans_checked: int = 0
    orphans_removed: int = 0
    # Rows made since a periodic pass's start whose workflows it counted.
    rows_counted: int = 0

    def __str__(self) -> str:
        return (
            f"checked {self.checked}, repaired {self.repaired}, orphan rows removed {self.orphans_removed}"
            f" of {self.orphans_checked} looked up ({self.rows_counted} counted)"
        )


async def _state_of(client: Client, reminder_id: str, execution: WorkflowExecution) -> ReminderState | None:
    handle = client.get_workflow_handle_for(ReminderWorkflow.run, workflow_id(reminder_id))
    try:
        if execution.status == WorkflowExecutionStatus.RUNNING:
            # Its history is read only while its start is still deferred (or it was woken early).
            deferred = execution.execution_time is not None and execution.execution_time > datetime.now(UTC)
            unstarted = await _input_if_unstarted(client, handle) if deferred else None
            if unstarted is not None:
                return initial_state(unstarted)
            return await handle.query(ReminderWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
        return await handle.result()
    except Exception as err:  # noqa: BLE001 - a reminder that cannot be read is reported, not fatal
        log.info("cannot read reminder %s: %s", reminder_id, err)
        return None


async def _input_if_unstarted(client: Client, handle: WorkflowHandle[Any, Any]) -> ReminderInput | None:
    """The input of a reminder whose start is deferred: it has run no task, so no query would answer (each
    would wait out its timeout), and its state is still the one its input makes. Such a history holds one
    event, its start; one page of two events tells."""
    events = []
    async for event in handle.fetch_history_events(page_size=2):
        events.append(event)
        if len(events) > 1:
            return None
    if len(events) != 1 or not events[0].HasField("workflow_execution_started_event_attributes"):
        return None
    payloads = events[0].workflow_execution_started_event_attributes.input.payloads
    (inp,) = await client.data_converter.decode(payloads, [ReminderInput])
    return inp if isinstance(inp, ReminderInput) else None


# Executions read from the list before their rows are looked up together, in one statement; also the
# listing's page, the server's default largest. Each page is a query of its own costing the dev server
# about as much as a count of every workflow: 13,000 listed at 100,000 pending took 8.9 s in pages of
# 500, 6.2 s in pages of 1,000.
BATCH = 1000


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def listing(now: datetime, changed_since: datetime | None, closed_since: timedelta) -> str:
    """The workflows a pass compares with their rows. Every open one, and those closed within
    `closed_since`; or only those that can have moved since `changed_since`: closed since, or past scheduled
    (sent, answered). One scheduled, whether made since or rescheduled back, is left to the full pass: the
    API wrote its row before starting it and its workflow writes its own, so only a restored database can
    leave that row behind. (Listing those made since cost the dev server half a millisecond or more each: a
    pass while 100,000 were being created listed the ten minutes' worth of them, every five minutes.)"""
    if changed_since is None:
        return (
            f"{WORKFLOW_TYPE} AND (ExecutionStatus = 'Running' OR CloseTime > '{_iso(now - closed_since)}')"
        )
    since = _iso(changed_since)
    return (
        f"{WORKFLOW_TYPE} AND (CloseTime > '{since}' OR (ExecutionStatus = 'Running'"
        " AND ReminderStatus != 'scheduled'))"
    )


# Rows whose workflows are counted together: one query naming each of them. On the dev server a count
# costs about the same whatever it names (at 115,000 workflows: 107 ms for one id, 150 ms for 200, 230 ms
# for 5,000), so the batches are large; listing the same rows cost 1 ms each.
COUNT_BATCH = 2000
_PLAIN_ID = re.compile(r"^[0-9a-zA-Z-]+$")


def _running_among(ids: list[str]) -> str:
    quoted = ", ".join(f"'{workflow_id(reminder_id)}'" for reminder_id in ids)
    return f"ExecutionStatus = 'Running' AND WorkflowId IN ({quoted})"


async def without_running_workflow(client: Client, candidates: set[str]) -> set[str]:
    """Of rows no workflow has written, those the server shows no running workflow for: one count per
    batch (a running workflow is one run of its id, so a full count means every row has one), and the
    batch's listing only where the count falls short. What is left is looked up one by one."""
    plain = sorted(r for r in candidates if _PLAIN_ID.match(r))
    left = candidates.difference(plain)
    for i in range(0, len(plain), COUNT_BATCH):
        batch = plain[i : i + COUNT_BATCH]
        query = _running_among(batch)
        if (await client.count_workflows(query)).count >= len(batch):
            continue
        listed = {e.id.removeprefix(WORKFLOW_ID_PREFIX) async for e in client.list_workflows(query)}
        left.update(r for r in batch if r not in listed)
    return left


async def reconcile(
    client: Client,
    store: Store,
    *,
    changed_since: datetime | None = None,
    closed_since: timedelta = timedelta(days=2),
) -> Report:
    """Every reminder (`changed_since` None), or those that can have changed since then (see `listing`)."""
    report = Report()
    query = listing(datetime.now(UTC), changed_since, closed_since)
    # A sleeping reminder's row keeps seq 0 until its workflow first writes it, days later: a row is an
    # orphan candidate only when the server does not show its workflow. Read before the listing, so every
    # candidate is already ORPHAN_AGE old when it starts; each left over costs the server one describe. The
    # pass over every reminder finds their workflows in its listing; a periodic pass takes only rows made
    # since `changed_since`, and counts their workflows (`without_running_workflow`).
    candidates = await store.unstarted_rows(older_than=ORPHAN_AGE, created_after=changed_since)
    full = changed_since is None
    batch: list[WorkflowExecution] = []
    async for execution in client.list_workflows(query, page_size=BATCH):
        batch.append(execution)
        if candidates and full:
            candidates.discard(execution.id.removeprefix(WORKFLOW_ID_PREFIX))
        if len(batch) >= BATCH:
            await _reconcile_batch(client, store, batch, report)
            batch = []
    await _reconcile_batch(client, store, batch, report)
    if candidates and not full:
        report.rows_counted = len(candidates)
        candidates = await without_running_workflow(client, candidates)
    for reminder_id in candidates:
        report.orphans_checked += 1
        try:
            await client.get_workflow_handle(workflow_id(reminder_id)).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                await store.forget(reminder_id)
                report.orphans_removed += 1
    return report


async def _reconcile_batch(
    client: Client, store: Store, executions: list[WorkflowExecution], report: Report
) -> None:
    ids = [e.id.removeprefix(WORKFLOW_ID_PREFIX) for e in executions]
    rows = await store.rows_of(ids, SETTLING) if ids else {}
    for reminder_id, execution in zip(ids, executions, strict=True):
        report.checked += 1
        row = rows.get(reminder_id)
        if row is not None and row["deleted_at"] is not None:
            continue
        seen_status = execution.typed_search_attributes.get(REMINDER_STATUS)
        if row is not None and (row["status"] == seen_status or row["settling"]):
            continue
        if execution.status == WorkflowExecutionStatus.CANCELED:
            await store.mark_deleted(reminder_id)
            report.repaired += 1
            continue
        if execution.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
            state = await _state_of(client, reminder_id, execution)
            if state is not None and await store.upsert_state(state):
                report.repaired += 1
            continue
        # Terminated, failed or timed out: the workflow said its last word through its search attribute.
        if row is not None and seen_status and row["status"] != seen_status:
            known = {s.value for s in Status}
            await store.set_status(reminder_id, seen_status if seen_status in known else Status.FAILED.value)
            report.repaired += 1


# A pass that began less than this share of the interval ago is another worker's: this one waits its turn.
RECENT_SHARE = 0.9


def plan_pass(
    now: datetime,
    last_start: datetime | None,
    last_full: datetime | None,
    interval: float,
    full_interval: float,
) -> tuple[bool, datetime | None] | None:
    """The pass due now, as (full, changed_since), or None when a worker began one within the interval.
    Full when none has been made, and each `full_interval`; otherwise over what changed since the last good
    pass began, reaching back over the orphan age and an overlap."""
    if last_start is not None and now - last_start < timedelta(seconds=interval * RECENT_SHARE):
        return None
    if last_start is None or last_full is None or (now - last_full).total_seconds() >= full_interval:
        return True, None
    return False, last_start - ORPHAN_AGE - OVERLAP


async def _unless_stopped(pass_: Coroutine[Any, Any, Report], stop: asyncio.Event) -> Report | None:
    """The pass's report, or None once `stop` is set first: the pass is cancelled (it records nothing, and
    the next one covers its ground), so a worker told to stop does not wait out a pass of a minute."""
    task = asyncio.ensure_future(pass_)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task.result() if not task.cancelled() else None


async def reconcile_forever(
    client: Client, store: Store, interval: float, stop: asyncio.Event, full_interval: float = 86400.0
) -> None:
    """Every `interval` seconds a pass over what changed since the last good one began, and one each
    `full_interval` over every reminder: one pass across all the workers, scheduled in PostgreSQL, so a
    second worker adds no second pass."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
            return
        except TimeoutError:
            pass
        try:
            async with store.reconcile_turn() as turn:
                if turn is None:
                    log.debug("reconcile: another worker holds the schedule")
                    continue
                plan = plan_pass(turn.now, turn.last_start, turn.last_full, interval, full_interval)
                if plan is None:
                    log.debug("reconcile: a pass began within the interval")
                    continue
                full, changed_since = plan
                began = time.monotonic()
                try:
                    report = await _unless_stopped(
                        reconcile(client, store, changed_since=changed_since), stop
                    )
                except Exception:  # noqa: BLE001 - try again next round; the reminders are unaffected
                    log.exception("reconcile round failed")
                    continue
                if report is None:
                    log.info("reconcile pass left unfinished: the worker is stopping")
                    return
                turn.done(full)
                log.info(
                    "mirror reconciled (%s) in %.1f s: %s",
                    "every reminder" if changed_since is None else f"changed since {_iso(changed_since)}",
                    time.monotonic() - began,
                    report,
                )
        except DATABASE_ERRORS as err:
            log.warning("reconcile round waits on PostgreSQL: %s", err)


async def _main() -> None:
    settings = get_settings()
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set")
    client = await connect_temporal(settings)
    pool = await create_pool(settings.database_url)
    try:
        report = await reconcile(client, Store(pool))
        print(report)
    finally:
        await pool.close()


def main() -> None:
    setup_logging(get_settings())
    asyncio.run(_main())


if __name__ == "__main__":
    main()
