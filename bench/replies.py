"""The replies phase: 'Yes' texts through the webhook to reminders awaiting an answer, each answered with
a confirmation text, beside raw Temporal's reply (a signal, an upsert and a local activity) on the same
server. The two sides take turns, as the creates do."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.load import Batch, run_batch
from bench.phases import (
    REPLY_WINDOW_S,
    Ctx,
    create_reminders,
    created_only,
    pooled,
    reminder_body,
    settle,
    warm_up,
)
from bench.raw import RawReply
from bench.stats import summary
from bench.system import cpu_seconds, cpu_spent, quiet_window, server_on_own_core

# Before the replies' reminders are set up, the workers must have been this idle (a share of a core) over
# a window of this many seconds, waiting at most QUIET_WAIT_S.
QUIET_SHARE = 0.05
QUIET_WINDOW_S = 2.0
QUIET_WAIT_S = 120.0

# Raw first and last: the server slows as a phase's open workflows pile up (a second round of the same raw
# replies on one server ran at 106/s after 132/s), so neither side gets only the fresher server.
REPLY_TURNS = ("raw", "service", "service", "raw")


@dataclass
class Turn:
    """One side's replies in one turn: answered when, from the first request on."""

    first: float
    sent: Batch
    answers: list[float]
    expected: int
    # CPU seconds each part spent in the turn: the stack's processes, the bench's own (the raw worker, the
    # fake provider, the clients) and the machine's busy time; empty if they could not be read.
    cpu_s: dict[str, float]
    until: float
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def complete(self) -> bool:
        return len(self.answers) == self.expected

    @property
    def end(self) -> float:
        """The last answer; cut short, the end of the wait: the rate is then a lower bound, not a rate over
        the lucky ones."""
        return max(self.answers) if self.complete and self.answers else min(time.time(), self.until)


def pooled_turns(turns: list[Turn]) -> dict[str, Any]:
    """A side's turns as one figure: its answers over the summed time of its turns, and the server's CPU
    per answer."""
    answered = sum(len(t.answers) for t in turns)
    seconds = sum(t.end - t.first for t in turns)
    # Per reply, by part: where a side's CPU goes, and so what it takes from the server's cores.
    parts = set.intersection(*(set(t.cpu_s) for t in turns)) if turns else set()
    per_reply = (
        {p: round(1000 * sum(t.cpu_s[p] for t in turns) / answered, 2) for p in sorted(parts)}
        if answered
        else {}
    )
    rate = answered / seconds if seconds > 0 and answered else None
    return {
        "answered": answered,
        "complete": all(t.complete for t in turns),
        "latency_s": summary([a - t.first for t in turns for a in t.answers]),
        "replies_per_s": round(rate, 1) if rate else None,
        "seconds": round(seconds, 3),
        "server_cpu_ms_per_reply": per_reply.get("temporal"),
        "cpu_ms_per_reply": per_reply,
        "turns": [round(len(t.answers) / (t.end - t.first), 1) if t.end > t.first else None for t in turns],
    }


async def workers_quiet(ctx: Ctx, deadline: float) -> dict[str, Any]:
    """Waits until the service's workers have been nearly idle for a window. The task queue's backlog does
    not show the workflow tasks a burst leaves on the workers' sticky queues (after 6,000 sends, each one's
    next task replays it against a cache of 1,000, for about a minute), and replies set up on that tail
    share the cache with it: half of them then missed it."""

    def used() -> float:
        return sum(v for k, v in cpu_seconds(ctx.stack).items() if k.startswith("worker"))

    waited, quiet = await quiet_window(used, QUIET_SHARE, QUIET_WINDOW_S, deadline)
    return {"seconds": round(waited, 1), "quiet": quiet}


async def _raw_replies_start(ctx: Ctx, count: int) -> list[str]:
    """`count` raw waiting workflows, started before the service's reminders so both are set up when the
    replies are measured."""
    ids = [f"bench-reply-{ctx.salt}-{i}" for i in range(count)]

    async def start(i: int) -> str:
        await ctx.temporal.start_workflow(RawReply.run, ids[i], id=ids[i], task_queue=ctx.raw_queue)
        return ids[i]

    started = await run_batch(count, ctx.concurrency, start, ctx.by(ctx.limits.creates_s))
    return created_only(ids, started)


async def _raw_turn(ctx: Ctx, ids: list[str]) -> Turn:
    """Raw Temporal's reply: a signal from the client to a waiting workflow, which upserts one search
    attribute and answers with a local activity; counted, like the service's, to the last answer."""
    first, before = time.time(), cpu_seconds(ctx.stack)

    async def signal(i: int) -> bool:
        await ctx.temporal.get_workflow_handle(ids[i]).signal(RawReply.reply, "Yes")
        return True

    signals = await run_batch(len(ids), ctx.concurrency, signal, ctx.by(ctx.limits.creates_s))
    until = ctx.by(ctx.limits.replies_s)
    wanted = set(created_only(ids, signals))
    while time.time() < until and not wanted <= ctx.recorder.answers.keys():  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    answers = [ctx.recorder.answers[k] for k in wanted if k in ctx.recorder.answers]
    return Turn(first, signals, answers, len(ids), cpu_spent(before, cpu_seconds(ctx.stack)), until)


async def _service_turn(ctx: Ctx, repliers: list[str], tag: str) -> Turn:
    """The service's reply: a 'Yes' through Flowroute's webhook, counted to the confirmation text."""

    async def reply(i: int) -> str:
        body = {
            "data": {
                "id": f"mdr2-bench{ctx.salt}{tag}{i:08d}",
                "type": "message",
                "attributes": {"to": ctx.sending_number, "from": repliers[i], "body": "Yes"},
            }
        }
        response = await ctx.http.post("/webhooks/flowroute", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:200]}")
        return str(response.json().get("message"))

    await warm_up(ctx)
    first, before = time.time(), cpu_seconds(ctx.stack)
    webhooks = await run_batch(len(repliers), ctx.concurrency, reply, ctx.by(ctx.limits.creates_s))
    routed = [c for c, o in zip(repliers, webhooks.results, strict=True) if o == "routed"]
    until = ctx.by(ctx.limits.replies_s)
    confirmed = await ctx.arrivals.wait(routed, until, match=lambda t: "confirmed" in t)
    answers = list(confirmed.values())
    outcomes = Counter(str(o) for o in webhooks.results[: webhooks.attempted])
    return Turn(
        first, webhooks, answers, len(repliers), cpu_spent(before, cpu_seconds(ctx.stack)), until, outcomes
    )


async def _ids_with_status(ctx: Ctx, status: str) -> set[str]:
    """Every reminder id the API lists with this status."""
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"status": status, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        response = await ctx.http.get("/reminder", params=params)
        response.raise_for_status()
        page = response.json()
        ids.update(r["reminder_id"] for r in page["reminders"])
        cursor = page.get("next_cursor")
        if not cursor:
            return ids


def halves(items: list[str]) -> list[list[str]]:
    middle = math.ceil(len(items) / 2)
    return [items[:middle], items[middle:]]


async def replies_phase(ctx: Ctx, count: int, prefix: int = 3, raw: bool = True) -> dict[str, Any]:
    """`raw`: measure raw Temporal's reply beside the service's, same server, same phase, taking turns.
    `prefix`: the contacts' phase digit, when the replies are run a second time (with two workers)."""
    contacts = ctx.contacts(prefix, count)
    # Start on an idle worker, not on the tail of the burst before.
    await settle(ctx, [ctx.service_queue], ctx.by(10))
    quiet = await workers_quiet(ctx, ctx.by(min(ctx.limits.settle_s, QUIET_WAIT_S)))
    ctx.say(f"replies: workers quiet after {quiet['seconds']} s" + ("" if quiet["quiet"] else " (not quiet)"))
    raw_ids = await _raw_replies_start(ctx, count) if raw else []
    # The notify time (3 h before) is already past and the appointment (2 h ahead) is not: sent at once.
    appointment = math.ceil(time.time() + 2 * 3600)
    ctx.say(f"replies: {count} reminders, each sent at once")
    created = await create_reminders(
        ctx, [reminder_body(c, appointment, 3) for c in contacts], ctx.by(ctx.limits.creates_s)
    )
    by_contact = {c: r for c, r in zip(contacts, created.results, strict=True) if r}
    contacts = list(by_contact)
    # Within a time-limited phase, the replies themselves keep a window of their own: with fewer of the
    # reminders out by then, the replies go to those that are, and the figure says it is partial.
    prepared_by = ctx.phase_end - REPLY_WINDOW_S
    await ctx.arrivals.wait(contacts, min(ctx.by(ctx.limits.replies_s), prepared_by))
    ctx.say("replies: reminders sent; waiting for awaiting_reply in the API")
    # A reply finds its reminder through the PostgreSQL mirror, so the mirror must show it as sent.
    deadline = min(ctx.by(15), prepared_by)
    while True:
        awaiting = await _ids_with_status(ctx, "awaiting_reply") & set(by_contact.values())
        if len(awaiting) >= len(contacts) or time.time() > deadline:
            break
        await asyncio.sleep(0.5)
    sample = random.sample(sorted(by_contact.values()), min(20, len(by_contact)))
    sample_status = [(await ctx.http.get(f"/reminder/{r}")).json().get("status") for r in sample]
    # Only contacts whose reminder is out and mirrored: a reply to anything else would be "unmatched".
    repliers = [c for c in contacts if by_contact[c] in awaiting]
    # Counted again: more will have gone out while the API was being asked.
    sends = sorted(ctx.arrivals.first(contacts).values())

    chunks = {"raw": halves(raw_ids), "service": halves(repliers)}
    turns: dict[str, list[Turn]] = {"raw": [], "service": []}
    with server_on_own_core(ctx.stack) if ctx.pin_server else contextlib.nullcontext() as pinned:
        if ctx.pin_server:
            ctx.say(f"replies: the Temporal server on a CPU of its own: {pinned}")
        for n, side in enumerate(s for s in REPLY_TURNS if raw or s == "service"):
            # Each turn starts on an idle worker and server: the one before has answered all it will.
            await settle(ctx, [ctx.service_queue, ctx.raw_queue], min(ctx.by(10), prepared_by))
            chunk = chunks[side][len(turns[side])]
            ctx.say(f"replies: turn {n + 1} {side}, {len(chunk)} replies, {ctx.concurrency} in flight")
            turn = await (
                _raw_turn(ctx, chunk) if side == "raw" else _service_turn(ctx, chunk, f"{prefix}{n}")
            )
            turns[side].append(turn)
            ctx.say(f"replies: turn {n + 1} {side}: {len(turn.answers)} answered")
    ours = pooled_turns(turns["service"])
    theirs = pooled_turns(turns["raw"]) if raw_ids else None
    rate, raw_rate = ours["replies_per_s"], theirs["replies_per_s"] if theirs else None
    ratio = rate / raw_rate if rate and raw_rate else None
    ctx.say(f"replies: {ours['answered']} confirmations, {rate or 0:.0f}/s, service/raw {ratio or 0:.2f}")
    outcomes = sum((t.outcomes for t in turns["service"]), Counter[str]())
    return {
        "raw": None
        if theirs is None
        else {
            "count": len(raw_ids),
            "signals": pooled([t.sent for t in turns["raw"]]).figures(),
            "answered": theirs["answered"],
            "complete": theirs["complete"],
            "answer_latency_s": theirs["latency_s"],
            "replies_per_s": theirs["replies_per_s"],
            "server_cpu_ms_per_reply": theirs["server_cpu_ms_per_reply"],
            "cpu_ms_per_reply": theirs["cpu_ms_per_reply"],
            "turns_per_s": theirs["turns"],
        },
        "ratio": round(ratio, 3) if ratio is not None else None,
        "turn_order": [s for s in REPLY_TURNS if raw or s == "service"],
        # Set by --pin-server: the CPUs the server and everything else were held to in the turns.
        "server_on_own_core": pinned,
        "count": count,
        "workers_quiet_before": quiet,
        "create": created.figures(),
        "reminders_arrived": len(sends),
        "reminder_sends_per_s": round(len(sends) / (sends[-1] - created.started_at), 1) if sends else None,
        "awaiting_reply_in_api": len(awaiting),
        "sample_status": sample_status,
        "webhooks": pooled([t.sent for t in turns["service"]]).figures(),
        "webhook_outcomes": dict(outcomes),
        "confirmations_arrived": ours["answered"],
        "complete": ours["complete"] and ours["answered"] == count,
        "confirmation_latency_s": ours["latency_s"],
        "replies_per_s": rate,
        # The turns' summed time, first request to last answer in each.
        "first_to_last_s": ours["seconds"],
        "turns_per_s": ours["turns"],
        # The server's work for a reply, from the first signal to the last answer, beside raw's.
        "server_cpu_ms_per_reply": ours["server_cpu_ms_per_reply"],
        "cpu_ms_per_reply": ours["cpu_ms_per_reply"],
    }
