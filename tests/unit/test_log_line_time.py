"""The access-log line's `time` (gateway/log_line.py): UTC to the millisecond, whichever second came before."""

from __future__ import annotations

import datetime as dt

import pytest

from llmwatch.gateway.log_line import iso_utc_ms

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "epochs",
    [
        [1764236400.123, 1764236400.999, 1764236401.0, 1764236400.5],  # back to an earlier second after a later one
        [0.0, 0.001, 86399.999, 86400.0],  # the epoch, a day's last millisecond, the next day
        [1767225599.9996, 1767225600.0004],  # a year's end: truncated, never rounded up into the next second
    ],
)
def test_time_is_utc_to_the_millisecond_in_any_order(epochs: list[float]) -> None:
    for epoch in epochs:
        whole = dt.datetime.fromtimestamp(int(epoch), dt.UTC)
        millis = int((epoch - int(epoch)) * 1000)
        assert iso_utc_ms(epoch) == f"{whole:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z", epoch
