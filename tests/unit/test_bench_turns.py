"""The replies phase pools each side's turns: answers over the turns' own time, not the time between them."""

from __future__ import annotations

from bench.load import Batch
from bench.replies import Turn, halves, pooled_turns


def turn(first: float, answers: list[float], expected: int, cpu: dict[str, float]) -> Turn:
    sent = Batch(
        count=expected, concurrency=50, elapsed=1.0, started_at=first, latencies=[], errors=[], results=[]
    )
    # Waited for 10 s: the end of an incomplete turn.
    return Turn(first, sent, answers, expected, cpu, until=first + 10.0)


def test_two_turns_count_their_own_time_only():
    # 100 answers in 2 s, then (after a 50 s gap the other side used) 100 in 3 s.
    a = turn(0.0, [i * 0.02 for i in range(1, 101)], 100, {"temporal": 1.0, "worker": 0.5})
    b = turn(52.0, [52.0 + i * 0.03 for i in range(1, 101)], 100, {"temporal": 1.5, "worker": 0.3})
    pooled = pooled_turns([a, b])
    assert pooled["answered"] == 200
    assert pooled["seconds"] == 5.0
    assert pooled["replies_per_s"] == 40.0
    assert pooled["server_cpu_ms_per_reply"] == 12.5
    assert pooled["cpu_ms_per_reply"] == {"temporal": 12.5, "worker": 4.0}
    assert pooled["turns"] == [50.0, 33.3]
    assert pooled["complete"]


def test_a_turn_cut_short_makes_the_side_incomplete_and_unknown_cpu_unknown():
    # The first turn could not read the server's CPU: the side's server figure is unknown, not a part's.
    a = turn(0.0, [1.0, 2.0], 2, {"worker": 0.2})
    b = turn(5.0, [6.0], 2, {"temporal": 0.1, "worker": 0.1})
    pooled = pooled_turns([a, b])
    assert not pooled["complete"]
    assert pooled["server_cpu_ms_per_reply"] is None
    assert pooled["cpu_ms_per_reply"] == {"worker": 100.0}
    # The turn cut short counts its whole wait (10 s): a lower bound on the rate.
    assert pooled["seconds"] == 12.0


def test_halves_keep_every_item_once():
    assert halves(["a", "b", "c"]) == [["a", "b"], ["c"]]
    assert halves([]) == [[], []]
