from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.embedded import free_port
from devstack.harness import FakeProvider, Stack, flowroute_env

TWILIO_TOKEN = "twilio-test-token"


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, fake: FakeProvider) -> Iterator[Stack]:
    """One stack for the module tests that do not kill anything: Flowroute pointed at the fake."""
    s = Stack(
        Path(tmp_path_factory.mktemp("stack")),
        flowroute_env(
            fake, ORG_NAME="West Side Clinic", TWILIO_AUTH_TOKEN=TWILIO_TOKEN, METRICS_PORT=str(free_port())
        ),
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()
        print(s.log_tail())
