"""Open-loop arrivals: a Poisson schedule that free users take turns to serve, so requests do not wait on answers.

Each process runs its share of the rate (rate / processes); the merge of independent Poisson processes is a
Poisson process of the whole rate. The first arrival is one random gap after the start, so there is no t=0 burst.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class PoissonClock:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._clock = clock
        self.rate = rate
        self._next: float | None = None
        self.late = 0  # arrivals no user was free to send on time: raise --users

    def set_rate(self, rate: float) -> None:
        """A new rate applies from the next arrival on (the step/ramp shape calls this)."""
        self.rate = rate

    def wait(self) -> float | None:
        """Claim the next arrival: the seconds until it is due (0 when late); None while there is no rate yet."""
        now = self._clock()
        if self.rate <= 0:
            return None
        if self._next is None:
            self._next = now
        self._next += self._rng.expovariate(self.rate)
        delay = self._next - now
        if delay < 0:
            self.late += 1
            return 0.0
        return delay
