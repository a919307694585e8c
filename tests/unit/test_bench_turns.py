"""The replies phase pools each side's turns: answers over the turns' own time, not the time between them."""

from __future__ import annotations

from bench.load import Batch
from bench.replies import Turn, halves, pooled_turns


def turn(first: float, answers: list[float], expected: int, cpu: float | None) -> Turn:
    sent = Batch(
        count=expected, concurrency=50, elapsed=1.0, started_at=first, latencies=[], errors=[], results=[]
    )
    # Waited for 10 s: the end of an incomplete turn.
    return Turn(first, sent, answers, expected, cpu, until=first + 10.0)


def test_two_turns_count_their_own_time_only():
    # 100 answers in 2 s, then (after a 50 s gap the other side used) 100 in 3 s.
    a = turn(0.0, [i * 0.02 for i in range(1, 101)], 100, 1.0)
    b = turn(52.0, [52.0 + i * 0.03 for i in range(1, 101)], 100, 1.5)
    pooled = pooled_turns([a, b])
    assert pooled["answered"] == 200
    assert pooled["seconds"] == 5.0
    assert pooled["replies_per_s"] == 40.0
    assert pooled["server_cpu_ms_per_reply"] == 12.5
    assert pooled["turns"] == [50.0, 33.3]
    assert pooled["complete"]


def test_a_turn_cut_short_makes_the_side_incomplete_and_unknown_cpu_unknown():
    a = turn(0.0, [1.0, 2.0], 2, None)
    b = turn(5.0, [6.0], 2, 0.1)
    pooled = pooled_turns([a, b])
    assert not pooled["complete"]
    assert pooled["server_cpu_ms_per_reply"] is None
    # The turn cut short counts its whole wait (10 s): a lower bound on the rate.
    assert pooled["seconds"] == 12.0


def test_halves_keep_every_item_once():
    assert halves(["a", "b", "c"]) == [["a", "b"], ["c"]]
    assert halves([]) == [[], []]
