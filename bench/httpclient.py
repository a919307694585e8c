"""A small keep-alive HTTP/1.1 client for the load generator.

The bench shares two CPUs with the stack it measures, so the client must cost as little as it can: with
httpx the bench process spent about 4 ms of CPU per create (8 CPU-s for 2,000), more than the API spent
answering them (6 CPU-s). This client writes a
request and reads one response with a Content-Length body over pooled asyncio connections, and nothing
else: no redirects, no chunked bodies, no TLS. It is for the bench's loopback traffic only.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlencode, urlsplit


class HTTPStatusError(Exception):
    pass


class Response:
    __slots__ = ("status_code", "content")

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HTTPStatusError(f"HTTP {self.status_code}: {self.text[:200]}")


# Idle connections older than this are not reused: uvicorn closes them after 5 s of quiet.
IDLE_REUSE_S = 2.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    async def exchange(self, request: bytes) -> tuple[Response, bool]:
        """Sends one request; answers the response and whether the server keeps the connection open."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        keep = True
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                keep = False
            elif name == b"transfer-encoding":
                raise ValueError("chunked responses are not supported by the bench client")
        body = await self.reader.readexactly(length) if length else b""
        return Response(status, body), keep

    def close(self) -> None:
        self.writer.close()


class Client:
    """`get` and `post` against one base URL, at most `max_connections` connections at once."""

    def __init__(self, base_url: str, max_connections: int = 64, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        assert parts.scheme == "http" and parts.hostname, base_url
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._host_header = f"{self.host}:{self.port}".encode()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Response:
        if params:
            path = f"{path}?{urlencode(params)}"
        return await self.request("GET", path)

    async def post(self, path: str, json: Any = None) -> Response:  # noqa: A002 - httpx's name for it
        body = b"" if json is None else _dumps(json)
        return await self.request("POST", path, body)

    async def request(self, method: str, path: str, body: bytes | None = None) -> Response:
        head = [
            f"{method} {self.prefix}{path} HTTP/1.1".encode(),
            b"Host: " + self._host_header,
        ]
        if body is not None:
            head += [b"Content-Type: application/json", b"Content-Length: " + str(len(body)).encode()]
        request = b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")
        async with self._slots:
            # A pooled connection the server closed meanwhile fails at once: one retry on a new one.
            for attempt in range(2):
                conn = self._pooled() if attempt == 0 else None
                if conn is None:
                    conn = await self._connect()
                try:
                    response, keep = await asyncio.wait_for(conn.exchange(request), self.timeout)
                except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
                    conn.close()
                    if attempt:
                        raise
                    continue
                except BaseException:
                    conn.close()
                    raise
                if keep:
                    conn.idle_since = time.monotonic()
                    self._idle.append(conn)
                else:
                    conn.close()
                return response
        raise AssertionError("unreachable")

    def _pooled(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_REUSE_S:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
        return _Connection(reader, writer)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
