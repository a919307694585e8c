"""The worker's provider connections: one request per client at a time, never more than the lanes."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from activities.lanes import Lanes


class Counting:
    """Transports that record how many requests each one and all of them hold at once."""

    def __init__(self, fail_first: int = 0) -> None:
        self.in_flight = 0
        self.most = 0
        self.most_on_one = 0
        self.made = 0
        self.served: list[int] = []
        self._fail = fail_first

    def transport(self) -> httpx.AsyncBaseTransport:
        self.made += 1
        number = self.made
        on_this = 0

        async def handle(request: httpx.Request) -> httpx.Response:
            nonlocal on_this
            if self._fail > 0:
                self._fail -= 1
                raise httpx.ConnectError("refused", request=request)
            self.in_flight += 1
            on_this += 1
            self.most = max(self.most, self.in_flight)
            self.most_on_one = max(self.most_on_one, on_this)
            try:
                await asyncio.sleep(0.01)
                self.served.append(number)
                return httpx.Response(202, json={"data": {"id": f"mdr2-{len(self.served)}"}})
            finally:
                self.in_flight -= 1
                on_this -= 1

        return httpx.MockTransport(handle)


async def test_requests_spread_over_the_lanes_one_at_a_time_each() -> None:
    counting = Counting()
    async with Lanes(3, transport=counting.transport) as lanes:
        answers = await asyncio.gather(
            *(lanes.post("http://provider/messages", json={"n": i}) for i in range(12))
        )
        got = await lanes.get("http://provider/messages")
    assert [a.status_code for a in answers] == [202] * 12
    assert got.status_code == 202
    assert counting.made == 3
    assert counting.most == 3
    assert counting.most_on_one == 1
    assert set(counting.served) == {1, 2, 3}


async def test_a_failed_request_gives_its_lane_back() -> None:
    counting = Counting(fail_first=1)
    async with Lanes(1, transport=counting.transport) as lanes:
        with pytest.raises(httpx.ConnectError):
            await lanes.post("http://provider/messages", json={})
        answer = await asyncio.wait_for(lanes.post("http://provider/messages", json={}), 2)
    assert answer.json() == {"data": {"id": "mdr2-1"}}


async def test_the_most_recently_used_lane_goes_first() -> None:
    counting = Counting()
    async with Lanes(4, transport=counting.transport) as lanes:
        for _ in range(5):
            await lanes.post("http://provider/messages", json={})
    # One at a time, the same warm connection serves every request.
    assert len(set(counting.served)) == 1


def test_at_least_one_lane() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Lanes(0)
