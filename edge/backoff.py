"""Retry delays (reconnects, settlement retries, restarts of a failed loop): exponential
growth with full jitter.

Full jitter (a uniform draw between zero and the exponential cap) spreads thousands of
stores that lost the broker at the same moment over the whole window, so they come back
as a trickle rather than a stampede.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self._initial = initial_s
        self._max = max_s
        self._rng = rng or random.Random()
        self.failures = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return float(min(self._max, self._initial * 2 ** min(self.failures, 32)))

    def next_delay(self) -> float:
        """A delay for the next attempt; each call widens the window until `max_s`."""
        delay = self._rng.uniform(0, self.ceiling())
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
