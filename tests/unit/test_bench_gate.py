"""The bench's gate for background fills, and the fake provider answering some numbers late: what lets the
backlog fill during bursts' leads and two bursts share one lead."""

from __future__ import annotations

import asyncio
import time

import httpx

from bench.load import Gate, run_batch
from devstack.fakes import FakeProvider


async def test_a_closed_gate_holds_every_operation_and_close_waits_for_those_inside() -> None:
    gate = Gate(quiet_s=0.0)
    log: list[tuple[str, int]] = []

    async def op(i: int) -> int:
        log.append(("in", i))
        await asyncio.sleep(0.05)
        log.append(("out", i))
        return i

    batch = asyncio.create_task(run_batch(6, 2, op, gate=gate))
    await asyncio.sleep(0.1)
    assert log == []  # never opened: nothing ran

    gate.open("lead")
    await asyncio.sleep(0.02)
    assert [e for e in log if e[0] == "in"] == [("in", 0), ("in", 1)]
    await gate.close()
    # Closing returned only after the two inside had finished, and nothing new began.
    assert log == [("in", 0), ("in", 1), ("out", 0), ("out", 1)]
    await asyncio.sleep(0.1)
    assert len(log) == 4

    gate.open("backlog phase")
    done = await batch
    assert done.ok == 6 and sorted(done.results) == list(range(6))
    assert [w["why"] for w in gate.windows] == ["lead", "backlog phase"]
    assert gate.windows[0]["closed_at"] is not None


async def test_an_operation_woken_as_the_gate_closes_again_waits_for_the_next_opening() -> None:
    gate = Gate(quiet_s=0.0)
    entered: list[float] = []

    async def enter() -> None:
        await gate.enter()
        entered.append(time.monotonic())
        gate.leave()

    waiter = asyncio.create_task(enter())
    await asyncio.sleep(0)
    # Opened and closed again before the woken waiter ran: it must not slip through.
    gate.open("blink")
    await gate.close()
    await asyncio.sleep(0.05)
    assert entered == []
    gate.open("again")
    await asyncio.wait_for(waiter, 1)
    assert len(entered) == 1


async def test_open_seconds_counts_only_the_openings_since() -> None:
    gate = Gate(quiet_s=0.0)
    gate.open("a")
    await asyncio.sleep(0.1)
    await gate.close()
    mark = time.time()
    await asyncio.sleep(0.1)
    gate.open("b")
    await asyncio.sleep(0.1)
    await gate.close()
    assert 0.18 < gate.open_seconds() < 0.4
    assert 0.08 < gate.open_seconds(since=mark) < 0.2


def test_the_fake_answers_numbers_with_a_slow_prefix_late() -> None:
    fake = FakeProvider(latency_by_prefix={"1699": 0.3})
    fake.start()
    try:
        timings = {}
        for to in ("16990000001", "12990000001"):
            t0 = time.perf_counter()
            response = httpx.post(
                f"{fake.url}/v2.1/messages",
                json={"to": to, "from": "18005550100", "body": "hi"},
                auth=("key", "secret"),
            )
            timings[to] = time.perf_counter() - t0
            assert response.status_code == 202
        assert timings["16990000001"] >= 0.3
        assert timings["12990000001"] < 0.2
        assert fake.latency_for("16990000001") == 0.3 and fake.latency_for("12990000001") == 0.0
    finally:
        fake.stop()


async def test_open_seconds_between_two_instants() -> None:
    gate = Gate(quiet_s=0.0)
    gate.open("a")
    await asyncio.sleep(0.2)
    mid = time.time()
    await asyncio.sleep(0.2)
    await gate.close()
    assert 0.15 < gate.open_seconds(until=mid) < 0.3
    assert 0.15 < gate.open_seconds(since=mid) < 0.3
    assert gate.open_seconds(since=mid, until=mid) == 0.0
