"""Open-loop arrivals: one Poisson schedule per process that hands each arrival to whichever user is free, so
requests are sent on time whatever the answers take (as long as enough users are free: -u).

Each process runs its share of the total rate (rate / processes): merged, independent Poisson processes make a
Poisson process of the whole rate. The first arrival comes one random gap after the start: no t=0 burst.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import gevent
from gevent.queue import Queue

LATE_SECONDS = 0.05  # an arrival served later than this found no free user


class Arrivals:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._rng = random.Random()
        self._clock = clock
        self._due: Queue[float | None] = Queue()  # None: the run is stopping
        self._greenlet: gevent.Greenlet[[], None] | None = None
        self.rate = 0.0
        self.late = 0  # arrivals sent later than due: no user was free
        self.dropped = 0  # arrivals still waiting for a user when the run stopped

    def set_rate(self, rate: float) -> None:
        """Applies from the next gap on (the step/ramp shape changes it mid-run)."""
        self.rate = rate

    def start(self, seed: int | None = None) -> None:
        """Start the schedule once per process; arrivals left over from an earlier run are dropped."""
        if self._greenlet is None or self._greenlet.dead:
            self._rng.seed(seed)
            self.late = self.dropped = 0
            while not self._due.empty():
                self._due.get_nowait()
            self._greenlet = gevent.spawn(self._run)

    def stop(self, waiting: int) -> None:
        """No more arrivals: wake the ``waiting`` users so they end without sending."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        while not self._due.empty():  # arrivals still owed are dropped, not sent
            self._due.get_nowait()
            self.dropped += 1
        for _ in range(waiting):
            self._due.put(None)

    def _run(self) -> None:
        # Due times on an absolute schedule: a busy event loop delays an arrival, it does not slow the rate down.
        due = self._clock()
        while True:
            if self.rate <= 0:
                gevent.sleep(0.1)  # no share yet (a worker waiting for the master's message)
                due = self._clock()
                continue
            due += self._rng.expovariate(self.rate)
            gevent.sleep(max(0.0, due - self._clock()))
            self._due.put(due)

    def take(self) -> bool:
        """Block until the next arrival is due (True), or the run stops (False); count late arrivals."""
        due = self._due.get()
        if due is None:
            return False
        if self._clock() - due > LATE_SECONDS:
            self.late += 1
        return True
