"""The connections to an SMS provider: httpx clients of one connection each, lent out one request at a time.

One httpx client holding 16 keep-alive connections spent 1.2 ms of CPU on each request, most of it in its
pool matching every waiting request against every connection (each check asks the socket whether it is
still readable). Sixteen clients of one connection each do the same requests for 0.45 ms: a free client
is taken from a stack, and its pool has one connection to consider (`python -m bench.lanes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx


class Lanes:
    """`count` httpx clients sharing settings, each with one connection. A request waits for a free one;
    the most recently used goes first, so the connections in use stay warm and the rest expire idle."""

    def __init__(
        self,
        count: int,
        timeout: httpx.Timeout | float = 5.0,
        transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a provider needs at least one connection")
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        # One TLS context for all: each client making its own loaded the CA bundle again (18 ms and about
        # 0.7 MB apiece).
        tls = httpx.create_ssl_context()
        self._clients = [
            httpx.AsyncClient(
                timeout=timeout,
                limits=one,
                verify=tls,
                transport=transport() if transport is not None else None,
            )
            for _ in range(count)
        ]
        self._free: asyncio.LifoQueue[httpx.AsyncClient] = asyncio.LifoQueue()
        for client in self._clients:
            self._free.put_nowait(client)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._request("POST", url, kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._request("GET", url, kwargs)

    async def _request(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        client = await self._free.get()
        try:
            return await client.request(method, url, **kwargs)
        finally:
            self._free.put_nowait(client)

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients))

    async def __aenter__(self) -> Lanes:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


# What the providers call: the lanes in the worker, a plain httpx client in tests and tools.
HttpClient = httpx.AsyncClient | Lanes
