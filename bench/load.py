"""Driving load and watching what comes out: a fixed number of operations with a fixed number in flight,
and the arrivals at the fake provider grouped by recipient."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.stats import summary
from devstack.harness import FakeProvider


@dataclass
class Batch:
    count: int
    concurrency: int
    elapsed: float
    started_at: float
    latencies: list[float]
    errors: list[str]
    results: list[Any] = field(repr=False)
    attempted: int = 0

    @property
    def ok(self) -> int:
        return self.attempted - len(self.errors)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ended_at(self) -> float:
        return self.started_at + self.elapsed

    def figures(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "attempted": self.attempted,
            "ok": self.ok,
            "errors": len(self.errors),
            "first_errors": self.errors[:5],
            "concurrency": self.concurrency,
            "elapsed_s": round(self.elapsed, 3),
            "per_s": round(self.rate, 1),
            "latency_ms": summary(self.latencies, scale=1000, digits=1),
        }


class Gate:
    """Background work (the backlog's fills) passes only while the gate is open: the bench opens it while
    nothing is measured, such as the minutes a burst's reminders wait to be armed, and closes it before
    every measured window."""

    def __init__(self, quiet_s: float = 2.0) -> None:
        self._open = asyncio.Event()
        self._inside = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self.quiet_s = quiet_s
        """After closing, the servers get this long to finish what the last requests set off."""
        self.windows: list[dict[str, Any]] = []

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def open(self, why: str) -> None:
        if not self._open.is_set():
            self.windows.append({"why": why, "opened_at": time.time(), "closed_at": None})
            self._open.set()

    async def close(self) -> None:
        """Returns once nothing is inside and the servers have had their quiet time."""
        if not self._open.is_set():
            return
        self._open.clear()
        await self._empty.wait()
        self.windows[-1]["closed_at"] = time.time()
        await asyncio.sleep(self.quiet_s)

    def open_seconds(self, since: float = 0.0, until: float | None = None) -> float:
        """Seconds the gate was open between `since` and `until` (now)."""
        end = time.time() if until is None else until
        return sum(
            max(min(w["closed_at"] or end, end) - max(w["opened_at"], since), 0.0) for w in self.windows
        )

    async def enter(self) -> None:
        while True:
            await self._open.wait()
            # Closed again between the wake-up and now: wait for the next opening.
            if self._open.is_set():
                break
        self._inside += 1
        self._empty.clear()

    def leave(self) -> None:
        self._inside -= 1
        if self._inside == 0:
            self._empty.set()


async def run_batch(
    count: int,
    concurrency: int,
    op: Callable[[int], Awaitable[Any]],
    deadline: float | None = None,
    gate: Gate | None = None,
) -> Batch:
    """`op(i)` for i in range(count), `concurrency` at a time; each lane takes the next index when done,
    so the number in flight stays constant rather than moving in waves. Past `deadline` (epoch) no new
    operation starts: a slow service shortens the batch instead of overrunning the bench's time. With a
    `gate`, each operation waits for it to be open (its latency counted from then)."""
    latencies: list[float] = []
    results: list[Any] = [None] * count
    errors: list[str] = []
    indexes = iter(range(count))
    attempted = 0

    async def lane() -> None:
        nonlocal attempted
        for i in indexes:
            if deadline is not None and time.time() > deadline:
                return
            if gate is not None:
                await gate.enter()
            attempted += 1
            t0 = time.perf_counter()
            try:
                results[i] = await op(i)
            except Exception as err:  # noqa: BLE001 - a failed operation is a figure, not the end of the run
                errors.append(f"#{i}: {err!r}"[:300])
            finally:
                if gate is not None:
                    gate.leave()
            latencies.append(time.perf_counter() - t0)

    started_at = time.time()
    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, count))))
    return Batch(
        count, concurrency, time.perf_counter() - t0, started_at, latencies, errors, results, attempted
    )


class Arrivals:
    """What the fake provider received, grouped by recipient; reads only the entries new since last time."""

    def __init__(self, fake: FakeProvider) -> None:
        self.fake = fake
        self._read = 0
        self.by_to: dict[str, list[tuple[float, str, str]]] = defaultdict(list)

    def refresh(self) -> None:
        with self.fake.lock:
            new = self.fake.received[self._read :]
            self._read = len(self.fake.received)
        for r in new:
            self.by_to[r.to].append((r.at, r.text, r.sender))

    def first(
        self, contacts: Iterable[str], match: Callable[[str], bool] = lambda _: True
    ) -> dict[str, float]:
        """Each contact's first arrival whose text passes `match`."""
        self.refresh()
        found: dict[str, float] = {}
        for c in contacts:
            times = [at for at, text, _ in self.by_to.get(c, ()) if match(text)]
            if times:
                found[c] = min(times)
        return found

    def all_of(self, contacts: Iterable[str]) -> list[tuple[float, str, str]]:
        """Every arrival for these contacts: (time, text, sending number)."""
        self.refresh()
        return [a for c in contacts for a in self.by_to.get(c, ())]

    async def wait(
        self,
        contacts: list[str],
        deadline: float,
        match: Callable[[str], bool] = lambda _: True,
    ) -> dict[str, float]:
        """Polls until every contact has an arrival passing `match`, or until `deadline` (epoch)."""
        while True:
            found = self.first(contacts, match)
            if len(found) >= len(contacts) or time.time() > deadline:
                return found
            await asyncio.sleep(0.1)
