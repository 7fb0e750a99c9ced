"""Exponential backoff with full jitter, for every reconnection loop of the pipeline (camera
streams, the Kafka sink).

    attempt n  ->  wait uniform(0, min(max_s, initial_s * 2 ** (n - 1)))

Without jitter, every camera of a site that lost its network at the same moment (a switch
restart) retries at the same instants, and so does every worker against a broker that comes back:
their reconnections arrive in waves. Full jitter ("Exponential Backoff And Jitter", Marc Brooker,
AWS Architecture Blog, 2015) spreads them over the whole window and, among the jitter schemes
measured there, does the least work for the same completion time.

Written here: the formula is one line, and the well-kept implementations (tenacity's
`wait_random_exponential`, `backoff`) come with a retry framework the loops here do not use.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]

#: Doublings after which the ceiling stops growing (it is capped by `max_s` long before).
_MAX_DOUBLINGS = 60


class Backoff:
    """Waits before reconnection attempt `n`: uniform in [0, min(max_s, initial_s * 2^(n-1))].

    Args:
        initial_s: Ceiling of the first wait.
        max_s: Largest ceiling.
        rng: Source of the jitter (a seeded `random.Random` in tests); a fresh one by default.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"expected 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self.initial_s, self.max_s = initial_s, max_s
        self.rng = random.Random() if rng is None else rng

    def ceiling(self, attempt: int) -> float:
        """The longest wait before attempt `attempt` (1 for the first retry)."""
        doublings = min(max(attempt - 1, 0), _MAX_DOUBLINGS)
        return min(self.max_s, self.initial_s * 2**doublings)

    def delay(self, attempt: int) -> float:
        """A wait drawn for attempt `attempt`, in seconds."""
        return self.rng.uniform(0.0, self.ceiling(attempt))
