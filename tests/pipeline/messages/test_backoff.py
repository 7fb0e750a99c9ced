"""Reconnection backoff: exponential ceilings, full jitter, reproducible with a seeded RNG."""

from __future__ import annotations

import random
import statistics

import pytest

from pipeline.messages.backoff import Backoff


def test_ceilings_double_up_to_the_cap():
    backoff = Backoff(0.5, 10.0)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert backoff.ceiling(10**9) == 10.0  # no overflow however long the outage


def test_full_jitter_spreads_waits_over_the_whole_window():
    backoff = Backoff(0.5, 10.0, random.Random(7))
    for attempt in (1, 3, 6):
        waits = [backoff.delay(attempt) for _ in range(2000)]
        ceiling = backoff.ceiling(attempt)
        assert all(0 <= w <= ceiling for w in waits)
        assert len(set(waits)) == len(waits)  # no two clients in step
        assert statistics.mean(waits) == pytest.approx(ceiling / 2, rel=0.05)
        assert min(waits) < 0.05 * ceiling and max(waits) > 0.95 * ceiling


def test_a_seed_gives_the_same_waits_and_two_seeds_different_ones():
    waits = [[Backoff(0.5, 10.0, random.Random(s)).delay(4) for _ in range(3)] for s in (1, 1, 2)]
    assert waits[0] == waits[1] != waits[2]
    expected = random.Random(1).uniform(0.0, 4.0)
    assert Backoff(0.5, 10.0, random.Random(1)).delay(4) == expected


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 1.0)])
def test_impossible_windows_are_refused(initial, cap):
    with pytest.raises(ValueError, match="0 < initial_s <= max_s"):
        Backoff(initial, cap)
