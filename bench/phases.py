"""The measurements. Each phase drives the running stack (and, for its baseline, raw Temporal on the same
server) and answers a dict of figures; nothing here starts or stops processes.

Every wait has a deadline, and none goes past the phase's end (`Ctx.phase_end`), so a slow service makes
a figure partial (reported as such) instead of making the run overrun its time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities.providers import sticky_sender
from api.schemas import ReminderRequest
from api.starts import search_attributes_of, summary_of
from bench import httpclient
from bench.load import Arrivals, Batch, Gate, run_batch
from bench.raw import RawBurst, RawSleep, RawSleepCarrying, Recorder
from bench.stats import max_in_window, middle_rate, summary
from devstack.harness import FakeProvider, Stack
from rules.segments import encoding_of
from workflows.activities import ARM_AHEAD_MAX, ARM_AHEAD_MIN, start_delay
from workflows.models import initial_state

# Planning a burst: the instant is set this far past the expected end of the creates, so a create rate
# that sags mid-way (the server flushing, a GC) still finishes in time.
LEAD_FACTOR = 1.5
LEAD_EXTRA_S = 20.0
ARM_AHEAD_MAX_S = ARM_AHEAD_MAX.total_seconds()
# However short the phase, a burst gets at least this long after its instant to arrive, and the replies
# this long for the webhooks and their confirmations.
MIN_DRAIN_S = 15.0
REPLY_WINDOW_S = 20.0
DAY = 86400.0
# The backlog's memory is read at these pending counts on the way to its full size, and at the end.
BACKLOG_STAGES = (5_000, 20_000)


@dataclass(frozen=True)
class Limits:
    """How long each kind of wait may last, at most."""

    creates_s: float
    """A batch of creates (or starts, or webhooks) stops issuing new requests after this."""
    settle_s: float
    """Waiting for a worker to work off its task queue backlog."""
    drain_s: float
    """After a burst's instant, for its messages to arrive."""
    replies_s: float
    """For the replies phase's reminders to go out, and again for the confirmations."""


QUICK_LIMITS = Limits(creates_s=30, settle_s=25, drain_s=40, replies_s=25)
FULL_LIMITS = Limits(creates_s=3600, settle_s=3600, drain_s=300, replies_s=300)


@dataclass
class PreparedBurst:
    """A burst's reminders, created and waiting for their instant."""

    contacts: list[str]
    instant: int
    created: Batch
    latency: float
    prefix: str
    """The contacts' common start, which the fake answers `latency` late."""
    after: int | None = None
    """The instant of the burst measured just before this one, when both were created in one lead."""


@dataclass
class Ctx:
    stack: Stack
    fake: FakeProvider
    http: httpclient.Client
    temporal: Client
    service_queue: str
    raw_queue: str
    recorder: Recorder
    sending_number: str
    concurrency: int
    limits: Limits
    say: Callable[[str], None]
    salt: str = field(default_factory=lambda: f"{random.randrange(1000):03d}")
    phase_end: float = math.inf
    arrivals: Arrivals = field(init=False)
    # Rates seen so far, used to plan how far ahead a burst's instant must be. A create is answered before
    # the worker has run the new workflow's first task; the setup rate counts to that point.
    service_create_rate: float = 100.0
    service_setup_rate: float = 50.0
    raw_start_rate: float = 300.0
    raw_setup_rate: float = 150.0
    # Workflow tasks a worker still had queued when the last settle gave up.
    setup_backlog: int = 0
    raw_setup_backlog: int = 0
    baseline: dict[str, Any] = field(default_factory=dict)
    # Opened for the backlog's fills while a burst's reminders wait to be armed (none: no fills running).
    gates: list[Gate] = field(default_factory=list)
    # Those of them open in a lead's quiet stretch before its arming (`burst_phase`'s rest_s).
    rest_gates: list[Gate] = field(default_factory=list)
    # A burst created in an earlier burst's lead, by its contacts' phase digit.
    prepared: dict[int, PreparedBurst] = field(default_factory=dict)
    # When the reminders of the burst being prepared begin to be armed: memory read after it is not at rest.
    arming_from: float = math.inf
    # Work of other stacks run once in a burst's lead, with the fills held, if the lead has `lead_work_s`
    # left before its quiet last stretch (the pacing stacks: light work, bound by the providers' rates).
    lead_work: Callable[[], Awaitable[None]] | None = None
    lead_work_s: float = 0.0
    # --pin-server: the replies' turns run with the Temporal server on a CPU of its own.
    pin_server: bool = False

    def __post_init__(self) -> None:
        self.arrivals = Arrivals(self.fake)

    def by(self, seconds: float) -> float:
        """The deadline `seconds` from now, but never past the phase's end."""
        return min(time.time() + seconds, self.phase_end)

    def contacts(self, phase: int, n: int) -> list[str]:
        """Distinct 11-digit numbers of the form 1XXXXXXXXXX, unique per phase and per run."""
        return [f"1{phase}{self.salt}{i:06d}" for i in range(n)]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def reminder_body(contact: str, appointment_epoch: float, notify_window: int) -> dict[str, Any]:
    return {
        "contact_number": contact,
        "appointment_time": iso(appointment_epoch),
        "notify_window": notify_window,
        "location": "Bench Street Clinic",
        "participant": "Dr Bench",
    }


async def warm_up(ctx: Ctx) -> None:
    """Opens fresh connections right before a timed batch: the first requests then pay for no TCP
    handshakes, and none is sent on a pooled connection the server closed after its keep-alive timeout
    (a fault of the bench rather than of the service)."""
    await run_batch(ctx.concurrency * 2, ctx.concurrency, lambda _: ctx.http.get("/healthz"))


async def create_reminders(ctx: Ctx, bodies: list[dict[str, Any]], deadline: float) -> Batch:
    await warm_up(ctx)

    async def create(i: int) -> str:
        response = await ctx.http.post("/reminder", json=bodies[i])
        if response.status_code != 200:
            raise RuntimeError(f"POST /reminder answered {response.status_code}: {response.text[:200]}")
        return str(response.json()["reminder_id"])

    return await run_batch(len(bodies), ctx.concurrency, create, deadline)


def created_only(items: list[str], batch: Batch) -> list[str]:
    return [item for item, result in zip(items, batch.results, strict=True) if result]


async def backlog_count(client: Client, queue: str) -> int:
    total = 0
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                task_queue_type=kind,
                report_stats=True,
            )
        )
        total += response.stats.approximate_backlog_count
    return total


async def settle(ctx: Ctx, queues: Iterable[str], deadline: float) -> dict[str, Any]:
    """Waits until the task queues have had no backlog for a second, so one measurement does not run on
    top of the tail of the previous one. Answers how long that took, whether it happened, and how many
    tasks were still waiting when it ended."""
    return await settle_queues(ctx.temporal, queues, deadline)


async def settle_queues(client: Client, queues: Iterable[str], deadline: float) -> dict[str, Any]:
    """`settle` on any server's client: the raw stack's too."""
    t0 = time.monotonic()
    quiet_since: float | None = None
    queues = list(queues)
    settled = False
    pending = -1
    failures = 0
    while time.time() < deadline:
        try:
            pending = sum([await backlog_count(client, q) for q in queues])
            failures = 0
        except Exception:  # noqa: BLE001 - a busy server may time out once; one without stats always does
            failures += 1
            await asyncio.sleep(min(3.0, max(deadline - time.time(), 0)))
            if failures >= 5:
                break
            continue
        now = time.monotonic()
        if pending == 0:
            quiet_since = quiet_since or now
            if now - quiet_since >= 1.0:
                settled = True
                break
        else:
            quiet_since = None
        await asyncio.sleep(0.25)
    return {"seconds": round(time.monotonic() - t0, 2), "settled": settled, "pending": max(pending, 0)}


def plan_instant(
    count: int,
    rate: float,
    setup_rate: float,
    factor: float = LEAD_FACTOR,
    extra: float = LEAD_EXTRA_S,
    backlog: int = 0,
) -> int:
    """A whole second far enough ahead that `count` creates at `rate` per second end before it, and that
    the worker has set them all up (run each new workflow's first task) by then. Reminders due together in
    real use were created long before; a burst that lands on workflows still being set up would measure
    the setup backlog, not the burst."""
    creates = count / max(rate, 10.0) * factor
    setup = (count + backlog) / max(setup_rate, 5.0) * 1.25 if setup_rate < math.inf else 0.0
    return math.ceil(time.time() + max(creates, setup) + extra)


def setup_rate(batch: Batch, caught_up: dict[str, Any]) -> float | None:
    """Workflows set up per second: from the first create until the worker had no backlog left."""
    if not batch.ok or not caught_up["settled"]:
        return None
    # The settle ends after a quiet second; that second is not setup work.
    return batch.ok / (batch.elapsed + max(caught_up["seconds"] - 1.0, 0.0))


def lateness_figures(
    instant: float, arrivals: dict[str, float], expected: int, waited_until: float
) -> dict[str, Any]:
    """Lateness of each arrival after the instant. Messages that had not arrived when the wait ended count
    as arriving then, so the percentiles they reach are lower bounds (`censored`)."""
    late = [at - instant for at in arrivals.values()]
    missing = expected - len(arrivals)
    cut = max(waited_until - instant, max(late, default=0.0))
    return {
        "expected": expected,
        "arrived": len(arrivals),
        "missing": missing,
        "censored": missing > 0,
        "waited_s": round(waited_until - instant, 2),
        "lateness_s": summary(late + [cut] * missing),
        "drain_s": round(cut if missing else max(late), 3) if (late or missing) else None,
    }


# baseline -------------------------------------------------------------------------------------------


async def baseline_phase(ctx: Ctx, burst_count: int) -> dict[str, Any]:
    """Raw Temporal's burst, before the service's: measured after it, it would share the server with the
    service worker's backlog, and a slow baseline flatters the ratio. (Creates take turns with raw starts
    inside the create phase.)"""
    out: dict[str, Any] = {}
    if burst_count:
        out["burst"] = await _raw_burst(ctx, burst_count)
    ctx.baseline = out
    return out


async def _raw_burst(ctx: Ctx, count: int) -> dict[str, Any]:
    instant = plan_instant(
        count, ctx.raw_start_rate, ctx.raw_setup_rate, factor=1.3, extra=5, backlog=ctx.raw_setup_backlog
    )
    ctx.say(f"baseline: {count} workflows due at {iso(instant)} ({instant - time.time():.0f} s from now)")
    keys = [f"{ctx.salt}-burst-{i}" for i in range(count)]

    async def start(i: int) -> bool:
        await ctx.temporal.start_workflow(
            RawBurst.run,
            args=[float(instant), keys[i]],
            id=f"bench-burst-{ctx.salt}-{i}",
            task_queue=ctx.raw_queue,
        )
        return True

    started = await run_batch(count, ctx.concurrency, start, instant - 1)
    keys = created_only(keys, started)
    ready = await settle(ctx, [ctx.raw_queue], instant - 0.5)
    until = max(min(instant + ctx.limits.drain_s, ctx.phase_end), instant + MIN_DRAIN_S)
    wanted = set(keys)
    # Polled like the fake's arrivals, so both sides of the comparison are observed the same way.
    while time.time() < until and not wanted <= ctx.recorder.arrivals.keys():  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    found = {k: ctx.recorder.arrivals[k] for k in keys if k in ctx.recorder.arrivals}
    raw = lateness_figures(instant, found, len(keys), min(time.time(), until))
    raw.update(
        instant=iso(instant),
        start=started.figures(),
        created_before_instant=started.ended_at < instant,
        set_up_before_instant=ready["settled"],
    )
    ctx.say(f"baseline: {len(found)}/{len(keys)} ran their activity, drain {raw['drain_s']} s")
    raw["settle"] = await settle(ctx, [ctx.raw_queue], ctx.by(ctx.limits.settle_s))
    return raw


# create ---------------------------------------------------------------------------------------------


# Creates and raw starts take turns, each turn once the previous one's workflow tasks are worked off: the
# server's start rate falls as its database grows, so whatever ran first would look faster. In this order
# (A B C C B A) a steady drift falls on every side alike. "raw_same" starts carry what a reminder's start
# carries (its input, four search attributes, a summary, its start deferred to its arm point): the server's
# share of a create. A turn leaves the server work that outlasts its task queue (visibility writes), so an
# uncounted turn goes first: no counted turn gets a server with nothing left over.
CREATE_TURNS = ("raw", "service", "raw_same", "raw_same", "service", "raw")


def pooled(batches: list[Batch]) -> Batch:
    """Several turns of one side as one batch: their operations over their summed time."""
    return Batch(
        count=sum(b.count for b in batches),
        concurrency=batches[0].concurrency,
        elapsed=sum(b.elapsed for b in batches),
        started_at=batches[0].started_at,
        latencies=[x for b in batches for x in b.latencies],
        errors=[x for b in batches for x in b.errors],
        results=[x for b in batches for x in b.results],
        attempted=sum(b.attempted for b in batches),
    )


async def _raw_starts(ctx: Ctx, bodies: list[dict[str, Any]], same_work: bool, tag: str) -> Batch:
    async def start(i: int) -> None:
        wf_id = f"bench-sleep-{ctx.salt}-{tag}-{i}"
        if not same_work:
            await ctx.temporal.start_workflow(RawSleep.run, 3 * DAY, id=wf_id, task_queue=ctx.raw_queue)
            return
        inp = ReminderRequest.read(bodies[i], quiet=None).to_input()
        await ctx.temporal.start_workflow(
            RawSleepCarrying.run,
            args=[3 * DAY, json.loads(json.dumps(dataclasses.asdict(inp), default=str))],
            id=wf_id,
            task_queue=ctx.raw_queue,
            search_attributes=search_attributes_of(inp),
            static_summary=summary_of(inp),
            start_delay=start_delay(initial_state(inp), datetime.now(UTC)),
        )

    return await run_batch(len(bodies), ctx.concurrency, start, ctx.by(ctx.limits.creates_s))


async def create_phase(ctx: Ctx, count: int) -> dict[str, Any]:
    # Appointments days away: these reminders only wait, so they cannot disturb the later phases.
    base = time.time() + 3 * DAY
    bodies = [reminder_body(c, base + i, 24) for i, c in enumerate(ctx.contacts(1, count))]
    turn_size = max(count // 2, 1)
    ctx.say(
        f"create: {count} POST /reminder and {count} raw starts of each kind, {ctx.concurrency} in flight,"
        f" taking turns of {turn_size}: {' '.join(CREATE_TURNS)}"
    )
    warm = await _raw_starts(ctx, bodies[: turn_size // 2], True, "warm")
    await settle(ctx, [ctx.raw_queue], ctx.by(ctx.limits.settle_s))
    ctx.say(f"create: uncounted first turn raw_same: {warm.ok} at {warm.rate:.0f}/s")
    turns: dict[str, list[Batch]] = {side: [] for side in CREATE_TURNS}
    settles: dict[str, list[dict[str, Any]]] = {side: [] for side in CREATE_TURNS}
    for n, side in enumerate(CREATE_TURNS):
        chunk = bodies[len(turns[side]) * turn_size :][:turn_size]
        if side == "service":
            batch = await create_reminders(ctx, chunk, ctx.by(ctx.limits.creates_s))
        else:
            batch = await _raw_starts(ctx, chunk, side == "raw_same", f"{side}{n}")
        queue = ctx.service_queue if side == "service" else ctx.raw_queue
        settled = await settle(ctx, [queue], ctx.by(ctx.limits.settle_s))
        turns[side].append(batch)
        settles[side].append(settled)
        ctx.say(
            f"create: turn {n + 1} {side}: {batch.ok} at {batch.rate:.0f}/s, set up after {settled['seconds']} s"
        )
    service, raw, same = (pooled(turns[s]) for s in ("service", "raw", "raw_same"))
    caught_up, raw_caught_up = (
        {
            "seconds": round(sum(s["seconds"] for s in settles[side]), 2),
            "settled": all(s["settled"] for s in settles[side]),
            "pending": settles[side][-1]["pending"],
        }
        for side in ("service", "raw")
    )
    if service.ok:
        ctx.service_create_rate = service.rate
    if raw.ok:
        ctx.raw_start_rate = raw.rate
    ctx.setup_backlog = caught_up["pending"]
    ctx.raw_setup_backlog = raw_caught_up["pending"]
    setup, raw_setup = setup_rate(service, caught_up), setup_rate(raw, raw_caught_up)
    ctx.service_setup_rate = setup or min(ctx.service_setup_rate, service.rate / 2)
    ctx.raw_setup_rate = raw_setup or min(ctx.raw_setup_rate, raw.rate / 2)
    ratio = service.rate / raw.rate if raw.rate else None
    same_ratio = service.rate / same.rate if same.rate else None
    ctx.say(f"create: service/raw {ratio or 0:.2f}, service/raw same work {same_ratio or 0:.2f}")
    return {
        "service": service.figures(),
        "raw": {**raw.figures(), "worker_caught_up": raw_caught_up},
        "raw_same_work": same.figures(),
        "ratio": round(ratio, 3) if ratio is not None else None,
        "ratio_same_work": round(same_ratio, 3) if same_ratio is not None else None,
        "turns": [
            {"side": side, "rate": round(b.rate, 1), "settle_s": st["seconds"]}
            for side in ("raw", "service", "raw_same")
            for b, st in zip(turns[side], settles[side], strict=True)
        ],
        "worker_caught_up": caught_up,
        "setup_per_s": {
            "service": round(setup, 1) if setup else None,
            "raw": round(raw_setup, 1) if raw_setup else None,
        },
    }


# burst ----------------------------------------------------------------------------------------------


async def burst_phase(
    ctx: Ctx,
    count: int,
    latency: float = 0.0,
    prefix: int | None = None,
    then: tuple[int, float] | None = None,
    rest_s: float = 0.0,
) -> dict[str, Any]:
    """`latency`: the fake answers each send that late, as a provider across a network does. `prefix`:
    the contacts' phase digit, when the burst is run a second time (with two workers). `then`: a second
    burst (count, latency) created in the same lead, due NEXT_BURST_GAP_S after this one, and measured by
    the next call for its latency. `rest_s`: the lead is this much longer before the first reminder is
    armed, a quiet stretch in which the backlog's fill passes the counts its memory is read at."""
    digit = prefix or burst_digit(latency)
    prepared = ctx.prepared.pop(digit, None)
    if prepared is None:
        prepared = await _prepare_bursts(ctx, count, latency, digit, then, rest_s)
    return await _measure_burst(ctx, prepared, count)


def burst_digit(latency: float) -> int:
    return 6 if latency else 2


# A burst created in another's lead is due this long after it: its reminders' arm points (at least
# ARM_AHEAD_MIN ahead) all fall before the first one's instant, and the first has this long to drain.
NEXT_BURST_GAP_S = 40
# The backlog's fills stop this long before a burst's instant: its last reminders are armed on a quiet
# machine, and the setup check before the instant is not held up by the fills.
FILLS_STOP_AHEAD_S = ARM_AHEAD_MIN.total_seconds() + 15


async def _prepare_bursts(
    ctx: Ctx, count: int, latency: float, digit: int, then: tuple[int, float] | None, rest_s: float
) -> PreparedBurst:
    # Created further ahead than the longest arm-ahead, as reminders due together are in real use: each one
    # is started deferred and has its first task at its own point in the minutes before the instant. A
    # backlog left from the creates before is set up first, so it lengthens the lead too. Within a
    # time-limited phase the lead is cut to leave the burst some time to drain; how many were deferred,
    # and whether the worker had set every reminder up by the instant, is reported.
    total = count + (then[0] if then else 0)
    planned = max(
        plan_instant(total, ctx.service_create_rate, ctx.service_setup_rate, backlog=ctx.setup_backlog),
        plan_instant(total, ctx.service_create_rate, math.inf, extra=ARM_AHEAD_MAX_S + LEAD_EXTRA_S + rest_s),
    )
    latest = ctx.phase_end - MIN_DRAIN_S
    earliest = plan_instant(total, ctx.service_create_rate, math.inf, factor=1.3, extra=3)
    instant = max(min(planned, math.floor(latest)) if latest < math.inf else planned, earliest)
    ctx.arming_from = instant - ARM_AHEAD_MAX_S
    first = await _create_burst(ctx, count, latency, digit, instant)
    if then is not None:
        second_digit = burst_digit(then[1])
        second = await _create_burst(ctx, then[0], then[1], second_digit, instant + NEXT_BURST_GAP_S)
        second.after = instant
        ctx.prepared[second_digit] = second
    if ctx.lead_work is not None and instant - FILLS_STOP_AHEAD_S - time.time() >= ctx.lead_work_s:
        work, ctx.lead_work = ctx.lead_work, None
        await work()
    if ctx.gates:
        # Nothing is measured until the arming's last minute: the backlog fills meanwhile. In a quiet
        # stretch before the arming, only the fill whose memory is read there runs.
        quiet = [g for g in ctx.gates if g in ctx.rest_gates] if rest_s else ctx.gates
        for gate in quiet:
            gate.open("burst lead, before the arming")
        await asyncio.sleep(max(ctx.arming_from - time.time(), 0))
        for gate in ctx.gates:
            gate.open("burst lead")
        await asyncio.sleep(max(instant - FILLS_STOP_AHEAD_S - time.time(), 0))
        await asyncio.gather(*(gate.close() for gate in ctx.gates))
    return first


async def _create_burst(ctx: Ctx, count: int, latency: float, digit: int, instant: int) -> PreparedBurst:
    contacts = ctx.contacts(digit, count)
    prefix = contacts[0][:-6] if contacts else ""
    if latency:
        ctx.fake.latency_by_prefix[prefix] = latency
    ctx.say(f"burst: {count} reminders due at {iso(instant)} ({instant - time.time():.0f} s from now)")
    # A create that lands after the instant would not be part of a burst due at one instant.
    created = await create_reminders(
        ctx, [reminder_body(c, instant + 3600, 1) for c in contacts], instant - 1
    )
    ctx.say(
        f"burst: created {created.ok} in {created.elapsed:.1f} s, {instant - created.ended_at:.1f} s before T"
        f" ({'every one' if instant - created.ended_at > ARM_AHEAD_MAX_S else 'not every one'} started"
        " deferred to its arm point)"
    )
    return PreparedBurst(created_only(contacts, created), instant, created, latency, prefix)


async def _measure_burst(ctx: Ctx, prepared: PreparedBurst, count: int) -> dict[str, Any]:
    contacts, instant, created = prepared.contacts, prepared.instant, prepared.created
    # Each create's own arm point decides it; the last create's margin bounds them all from below.
    deferred = instant - created.ended_at > ARM_AHEAD_MAX_S
    # The last of them have their first task ARM_AHEAD_MIN before the instant: set up is read after that.
    await asyncio.sleep(max(instant - ARM_AHEAD_MIN.total_seconds() + 1 - time.time(), 0))
    ready = await settle(ctx, [ctx.service_queue], instant - 0.5)
    ctx.say(f"burst: the worker {'had' if ready['settled'] else 'had NOT'} set them all up before T")
    until = max(min(instant + ctx.limits.drain_s, ctx.phase_end), instant + MIN_DRAIN_S)
    nxt = next((p.instant for p in ctx.prepared.values() if p.after == instant), None)
    if nxt is not None:
        # The next burst's instant ends this one's wait: what has not arrived by then is missing.
        until = min(until, nxt - 1)
    found = await ctx.arrivals.wait(contacts, until)
    ctx.fake.latency_by_prefix.pop(prepared.prefix, None)
    service = lateness_figures(instant, found, len(contacts), min(time.time(), until))
    # Texts per contact: each of these contacts has one reminder, so a second text is a duplicate.
    per_contact = ctx.fake.texts_per_contact()
    service["duplicates"] = sum(1 for c in contacts if per_contact.get(c, 0) > 1)
    service["provider_latency_s"] = prepared.latency
    service.update(
        instant=iso(instant),
        create=created.figures(),
        created_before_instant=created.ended_at < instant,
        margin_s=round(instant - created.ended_at, 2),
        all_deferred=deferred,
        set_up_before_instant=ready["settled"],
    )
    if prepared.after is not None:
        service["created_in_lead_of"] = iso(prepared.after)
    if nxt is not None:
        service["next_burst_at"] = iso(nxt)
    raw = ctx.baseline.get("burst")
    ratio = (
        service["drain_s"] / raw["drain_s"]
        if raw and service["drain_s"] is not None and raw["drain_s"]
        else None
    )
    if not ctx.prepared:
        ctx.arming_from = math.inf
    ctx.say(
        f"burst: {len(found)}/{len(contacts)} arrived, drain {service['drain_s']} s, service/raw {ratio or 0:.2f}"
    )
    return {
        "count": count,
        "service": service,
        "raw": raw,
        "drain_ratio": round(ratio, 3) if ratio is not None else None,
    }


# pacing ---------------------------------------------------------------------------------------------


def even_contacts(candidates: list[str], numbers: list[str], count: int) -> list[str]:
    """`count` of the candidates, as many for each sending number as the service's sticky choice allows:
    Twilio's limit is each number's, so a number given more of them would make the burst longer."""
    by_number: dict[str, list[str]] = {n: [] for n in numbers}
    for contact in candidates:
        by_number[sticky_sender(numbers, contact)].append(contact)
    picked: list[str] = []
    for round_ in zip(*by_number.values(), strict=False):
        picked.extend(round_)
    return picked[:count]


async def pacing_phase(
    ctx: Ctx, count: int, numbers: list[str], provider: str, limit: float
) -> dict[str, Any]:
    """`count` reminders due at once through `numbers`. Flowroute's `limit` is attempts a second for the
    whole account, Twilio's segments a second for each number."""
    contacts = even_contacts(ctx.contacts(4 if provider == "flowroute" else 7, count * 3), numbers, count)
    instant = plan_instant(count, ctx.service_create_rate, ctx.service_setup_rate)
    ctx.say(f"pacing ({provider}): {count} reminders due at {iso(instant)} through {len(numbers)} numbers")
    created = await create_reminders(
        ctx, [reminder_body(c, instant + 3600, 1) for c in contacts], instant - 1
    )
    contacts = created_only(contacts, created)
    capacity = limit if provider == "flowroute" else limit * len(numbers)
    until = min(instant + len(contacts) / capacity + ctx.limits.drain_s, ctx.phase_end)
    found = await ctx.arrivals.wait(contacts, until)
    accepted = ctx.arrivals.all_of(contacts)
    times = [at for at, _, _ in accepted]
    by_number: dict[str, list[float]] = {}
    for at, text, sender in accepted:
        # Twilio's limit counts segments (a text of two is two at its instant), Flowroute's requests.
        weight = encoding_of(text).segments if provider == "twilio" else 1
        by_number.setdefault(sender, []).extend([at] * weight)
    # Twilio takes a text over a number's rate into that number's queue: how long each waited there.
    mine = set(contacts)
    queued = [(m.sender, m.dispatched_at - m.at) for m in list(ctx.fake.received) if m.to in mine]
    segment_times = sorted(t for ts in by_number.values() for t in ts)
    sustained = middle_rate(segment_times if provider == "twilio" else times)
    end = max(times) if len(found) == len(contacts) and times else min(time.time(), until)
    ctx.say(
        f"pacing ({provider}): {len(found)}/{len(contacts)} arrived, {sustained or 0:.2f}/s sustained,"
        f" {ctx.fake.refused_429} x 429"
    )
    return {
        "provider": provider,
        "count": count,
        "sending_numbers": numbers,
        "limit": limit,
        "capacity_per_s": capacity,
        "instant": iso(instant),
        "create": created.figures(),
        "created_before_instant": created.ended_at < instant,
        "arrived": len(found),
        "missing": len(contacts) - len(found),
        "per_s_sustained": round(sustained, 2) if sustained else None,
        "drain_s": round(end - instant, 3) if times else None,
        "lateness_s": summary([at - instant for at in found.values()]),
        "refused_429": ctx.fake.refused_429,
        "attempts": ctx.fake.attempts,
        "max_in_any_1s_account": max_in_window(times),
        "per_number": {
            n: {
                "sent": len(ts),
                "max_in_any_1s": max_in_window(ts),
                "queue_wait_s": summary([w for sender, w in queued if sender == n]),
            }
            for n, ts in sorted(by_number.items())
        },
    }
