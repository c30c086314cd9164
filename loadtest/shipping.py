"""A worker's samples to the master (Locust's messaging), in batches every FLUSH_SECONDS and a final one."""

from __future__ import annotations

from typing import Any

import gevent
from locust.env import Environment

from loadtest.arrivals import Arrivals
from loadtest.stream import Sample

SAMPLES_MSG = "llmwatch_samples"  # worker -> master: message(...)
FLUSH_SECONDS = 2.0
SAMPLES: list[Sample] = []  # this process's samples not yet sent to the master (all of them on a local run)


def take() -> list[dict[str, Any]]:
    """The samples not yet sent, on the wire, and none left behind."""
    batch = [s.to_wire() for s in SAMPLES]
    SAMPLES.clear()
    return batch


def message(batch: list[dict[str, Any]], arrivals: Arrivals, final: bool) -> dict[str, Any]:
    """What a process reports to the gate: its samples, and how its open-loop arrivals fared."""
    return {"samples": batch, "final": final, "late": arrivals.late, "dropped": arrivals.dropped}


def flush(environment: Environment, arrivals: Arrivals, final: bool) -> None:
    batch = take()
    if batch or final:
        assert environment.runner is not None
        environment.runner.send_message(SAMPLES_MSG, message(batch, arrivals, final))


def flush_forever(environment: Environment, arrivals: Arrivals) -> None:
    while True:
        gevent.sleep(FLUSH_SECONDS)
        if SAMPLES:
            flush(environment, arrivals, final=False)
