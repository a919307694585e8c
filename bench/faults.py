"""`make faults`: the service under crashes and outages, each case on a fresh stack.

Every case starts the launcher in a temporary folder on free ports with Flowroute played by a fake on
loopback, creates a few hundred reminders due within a minute (notify window 0: each is sent at its
appointment; case m, in seven, so each starts deferred), does one harmful thing, then waits until every
reminder workflow has ended or the grace period is over, and counts:

    accepted    creates the API answered 200
    sent        accepted reminders whose reminder text reached the fake
    lost        accepted reminders whose text had not arrived by appointment + grace
    duplicated  reminders whose text arrived more than once (per workflow, so a reminder created twice by
                a retried request is counted under dup_creates instead)
    mismatches  accepted reminders whose workflow status (query, or the ReminderStatus search attribute
                once closed) differs from the status of their row in PostgreSQL

Each reminder has a contact number of its own, so the fake's `to` tells which reminder a text belongs to.

The fake behaves like the provider over a network: each send is answered after `--latency` seconds
(default 0.3, a real provider's round trip), as Flowroute or as Twilio (`--provider`). Cases that stop
texts (STOP, DELETE) also count texts whose claim began after the stop was acknowledged.

    python -m bench.faults [--provider flowroute|twilio] [--count 300] [--grace 120] [--cases a,b,...] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from devstack.embedded import EmbeddedPostgres
from devstack.harness import FakeProvider, Stack, flowroute_env, twilio_env
from settings import Settings
from stack.clients import connect_temporal
from workflows.activities import ARM_AHEAD_MAX
from workflows.models import workflow_id
from workflows.reminder import ReminderWorkflow
from workflows.search import CONTACT_NUMBER, REMINDER_STATUS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ORG = "Fault Bench Clinic"
REMINDER_HEAD = f"[{ORG}]\nYou have an appointment on "
# Appointments spread over this many seconds: a burst of sends, not one instant.
SPREAD = 5.0
# Creates must be done well before the first reminder is due, API restarts included.
LEAD = 30.0
STREAM_LEAD = 45.0
CREATE_CONCURRENCY = 16
PG_OUTAGE = 20.0
PG_LONG_OUTAGE = 90.0
BIG_BURST = 2000
BIG_LEAD = 75.0
# Past the longest arm-ahead (five minutes): every reminder is started deferred, a timer on the server.
DEFERRED_LEAD = 400.0
FAULTY_SENDS = 30
STOPS = 100
PROVIDER_503_FOR = 30.0
PROVIDER_429_FOR = 20.0
# Fills the fake's script for the length of an outage; cleared when the outage ends.
SCRIPT_FILL = 20_000
MIRROR_SETTLE = 30.0
REPORT_COLUMNS = (
    "accepted",
    "sent",
    "lost",
    "duplicated",
    "after_stop",
    "mismatches",
    "dup_creates",
    "late_max_s",
)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass
class Planned:
    number: str
    body: dict[str, Any]
    appointment: datetime


@dataclass
class Outcome:
    case: str
    title: str
    accepted: int = 0
    sent: int = 0
    lost: int = 0
    duplicated: int = 0
    after_stop: int = 0
    mismatches: int = 0
    dup_creates: int = 0
    late_max_s: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    why: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def on_target(self) -> bool:
        clean = self.lost == 0 and self.duplicated == 0 and self.after_stop == 0 and self.mismatches == 0
        return self.error is None and self.accepted > 0 and clean


async def until(check: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Polls state another process changes (no event to wait on); False when the time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _belongs_to(pid: int, data_dir: Path) -> bool:
    """Guards against pid reuse: only a process whose command line or environment names our folder is ours."""
    mark = str(data_dir).encode()
    for part in ("cmdline", "environ"):
        try:
            if mark in Path(f"/proc/{pid}/{part}").read_bytes():
                return True
        except OSError:
            pass
    return False


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


class Trial:
    """One case: a fresh stack, the fake, the reminders, and everything needed to count the outcome."""

    def __init__(
        self, key: str, title: str, root: Path, count: int, grace: float, provider: str, latency: float
    ) -> None:
        self.key = key
        self.outcome = Outcome(case=key, title=title)
        self.data_dir = root / key
        self.count = count
        self.grace = grace
        self.provider = provider
        self.fake = FakeProvider(latency=latency, twilio_token="faults-token")
        # Numbers told to stop (STOP or DELETE), and when the service acknowledged it.
        self.stopped: dict[str, float] = {}
        self.stack: Stack | None = None
        self.seen_pids: set[int] = set()
        self.accepted: dict[str, Planned] = {}
        self.plan: list[Planned] = []
        self._client: Client | None = None
        self.create_stats: Counter[str] = Counter()
        self.in_flight = 0
        self.paused: set[int] = set()

    @property
    def notes(self) -> dict[str, Any]:
        return self.outcome.notes

    # The stack

    def env(self) -> dict[str, str]:
        # Unpaced: the fake takes any rate, and a burst is what the faults are meant to hit.
        env = twilio_env if self.provider == "twilio" else flowroute_env
        return env(self.fake, SEND_RATE_PER_SECOND="0", ORG_NAME=ORG, QUIET_HOURS="off", PUBLIC_URL="auto")

    async def start(self) -> None:
        self.fake.start()
        self.stack = Stack(self.data_dir, self.env())
        await self.start_stack(self.stack)

    async def start_stack(self, stack: Stack) -> None:
        began = time.monotonic()
        try:
            await asyncio.to_thread(stack.start)
        finally:
            self.remember_pids()
        self.notes.setdefault("stack_start_s", round(time.monotonic() - began, 1))

    def remember_pids(self) -> None:
        if self.stack is not None and self.stack.proc is not None:
            self.seen_pids.add(self.stack.proc.pid)
        try:
            info = self.run_info()
        except (OSError, ValueError):
            info = {}
        self.seen_pids.update(int(p) for p in info.get("pids", {}).values())
        if info.get("temporal_pid"):
            self.seen_pids.add(int(info["temporal_pid"]))
        postmaster = _postmaster_pid(self.data_dir)
        if postmaster:
            self.seen_pids.add(postmaster)

    def run_info(self) -> dict[str, Any]:
        return json.loads((self.data_dir / "run.json").read_text())

    async def temporal(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(
                Settings(_env_file=None, temporal_address=self.run_info()["temporal"])  # type: ignore[call-arg]
            )
        return self._client

    async def wait_for_new_pid(self, name: str, old: int, timeout: float = 60) -> float:
        """Seconds until run.json names a new live process for `name`."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            try:
                info = self.run_info()
                pid = info["temporal_pid"] if name == "temporal" else info["pids"][name]
                if pid and int(pid) != old and _alive(int(pid)):
                    self.remember_pids()
                    return round(time.monotonic() - began, 1)
            except (OSError, ValueError, KeyError):
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the launcher did not start {name} again within {timeout:.0f} s")

    async def wait_for_api(self, timeout: float = 60) -> None:
        assert self.stack is not None
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                try:
                    if (await http.get(f"{self.stack.url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("the API did not answer again")

    async def close(self) -> None:
        """Stops what this case started, whatever state the case left it in."""
        for pid in self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if self.stack is not None:
            self.remember_pids()
            await asyncio.to_thread(self.stack.stop)
        # A launcher killed by the case leaves its children to the kernel's SIGTERM, and PostgreSQL to no one.
        for pid in sorted(self.seen_pids):
            if _alive(pid) and _belongs_to(pid, self.data_dir):
                os.kill(pid, signal.SIGKILL)
        postmaster = _postmaster_pid(self.data_dir)
        if postmaster and _alive(postmaster):
            await asyncio.to_thread(EmbeddedPostgres(self.data_dir / "pg").stop)
        self.fake.stop()

    # The reminders

    def make_plan(self, index: int, lead: float) -> None:
        base = datetime.now(UTC) + timedelta(seconds=lead)
        self.plan = [
            Planned(
                number=f"1{index:03d}{i:07d}",
                body={
                    "contact_number": f"1{index:03d}{i:07d}",
                    "appointment_time": iso(base + timedelta(seconds=SPREAD * i / self.count)),
                    "notify_window": 0,
                    "location": f"Room {i}",
                },
                appointment=(base + timedelta(seconds=SPREAD * i / self.count)).replace(microsecond=0),
            )
            for i in range(self.count)
        ]

    @property
    def first_due(self) -> datetime:
        return min(p.appointment for p in self.plan)

    @property
    def last_due(self) -> datetime:
        return max(p.appointment for p in self.plan)

    async def create_all(self, per_second: float | None = None, idempotency_keys: bool = False) -> None:
        """Creates every planned reminder the way a client would: a failed request is sent again, same body
        (and, with `idempotency_keys`, the same Idempotency-Key)."""
        assert self.stack is not None
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)
        give_up = self.first_due - timedelta(seconds=5)
        limits = httpx.Limits(max_connections=CREATE_CONCURRENCY)

        async with httpx.AsyncClient(base_url=self.stack.url, timeout=10, limits=limits) as http:

            async def create(planned: Planned) -> None:
                headers = (
                    {"Idempotency-Key": f"faults-{self.key}-{planned.number}"} if idempotency_keys else {}
                )
                async with gate:
                    attempts = 0
                    while datetime.now(UTC) < give_up:
                        attempts += 1
                        self.in_flight += 1
                        try:
                            response = await http.post("/reminder", json=planned.body, headers=headers)
                        except httpx.TransportError as err:
                            self.create_stats[f"error:{type(err).__name__}"] += 1
                            await asyncio.sleep(0.2)
                            continue
                        finally:
                            self.in_flight -= 1
                        if response.status_code == 200:
                            self.accepted[response.json()["reminder_id"]] = planned
                            if attempts > 1:
                                self.create_stats["accepted_after_retry"] += 1
                            return
                        self.create_stats[f"status:{response.status_code}"] += 1
                        if response.status_code < 500:
                            return
                        await asyncio.sleep(0.2)
                    self.create_stats["gave_up"] += 1

            tasks = []
            for planned in self.plan:
                tasks.append(asyncio.create_task(create(planned)))
                if per_second:
                    await asyncio.sleep(1 / per_second)
            await asyncio.gather(*tasks)
        self.notes["creates"] = dict(self.create_stats)

    def arrivals(self) -> dict[str, list[tuple[float, str]]]:
        """Reminder texts the fake accepted, by contact number: (when, the provider id it answered)."""
        found: dict[str, list[tuple[float, str]]] = {}
        with self.fake.lock:
            received = list(self.fake.received)
        for message in received:
            if message.text.startswith(REMINDER_HEAD):
                found.setdefault(message.to, []).append((message.at, message.id))
        return found

    def reminder_texts(self) -> int:
        return sum(len(v) for v in self.arrivals().values())

    async def wait_for_texts(self, fraction: float, timeout: float = 90) -> int:
        """Waits until that share of the accepted reminders has been sent: the middle of the burst."""
        target = max(1, int(len(self.accepted) * fraction))
        deadline = time.monotonic() + timeout
        while (got := self.reminder_texts()) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {got} of {target} texts arrived before the fault was due")
            await asyncio.sleep(0.02)
        return got

    async def sleep_until(self, when: datetime) -> None:
        await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))

    # Counting

    async def running_workflows(self) -> int | None:
        try:
            client = await self.temporal()
            return (
                await client.count_workflows(
                    "WorkflowType = 'ReminderWorkflow' AND ExecutionStatus = 'Running'"
                )
            ).count
        except Exception:  # noqa: BLE001 - a server being restarted answers nothing for a moment
            return None

    async def converge(self) -> None:
        """Until no reminder workflow runs (none can send any more) or the grace period is over."""
        deadline = self.last_due + timedelta(seconds=self.grace)
        while datetime.now(UTC) < deadline:
            if await self.running_workflows() == 0:
                break
            await asyncio.sleep(1)
        # An attempt that outlived its workflow's wait could still be on the wire.
        await asyncio.sleep(2)
        self.notes["still_running"] = await self.running_workflows()

    async def workflows_by_number(self) -> dict[str, list[str]]:
        client = await self.temporal()
        found: dict[str, list[str]] = {}
        async for execution in client.list_workflows("WorkflowType = 'ReminderWorkflow'"):
            number = execution.typed_search_attributes.get(CONTACT_NUMBER) or "?"
            found.setdefault(number, []).append(execution.id)
        return found

    async def workflow_status(self, reminder_id: str) -> str | None:
        client = await self.temporal()
        handle = client.get_workflow_handle_for(ReminderWorkflow.run, workflow_id(reminder_id))
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            return (await handle.query(ReminderWorkflow.status)).status.value
        return description.typed_search_attributes.get(REMINDER_STATUS)

    async def mirror_mismatches(self) -> dict[str, tuple[str | None, str | None]]:
        conn = await asyncpg.connect(self.run_info()["database_url"])
        try:
            rows = {
                r["reminder_id"]: r["status"]
                for r in await conn.fetch(
                    "SELECT reminder_id, CASE WHEN deleted_at IS NULL THEN status ELSE 'deleted' END AS status"
                    " FROM reminders"
                )
            }
        finally:
            await conn.close()
        gate = asyncio.Semaphore(20)

        async def one(reminder_id: str) -> tuple[str, str | None]:
            async with gate:
                try:
                    return reminder_id, await self.workflow_status(reminder_id)
                except Exception as err:  # noqa: BLE001 - an unreadable workflow is a mismatch, named
                    return reminder_id, f"error:{type(err).__name__}"

        statuses = dict(await asyncio.gather(*(one(r) for r in self.accepted)))
        return {
            r: (statuses[r], rows.get(r))
            for r in self.accepted
            if statuses[r] is None or statuses[r] != rows.get(r)
        }

    async def measure(self) -> None:
        out = self.outcome
        await self.converge()
        arrivals = self.arrivals()
        by_number = await self.workflows_by_number()
        out.accepted = len(self.accepted)
        lateness = []
        for planned in self.accepted.values():
            got = arrivals.get(planned.number, [])
            if not got:
                # A reminder told to stop (STOP, DELETE) is not lost for going unsent.
                out.lost += planned.number not in self.stopped
                continue
            out.sent += 1
            late = min(at for at, _ in got) - planned.appointment.timestamp()
            lateness.append(late)
            if late > self.grace:
                out.lost += 1
        out.late_max_s = round(max(lateness), 1) if lateness else None
        # Per contact number: one text per workflow is right; more than that is a duplicate send.
        numbers = {p.number for p in self.accepted.values()}
        out.duplicated = sum(
            1 for n in numbers if len(arrivals.get(n, [])) > max(1, len(by_number.get(n, [])))
        )
        out.dup_creates = sum(max(0, len(ids) - 1) for ids in by_number.values())

        conn = await asyncpg.connect(self.run_info()["database_url"])
        try:
            recorded = {
                r["provider_id"]
                for r in await conn.fetch(
                    "SELECT provider_id FROM messages WHERE direction = 'outbound' AND provider_id IS NOT NULL"
                )
            }
            rows = await conn.fetch("SELECT reminder_id, status, seq FROM reminders")
        finally:
            await conn.close()
        workflow_ids = {w for ids in by_number.values() for w in ids}
        self.notes["unrecorded_accepts"] = sum(
            1 for got in arrivals.values() for _, provider_id in got if provider_id not in recorded
        )
        self.notes["rows_without_workflow"] = sum(
            1 for r in rows if workflow_id(r["reminder_id"]) not in workflow_ids
        )
        self.notes["row_statuses"] = dict(Counter(r["status"] for r in rows))
        out.after_stop = await self.texted_after_stop()

        deadline = time.monotonic() + MIRROR_SETTLE
        while True:
            mismatched = await self.mirror_mismatches()
            if not mismatched or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        out.mismatches = len(mismatched)
        if mismatched:
            self.notes["mismatch_kinds"] = dict(Counter(f"{w}!={r}" for w, r in mismatched.values()))
        self.explain()

    async def texted_after_stop(self) -> int:
        """Reminder texts to a stopped number whose claim began after the service acknowledged the stop."""
        if not self.stopped:
            return 0
        conn = await asyncpg.connect(self.run_info()["database_url"])
        try:
            rows = await conn.fetch(
                "SELECT contact_number, extract(epoch FROM claimed_at) AS claimed FROM messages"
                " WHERE purpose = 'reminder' AND provider_id IS NOT NULL AND contact_number = ANY($1::text[])",
                list(self.stopped),
            )
        finally:
            await conn.close()
        late = [
            r["contact_number"] for r in rows if float(r["claimed"] or 0) > self.stopped[r["contact_number"]]
        ]
        self.notes["texts_to_stopped_numbers"] = len(rows)
        return len(late)

    def explain(self) -> None:
        out, notes = self.outcome, self.notes
        if out.duplicated:
            out.why.append(
                f"{out.duplicated} reminder(s) sent twice; {notes['unrecorded_accepts']} text(s) the provider"
                " accepted were never recorded in PostgreSQL: the send was cut off between the provider's"
                " 202 and complete_send, so the retried activity found no provider id and sent again"
                " (Flowroute's API takes no idempotency key)"
            )
        if out.after_stop:
            out.why.append(
                f"{out.after_stop} text(s) claimed after their number's STOP or DELETE was acknowledged"
            )
        if out.lost:
            out.why.append(
                f"{out.lost} accepted reminder(s) not sent within appointment + {self.grace:.0f} s;"
                f" {notes.get('still_running')} workflow(s) still running, row statuses {notes['row_statuses']}"
            )
        if out.mismatches:
            out.why.append(f"{out.mismatches} mirror mismatch(es) (workflow!=row): {notes['mismatch_kinds']}")
        if out.dup_creates:
            out.why.append(
                f"{out.dup_creates} reminder(s) created twice by a client retrying, without an Idempotency-Key,"
                " a request whose answer the dying API never sent; each such reminder's text arrived once per"
                " workflow, so these are not duplicate sends"
            )
        if notes.get("rows_without_workflow"):
            out.why.append(
                f"{notes['rows_without_workflow']} row(s) in PostgreSQL without a workflow: the API died"
                " between its insert and the workflow start (the worker's reconciler removes such rows when over"
                " 5 minutes old, on its next pass: after this case has ended)"
            )


# The cases


async def worker_kill(t: Trial) -> None:
    await t.create_all()
    t.notes["texts_before_kill"] = await t.wait_for_texts(1 / 3)
    pid = int(t.run_info()["pids"]["worker"])
    os.kill(pid, signal.SIGKILL)
    t.notes["worker_restart_s"] = await t.wait_for_new_pid("worker", pid)


async def api_kill(t: Trial, idempotency_keys: bool = False) -> None:
    # Spread over about ten seconds so the kill lands in the middle of the stream.
    creating = asyncio.create_task(t.create_all(per_second=t.count / 10, idempotency_keys=idempotency_keys))
    try:
        await until(lambda: len(t.accepted) >= t.count // 3 or creating.done(), timeout=60)
        # Preferably with requests on the wire, the ones whose answers a dying API never sends.
        await until(lambda: t.in_flight >= 2, timeout=2, interval=0.001)
        pid = int(t.run_info()["pids"]["api"])
        t.notes["accepted_before_kill"] = len(t.accepted)
        t.notes["requests_in_flight_at_kill"] = t.in_flight
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        await t.wait_for_new_pid("api", pid)
        await t.wait_for_api()
        t.notes["api_down_s"] = round(time.monotonic() - killed, 1)
    finally:
        await creating


async def api_kill_with_keys(t: Trial) -> None:
    await api_kill(t, idempotency_keys=True)


async def postgres_stop(t: Trial, outage: float = PG_OUTAGE) -> None:
    assert t.stack is not None and t.stack.proc is not None
    launcher = t.stack.proc.pid
    await t.create_all()
    t.notes["texts_before_stop"] = await t.wait_for_texts(1 / 3)
    postgres = EmbeddedPostgres(t.data_dir / "pg")
    # The launcher starts a stopped PostgreSQL again within a second; paused, it lets the outage last, as
    # one it cannot cure would (a full disk, a managed database down). Worker and API run on.
    os.kill(launcher, signal.SIGSTOP)
    t.paused.add(launcher)
    try:
        began = time.monotonic()
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(outage)
        t.notes["texts_during_outage"] = t.reminder_texts() - t.notes["texts_before_stop"]
        await asyncio.to_thread(postgres.start)
        t.notes["postgres_down_s"] = round(time.monotonic() - began, 1)
    finally:
        os.kill(launcher, signal.SIGCONT)
        t.paused.discard(launcher)


async def temporal_kill(t: Trial) -> None:
    await t.create_all()
    # Just before the first is due, so the restart overlaps the moment the timers fire.
    await t.sleep_until(t.first_due - timedelta(seconds=1))
    t.notes["texts_before_kill"] = t.reminder_texts()
    pid = int(t.run_info()["temporal_pid"])
    os.kill(pid, signal.SIGKILL)
    t.notes["temporal_restart_s"] = await t.wait_for_new_pid("temporal", pid)


async def deferred_kills(t: Trial) -> None:
    """Reminders started deferred: the server SIGKILLed while they wait on its timers alone, then the worker
    SIGKILLed while they wake and arm, one to five minutes before they are due."""
    await t.create_all()
    # Before the earliest wakes, so every one is on the server's timer alone.
    await t.sleep_until(t.first_due - ARM_AHEAD_MAX - timedelta(seconds=40))
    pid = int(t.run_info()["temporal_pid"])
    os.kill(pid, signal.SIGKILL)
    t.notes["temporal_restart_s"] = await t.wait_for_new_pid("temporal", pid)
    await t.sleep_until(t.first_due - timedelta(seconds=150))
    pid = int(t.run_info()["pids"]["worker"])
    os.kill(pid, signal.SIGKILL)
    t.notes["worker_restart_s"] = await t.wait_for_new_pid("worker", pid)


def _script(fake: FakeProvider, status: int | None) -> int:
    """Makes the fake answer `status` to every send until changed; answers how many it refused before."""
    with fake.lock:
        left = len(fake.script)
        fake.script[:] = [status] * SCRIPT_FILL if status is not None else []
    return left


async def provider_errors(t: Trial) -> None:
    await t.create_all()
    await t.sleep_until(t.first_due - timedelta(seconds=1))
    _script(t.fake, 503)
    await asyncio.sleep(PROVIDER_503_FOR)
    t.notes["answered_503"] = SCRIPT_FILL - _script(t.fake, 429)
    await asyncio.sleep(PROVIDER_429_FOR)
    t.notes["answered_429"] = SCRIPT_FILL - _script(t.fake, None)
    t.notes["texts_during_errors"] = t.reminder_texts()


async def power_cut(t: Trial) -> None:
    assert t.stack is not None
    await t.create_all()
    t.notes["texts_before_cut"] = await t.wait_for_texts(1 / 3)
    info = t.run_info()
    postmaster = _postmaster_pid(t.data_dir)
    victims = [int(p) for p in info["pids"].values()] + [int(info["temporal_pid"])]
    if postmaster:
        # The backends too: a power cut takes them with the postmaster, and one left behind holds its memory.
        victims += [postmaster, *_children_of(postmaster)]
    # Children first: once the launcher is gone the kernel would SIGTERM them, a gentler death than intended.
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    launcher = t.stack.proc
    assert launcher is not None
    os.killpg(launcher.pid, signal.SIGKILL)
    await asyncio.to_thread(launcher.wait)
    await until(lambda: not any(_alive(p) for p in victims), timeout=10, interval=0.05)
    t.notes["texts_at_cut"] = t.reminder_texts()
    # Started again as an operator would: a new launcher on the same folder and ports.
    again = Stack(t.data_dir, {})
    again.env = dict(t.stack.env)
    again.api_port = t.stack.api_port
    t.stack = again
    t._client = None
    began = time.monotonic()
    await t.start_stack(again)
    t.notes["restart_s"] = round(time.monotonic() - began, 1)


async def big_burst(t: Trial) -> None:
    await t.create_all()
    t.notes["texts_by_due"] = await t.wait_for_texts(1.0, timeout=BIG_LEAD + 120)


def _fault_mid_burst(attribute: str) -> Callable[[Trial], Awaitable[None]]:
    async def run(t: Trial) -> None:
        await t.create_all()
        await t.wait_for_texts(1 / 3)
        with t.fake.lock:
            setattr(t.fake, attribute, FAULTY_SENDS)
        t.notes[attribute] = FAULTY_SENDS

    return run


async def postgres_long_stop(t: Trial) -> None:
    await postgres_stop(t, PG_LONG_OUTAGE)


async def _stop_just_before_due(
    t: Trial, stop: Callable[[httpx.AsyncClient, str, Planned], Awaitable[None]]
) -> None:
    """Creates, then in the second before each chosen reminder is due tells the service to stop it."""
    assert t.stack is not None
    await t.create_all()
    chosen = sorted(t.accepted.items(), key=lambda item: item[1].appointment)[
        :: max(1, len(t.accepted) // STOPS)
    ]
    chosen = chosen[:STOPS]
    async with httpx.AsyncClient(base_url=t.stack.url, timeout=10) as http:

        async def one(reminder_id: str, planned: Planned) -> None:
            await t.sleep_until(planned.appointment - timedelta(seconds=1))
            await asyncio.sleep((hash(reminder_id) % 1000) / 1000)
            await stop(http, reminder_id, planned)
            t.stopped[planned.number] = time.time()

        await asyncio.gather(*(one(r, p) for r, p in chosen))
    t.notes["stopped"] = len(t.stopped)


async def stops_at_notify(t: Trial) -> None:
    async def stop(http: httpx.AsyncClient, reminder_id: str, planned: Planned) -> None:
        body = {"to": "18005550100", "from": planned.number, "body": "STOP", "id": f"stop-{reminder_id}"}
        response = await http.post("/", json=body)
        response.raise_for_status()

    await _stop_just_before_due(t, stop)


async def deletes_at_notify(t: Trial) -> None:
    async def stop(http: httpx.AsyncClient, reminder_id: str, planned: Planned) -> None:
        response = await http.delete(f"/reminder/{reminder_id}")
        response.raise_for_status()

    await _stop_just_before_due(t, stop)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    run: Callable[[Trial], Awaitable[None]]
    lead: float = LEAD
    count: int | None = None
    """Reminders for this case, whatever --count says."""


CASES = [
    Case("a", "worker SIGKILL mid-burst", worker_kill),
    Case("b", "API SIGKILL during creates", api_kill, lead=STREAM_LEAD),
    Case("b2", "API SIGKILL mid-creates, Idempotency-Key", api_kill_with_keys, lead=STREAM_LEAD),
    Case("c", f"PostgreSQL stopped {PG_OUTAGE:.0f} s mid-burst", postgres_stop),
    Case("d", "Temporal SIGKILL while waiting", temporal_kill),
    Case("e", f"provider 503 {PROVIDER_503_FOR:.0f} s, then 429 {PROVIDER_429_FOR:.0f} s", provider_errors),
    Case("f", "power cut mid-burst, restart", power_cut),
    Case("g", f"{BIG_BURST} due at once, unpaced", big_burst, lead=BIG_LEAD, count=BIG_BURST),
    Case("h", f"{FAULTY_SENDS} sends taken, connection cut", _fault_mid_burst("drop_after_accept")),
    Case("i", f"{FAULTY_SENDS} sends taken, answered 500", _fault_mid_burst("error_after_accept")),
    Case("j", f"PostgreSQL stopped {PG_LONG_OUTAGE:.0f} s mid-burst", postgres_long_stop),
    Case("k", f"{STOPS} STOPs in the second before notify", stops_at_notify),
    Case("l", f"{STOPS} DELETEs in the second before notify", deletes_at_notify),
    Case("m", "deferred: Temporal, then worker SIGKILL", deferred_kills, lead=DEFERRED_LEAD),
]


async def run_case(index: int, case: Case, root: Path, args: argparse.Namespace) -> Outcome:
    count = case.count or args.count
    trial = Trial(case.key, case.title, root, count, args.grace, args.provider, args.latency)
    began = time.monotonic()
    print(f"[{case.key}] {case.title}: starting a fresh stack", flush=True)
    try:
        await trial.start()
        trial.make_plan(index, case.lead)
        await case.run(trial)
        print(f"[{case.key}] fault done; waiting for the reminders to settle", flush=True)
        await trial.measure()
    except Exception as err:  # noqa: BLE001 - one broken case must not hide the others
        trial.outcome.error = f"{type(err).__name__}: {err}"
        print(f"[{case.key}] error: {trial.outcome.error}", flush=True)
        if trial.stack is not None:
            print(trial.stack.log_tail()[-1500:], flush=True)
    finally:
        await trial.close()
    trial.outcome.seconds = round(time.monotonic() - began, 1)
    if trial.outcome.error is None and not args.keep:
        shutil.rmtree(trial.data_dir, ignore_errors=True)
    else:
        print(f"[{case.key}] data kept in {trial.data_dir}", flush=True)
    print(f"[{case.key}] {row(trial.outcome)}", flush=True)
    return trial.outcome


def row(out: Outcome) -> str:
    cells = [f"{out.case:<3} {out.title:<40}"]
    for column in REPORT_COLUMNS:
        value = getattr(out, column)
        cells.append(f"{'-' if value is None else value:>10}")
    cells.append("  ok" if out.on_target else ("  ERROR" if out.error else "  MISSED"))
    return " ".join(cells)


def table(outcomes: list[Outcome]) -> str:
    header = " ".join([f"{'case':<44}", *(f"{c:>10}" for c in REPORT_COLUMNS)])
    lines = [header, "-" * len(header), *(row(o) for o in outcomes)]
    for out in outcomes:
        if out.error:
            lines.append(f"  {out.case}: {out.error}")
        for reason in out.why:
            lines.append(f"  {out.case}: {reason}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    wanted = {k.strip() for k in args.cases.split(",")}
    selected = [c for c in CASES if c.key in wanted]
    if not selected:
        raise SystemExit(f"no such case: {args.cases}; cases are {', '.join(c.key for c in CASES)}")
    root = Path(tempfile.mkdtemp(prefix="faults-"))
    started = datetime.now(UTC)
    outcomes: list[Outcome] = []
    try:
        for case in selected:
            outcomes.append(await run_case(CASES.index(case), case, root, args))
    finally:
        if not args.keep and not any(o.error for o in outcomes):
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        f"Faults ({args.provider}, {args.latency * 1000:.0f} ms provider latency):"
        f" {args.count} reminders per case, grace {args.grace:.0f} s"
    )
    print(table(outcomes), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"faults-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "count": args.count,
                "provider": args.provider,
                "latency_s": args.latency,
                "grace_s": args.grace,
                "cases": [asdict(o) | {"on_target": o.on_target} for o in outcomes],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {path.relative_to(ROOT)}", flush=True)
    return 0 if all(o.on_target for o in outcomes) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=300, help="reminders per case (default 300)")
    parser.add_argument(
        "--grace", type=float, default=120.0, help="seconds after its appointment a text may still arrive"
    )
    parser.add_argument(
        "--cases",
        default=",".join(c.key for c in CASES),
        help="which cases to run, e.g. a,b2,e (default all)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each case's data folder")
    parser.add_argument("--provider", choices=("flowroute", "twilio"), default="flowroute")
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the fake takes to answer a send")
    args = parser.parse_args()
    if not 1 <= args.count <= 999_999:
        parser.error("--count must be between 1 and 999999")

    async def guarded() -> int:
        # SIGTERM (a CI timeout) cancels like Ctrl-C does, so every case's finally stops its processes.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main_async(args)

    try:
        code = asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted: the running case's processes were stopped; no results written", flush=True)
        code = 130
    sys.stdout.flush()
    # The Temporal client's native runtime has crashed at interpreter exit on these machines
    # (STACK-NOTES); every process is stopped and every file written by now.
    os._exit(code)


if __name__ == "__main__":
    main()
