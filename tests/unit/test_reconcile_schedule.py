"""Which passes the workers' reconcile loops make: every reminder first and each full interval, otherwise
what changed since the last good pass began; one pass an interval across all the workers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from db.schedule import ReconcileTurn
from stack import reconcile as module
from stack.reconcile import ORPHAN_AGE, OVERLAP, Report, plan_pass, reconcile_forever

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Schedule:
    """The schedule's row as a store holds it: one worker at a time, the others told it is not theirs."""

    def __init__(self, last_start: datetime | None = None, last_full: datetime | None = None) -> None:
        self.last_start, self.last_full = last_start, last_full
        self._held = False

    @asynccontextmanager
    async def reconcile_turn(self) -> AsyncIterator[ReconcileTurn | None]:
        if self._held:
            yield None
            return
        self._held = True
        try:
            turn = ReconcileTurn(datetime.now(UTC), self.last_start, self.last_full)
            yield turn
            if turn.finished:
                self.last_start = turn.now
                if turn.full:
                    self.last_full = turn.now
        finally:
            self._held = False


def run_passes(
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    full_interval: float,
    fail: set[int],
    workers: int = 1,
    schedule: Schedule | None = None,
    interval: float = 0.01,
    pass_takes: float = 0.0,
) -> list[tuple[datetime | None, datetime]]:
    calls: list[tuple[datetime | None, datetime]] = []
    stop = asyncio.Event()
    store = schedule or Schedule()

    async def fake(client, store, *, changed_since=None, **_):
        calls.append((changed_since, datetime.now(UTC)))
        await asyncio.sleep(pass_takes)
        if len(calls) in fail:
            raise RuntimeError("server unavailable")
        if len(calls) >= count:
            stop.set()
        return Report()

    monkeypatch.setattr(module, "reconcile", fake)

    async def loops() -> None:
        await asyncio.gather(
            *(reconcile_forever(None, store, interval, stop, full_interval) for _ in range(workers))  # type: ignore[arg-type]
        )

    asyncio.run(asyncio.wait_for(loops(), 10))
    return calls


def test_the_first_pass_covers_every_reminder_then_each_covers_what_changed(monkeypatch):
    calls = run_passes(monkeypatch, 4, full_interval=3600, fail=set())
    assert calls[0][0] is None
    for (_, started_before), (changed_since, _) in zip(calls, calls[1:], strict=False):
        assert changed_since is not None
        # Reaches back over the orphan age and an overlap from where the pass before began.
        assert abs(changed_since - (started_before - ORPHAN_AGE - OVERLAP)) < timedelta(milliseconds=50)


def test_a_failed_pass_does_not_move_the_window(monkeypatch):
    calls = run_passes(monkeypatch, 4, full_interval=3600, fail={2})
    assert calls[0][0] is None
    # The second failed: the third reaches back to where the first (the last good one) began.
    assert calls[2][0] == calls[1][0]
    assert calls[3][0] is not None and calls[3][0] > calls[2][0]


def test_a_full_pass_comes_again_each_full_interval(monkeypatch):
    calls = run_passes(monkeypatch, 3, full_interval=0, fail=set())
    assert [c[0] for c in calls] == [None, None, None]


def test_a_restarted_worker_goes_on_from_the_schedule_not_with_a_full_pass(monkeypatch):
    before = datetime.now(UTC) - timedelta(minutes=10)
    schedule = Schedule(last_start=before, last_full=datetime.now(UTC) - timedelta(minutes=30))
    calls = run_passes(monkeypatch, 1, full_interval=3600, fail=set(), schedule=schedule)
    assert calls[0][0] == before - ORPHAN_AGE - OVERLAP
    assert schedule.last_start is not None and schedule.last_start > before


def test_three_workers_make_one_pass_an_interval_between_them(monkeypatch):
    # Each loop wakes every 0.1 s; a pass takes 0.05 s. Three loops passing on their own would make three
    # an interval; between them they make about one (each pass starts at least 0.09 s after the one before).
    calls = run_passes(
        monkeypatch, 5, full_interval=3600, fail=set(), workers=3, interval=0.1, pass_takes=0.05
    )
    starts = [started for _, started in calls]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.085


def test_a_pass_under_way_gives_way_to_the_workers_stop(monkeypatch):
    """A worker told to stop does not wait out a pass (at 100,000 reminders one took most of a minute): the
    pass is cancelled, and the schedule records nothing, so the next pass covers its ground."""
    stop = asyncio.Event()
    schedule = Schedule()
    cancelled = []

    async def slow(client, store, *, changed_since=None, **_):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(changed_since)
            raise
        return Report()

    monkeypatch.setattr(module, "reconcile", slow)

    async def go() -> None:
        loop = asyncio.create_task(reconcile_forever(None, schedule, 0.01, stop, 3600))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(loop, 1)

    asyncio.run(go())
    assert cancelled == [None]
    assert (schedule.last_start, schedule.last_full) == (None, None)


def test_plan_pass() -> None:
    interval, day = 300.0, 86400.0
    assert plan_pass(NOW, None, None, interval, day) == (True, None)
    # Another worker began one a minute ago: not this one's turn.
    assert plan_pass(NOW, NOW - timedelta(minutes=1), NOW, interval, day) is None
    last = NOW - timedelta(minutes=5)
    assert plan_pass(NOW, last, NOW - timedelta(hours=1), interval, day) == (
        False,
        last - ORPHAN_AGE - OVERLAP,
    )
    # A day since the last full pass: every reminder again.
    assert plan_pass(NOW, last, NOW - timedelta(days=1), interval, day) == (True, None)
