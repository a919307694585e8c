from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.embedded import free_port
from devstack.harness import FakeProvider, Stack, flowroute_env
from devstack.receiver import EventReceiver

TWILIO_TOKEN = "twilio-test-token"


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    provider.start()
    yield provider
    provider.stop()


# Signs the events the shared stack sends its receivers.
EVENT_SECRET = "whsec_" + base64.b64encode(b"an event secret for the tests!!").decode()


@pytest.fixture(scope="session")
def receiver() -> Iterator[EventReceiver]:
    """The clinic's system, getting the shared stack's events."""
    r = EventReceiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def flaky_receiver() -> Iterator[EventReceiver]:
    """A second receiver of the same events, that a test takes down for a while."""
    r = EventReceiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    fake: FakeProvider,
    receiver: EventReceiver,
    flaky_receiver: EventReceiver,
) -> Iterator[Stack]:
    """One stack for the module tests that do not kill anything: Flowroute pointed at the fake, events
    to two receivers."""
    s = Stack(
        Path(tmp_path_factory.mktemp("stack")),
        flowroute_env(
            fake,
            ORG_NAME="West Side Clinic",
            TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            METRICS_PORT=str(free_port()),
            EVENT_WEBHOOK_URL=f"{receiver.url},{flaky_receiver.url}",
            EVENT_WEBHOOK_SECRET=EVENT_SECRET,
            ORG_TIMEZONE="America/New_York",
            PUBLIC_URL="auto",
        ),
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()
        print(s.log_tail())
