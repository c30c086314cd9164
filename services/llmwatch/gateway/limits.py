"""Requests in flight per gateway replica, in total and per API key; over a limit the client gets a 429."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from llmwatch.gateway.errors import GatewayError

RETRY_AFTER_SECONDS = 1


class ConcurrencyLimits:
    """0 turns a limit off. Open WebUI sends one key for all its users, so the per-key limit is off by default."""

    def __init__(self, total: int, per_key: int) -> None:
        self._total = total
        self._per_key = per_key
        self._in_flight = 0
        self._by_key: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, key: str | None) -> Iterator[None]:
        if self._total and self._in_flight >= self._total:
            raise GatewayError(
                "concurrency_limit", f"The gateway is serving its limit of {self._total} requests at once; retry "
                "shortly, or raise --max-concurrency.", retry_after=RETRY_AFTER_SECONDS,
            )  # fmt: skip
        tracked = key if self._per_key else None  # the key whose requests are counted, if any
        if tracked is not None and self._by_key[tracked] >= self._per_key:
            raise GatewayError(
                "key_concurrency_limit", f"This API key has {self._per_key} requests in flight, its limit; retry "
                "shortly, or raise --max-concurrency-per-key.", retry_after=RETRY_AFTER_SECONDS,
            )  # fmt: skip
        self._in_flight += 1
        if tracked is not None:
            self._by_key[tracked] += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if tracked is not None:
                self._by_key[tracked] -= 1
                if not self._by_key[tracked]:
                    del self._by_key[tracked]
