"""The API app in this process, wired to a real Temporal and PostgreSQL (a launcher stack), for fuzzing."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.main import create_app
from devstack.harness import FakeProvider, Stack, flowroute_env
from settings import Settings

TWILIO_TOKEN = "fuzz-twilio-token"
BASE_URL = "http://api"


class InProcessApi:
    """`create_app` under its lifespan on an event loop of its own thread.

    Hypothesis drives plain functions; the app's asyncpg pool and Temporal client belong to one loop, so
    every request is handed to that loop rather than to whichever loop pytest-asyncio runs.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-api", daemon=True)
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        """Runs a coroutine on the app's loop, where its Temporal client and pool live."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.app = create_app(self.settings)
        self._lifespan = self.app.router.lifespan_context(self.app)

        async def enter() -> httpx.AsyncClient:
            await self._lifespan.__aenter__()
            # raise_app_exceptions (the default) turns any unhandled exception into a test failure.
            return httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL, timeout=30
            )

        self.http = self.run(enter())

    def request(self, tally: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self.requests[tally] += 1
        response: httpx.Response = self.run(self.http.request(method, url, **kwargs))
        self.statuses[f"{tally} {response.status_code}"] += 1
        return response

    def stream(self, tally: str, method: str, url: str, chunks: list[bytes], **kwargs: Any) -> httpx.Response:
        """A body sent in pieces without Content-Length, as a client streaming it would."""
        self.requests[tally] += 1

        async def body() -> Any:
            for chunk in chunks:
                yield chunk

        return self.run(self.http.request(method, url, content=body(), **kwargs))

    def close(self) -> None:
        async def leave() -> None:
            await self.http.aclose()
            await self._lifespan.__aexit__(None, None, None)

        try:
            self.run(leave())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="session")
def fuzz_fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory, fuzz_fake: FakeProvider) -> Iterator[Stack]:
    s = Stack(
        Path(tmp_path_factory.mktemp("fuzz-stack")),
        # Unpaced: the fuzzing sends thousands of texts to one number.
        flowroute_env(fuzz_fake, SEND_RATE_PER_SECOND="0"),
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def api(fuzz_stack: Stack) -> Iterator[InProcessApi]:
    info = fuzz_stack.run_info()
    settings = Settings(
        _env_file=None,
        database_url=info["database_url"],
        temporal_address=info["temporal"],
        twilio_auth_token=TWILIO_TOKEN,
        api_keys=None,
        webhook_token=None,
        public_url=None,
        quiet_hours="off",
    )
    in_process = InProcessApi(settings)
    in_process.start()
    try:
        yield in_process
    finally:
        in_process.close()
