"""`python -m bench.lanes`: the worker's CPU for each text it hands the provider, through one httpx client
holding all the connections against `activities.lanes.Lanes` (as many clients of one connection each).

The fake Flowroute runs in a process of its own, so the CPU counted is the sender's alone: the provider's
send code (`FlowrouteProvider.send`), as many in flight as the worker allows (`PROVIDER_CONNECTIONS`).
The two take turns, and each figure is the median of its rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from typing import Any

import httpx
import uvloop

from activities.lanes import HttpClient, Lanes
from activities.providers import FlowrouteProvider
from activities.reminders import PROVIDER_CONNECTIONS
from devstack.fakes import FakeProvider
from settings import Settings

BODY = (
    "You have an appointment on Monday Mar 23, 1:00 pm at West Side Mechanics with Dr Smith. "
    "Please reply 'Yes' to confirm, or 'No' to cancel."
)


def _serve(port: Any, ready: Any) -> None:
    fake = FakeProvider(receipts=False)
    fake.start()
    port.value = fake.port
    ready.set()
    while True:
        time.sleep(60)


async def _round(client: HttpClient, port: int, sends: int, in_flight: int) -> float:
    """CPU microseconds per send, after a warm-up that opens the connections."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        sms_provider="flowroute",
        flowroute_api_url=f"http://127.0.0.1:{port}/v2.1",
        flowroute_access_key="bench",
        flowroute_secret_key="bench",
        flowroute_number="12065550100",
    )
    provider = FlowrouteProvider(client, settings)
    slots = asyncio.Semaphore(in_flight)

    async def send(i: int) -> None:
        async with slots:
            await provider.send(f"1206555{i % 10000:04d}", BODY)

    await asyncio.gather(*(send(i) for i in range(in_flight * 4)))
    started = time.process_time()
    await asyncio.gather(*(send(i) for i in range(sends)))
    return 1e6 * (time.process_time() - started) / sends


async def _measure(port: int, rounds: int, sends: int, connections: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"one client": [], "lanes": []}
    timeout = httpx.Timeout(10.0)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    for _ in range(rounds):
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            figures["one client"].append(await _round(client, port, sends, connections))
        async with Lanes(connections, timeout=timeout) as lanes:
            figures["lanes"].append(await _round(lanes, port, sends, connections))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=PROVIDER_CONNECTIONS)
    args = parser.parse_args()
    port, ready = multiprocessing.Value("i", 0), multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise SystemExit("the fake provider did not start")
        figures = uvloop.run(_measure(port.value, args.rounds, args.sends, args.connections))
    finally:
        server.terminate()
        server.join()
    print(f"{args.sends} sends a round, {args.connections} in flight, {args.rounds} rounds taking turns")
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, values in figures.items():
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:>10}: median {medians[name]:.0f} us of CPU a send (rounds {rounds})")
    print(f"lanes / one client: {medians['lanes'] / medians['one client']:.2f}")


if __name__ == "__main__":
    main()
