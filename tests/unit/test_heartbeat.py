"""A send heartbeats while it waits, but not at once: one done within HEARTBEAT_EVERY sends the server none."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.testing import ActivityEnvironment

import activities.reminders
from activities.reminders import _heartbeat_forever


async def beats_within(seconds: float) -> list[float]:
    env = ActivityEnvironment()
    at: list[float] = []
    env.on_heartbeat = lambda *_: at.append(time.monotonic())

    async def run() -> None:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_heartbeat_forever(), seconds)
        at[:] = [t - t0 for t in at]

    await env.run(run)
    return at


async def test_a_send_done_quickly_sends_no_heartbeat():
    assert await beats_within(0.2) == []


async def test_a_send_that_waits_heartbeats_every_interval(monkeypatch):
    monkeypatch.setattr(activities.reminders, "HEARTBEAT_EVERY", 0.1)
    # Five beats are due in 0.55 s; a loaded machine may run them late, never early.
    at = await beats_within(0.55)
    assert 3 <= len(at) <= 5
    assert at[0] >= 0.09
    assert all(later - earlier >= 0.09 for earlier, later in zip(at, at[1:], strict=False))
