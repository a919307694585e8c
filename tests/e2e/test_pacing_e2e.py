"""Sends are paced per sending number across the whole service, and each contact keeps its sender."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devstack.harness import FakeProvider, Stack, flowroute_env, new_number
from tests.e2e.test_reminders_e2e import appointment_in, create, iso

pytestmark = pytest.mark.e2e

NUMBERS = ["18005550101", "18005550102", "18005550103"]


@pytest.fixture(scope="module")
def limited() -> Iterator[FakeProvider]:
    provider = FakeProvider(rate_limit_per_number=5)
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def paced_stack(tmp_path_factory: pytest.TempPathFactory, limited: FakeProvider) -> Iterator[Stack]:
    s = Stack(
        Path(tmp_path_factory.mktemp("paced")),
        flowroute_env(limited, FLOWROUTE_NUMBER=",".join(NUMBERS), SEND_RATE_PER_SECOND="5"),
    )
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_burst_is_paced_per_number_without_429(paced_stack: Stack, limited: FakeProvider):
    contacts = [new_number() for _ in range(45)]
    for number in contacts:
        create(
            paced_stack,
            contact_number=number,
            appointment_time=iso(appointment_in(timedelta(minutes=30))),
            notify_window=1,
        )
    for number in contacts:
        limited.wait_for(number, 1, timeout=60)
    assert limited.refused_429 == 0
    per_sender = Counter(m.body["from"] for m in limited.received)
    assert set(per_sender) <= set(NUMBERS) and len(per_sender) == 3
    # No sender ever carried more than 5 in any one second.
    for sender in per_sender:
        times = sorted(m.at for m in limited.received if m.body["from"] == sender)
        assert all(times[i + 5] - times[i] >= 1.0 for i in range(len(times) - 5)), sender
        assert (times[-1] - times[0]) >= (len(times) - 1) * 0.2 - 0.05


def test_each_contact_keeps_its_sending_number(paced_stack: Stack, limited: FakeProvider):
    number = new_number()
    for minutes in (30, 40):
        create(
            paced_stack,
            contact_number=number,
            appointment_time=iso(appointment_in(timedelta(minutes=minutes))),
            notify_window=1,
        )
    messages = limited.wait_for(number, 2, timeout=30)
    assert len({m.body["from"] for m in messages}) == 1
