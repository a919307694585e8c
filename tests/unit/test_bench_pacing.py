"""The bench's Twilio pacing verdict: what waited in the number's queue, as Twilio queues it."""

from __future__ import annotations

from bench.report import _pacing_rows
from devstack.fakes import FakeProvider, Received


def twilio_result(waits: list[float | None]) -> dict:
    return {
        "provider": "twilio",
        "count": 90,
        "sending_numbers": [f"n{i}" for i in range(len(waits))],
        "limit": 1.0,
        "capacity_per_s": float(len(waits)),
        "per_s_sustained": 2.9,
        "arrived": 90,
        "drain_s": 31.0,
        "per_number": {
            f"n{i}": {"sent": 30, "max_in_any_1s": 2, "queue_wait_s": {"n": 0} if w is None else {"max": w}}
            for i, w in enumerate(waits)
        },
    }


def verdict(waits: list[float | None]) -> bool | None:
    (row,) = [r for r in _pacing_rows(twilio_result(waits)) if "Twilio's queue" in r.figure]
    return row.met


def test_jitter_of_a_few_milliseconds_keeps_pacing_and_a_queue_does_not():
    assert verdict([0.03, 0.0, 0.012]) is True
    assert verdict([0.03, 0.8, 0.0]) is False
    # A number whose waits are unknown is not taken as kept.
    assert verdict([0.03, None, 0.0]) is False


def test_the_fake_queues_a_numbers_segments_at_its_rate():
    fake = FakeProvider(number_rate=1.0)
    for at in (100.0, 100.4, 100.5, 103.0):
        message = Received(
            at, "/2010-04-01/Accounts/AC1/Messages.json", None, "form", {"From": "+1555", "Body": "hi"}
        )
        assert fake._take(message, twilio=True)[0] is None
    assert [round(m.dispatched_at - m.at, 2) for m in fake.received] == [0.0, 0.6, 1.5, 0.0]
