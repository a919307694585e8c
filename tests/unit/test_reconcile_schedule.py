"""Which passes the worker's reconcile loop makes: every reminder first and each full interval, otherwise
what changed since the last good pass began."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from stack import reconcile as module
from stack.reconcile import ORPHAN_AGE, OVERLAP, Report, reconcile_forever


def run_passes(monkeypatch: pytest.MonkeyPatch, count: int, full_interval: float, fail: set[int]) -> list:
    calls: list[tuple[datetime | None, datetime]] = []
    stop = asyncio.Event()

    async def fake(client, store, *, changed_since=None, **_):
        calls.append((changed_since, datetime.now(module.UTC)))
        if len(calls) in fail:
            raise RuntimeError("server unavailable")
        if len(calls) >= count:
            stop.set()
        return Report()

    monkeypatch.setattr(module, "reconcile", fake)
    asyncio.run(asyncio.wait_for(reconcile_forever(None, None, 0.01, stop, full_interval), 10))
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
