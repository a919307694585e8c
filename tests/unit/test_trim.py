"""Memory freed after a burst goes back to the system."""

from __future__ import annotations

import asyncio
import platform

import pytest

from stack import trim


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_is_returned_after_a_burst() -> None:
    do_trim = trim.malloc_trim()
    assert do_trim is not None
    burst = [{"body": "x" * 600, "payload": bytes(1200), "i": i} for i in range(100_000)]
    # A few survivors scattered through the heap pin it: glibc alone keeps everything below them.
    survivors = burst[::500]
    before = _rss_mb()
    del burst
    freed = _rss_mb()
    do_trim()
    after = _rss_mb()
    assert len(survivors) == 200
    # The burst held about 200 MB; without the trim nearly all of it stays.
    assert freed > before - 50
    assert after < freed - 100


def test_the_trimmer_stops_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counted() -> int:
        calls.append(1)
        return 1

    monkeypatch.setattr(trim, "malloc_trim", lambda: counted)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(trim.trim_forever(stop, interval=0.01))
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 1)

    asyncio.run(run())
    assert calls


def test_without_malloc_trim_it_returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trim, "malloc_trim", lambda: None)
    asyncio.run(asyncio.wait_for(trim.trim_forever(asyncio.Event(), interval=0.01), 1))
