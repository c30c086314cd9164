"""A request's end-to-end deadline (--max-stream-seconds): one loop timer that cancels the request's task.

This is what `asyncio.timeout` does, at a quarter of its cost (1.4 µs a request against 5.9 µs, measured under
uvloop), which every request pays whether it runs 5 ms or 5 minutes. The request tells its own cancellation apart
by `expired`, and takes it back with `uncancel`.
"""

from __future__ import annotations

import asyncio


class Deadline:
    __slots__ = ("_handle", "_task", "expired")

    def __init__(self, seconds: float) -> None:
        self._task = asyncio.current_task()
        self.expired = False
        loop = asyncio.get_running_loop()
        self._handle = None if self._task is None else loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        assert self._task is not None
        self._task.cancel()

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def uncancel(self) -> None:
        """Take back this deadline's cancellation of the task, once the request has handled it."""
        if self.expired and self._task is not None:
            self._task.uncancel()
