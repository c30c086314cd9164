"""Step/ramp: open-loop rates one after another, to find the highest rate that still meets the SLOs.

`locust -f loadtest/sweep.py --host URL --headless -u 64 --step-rates 1,2,3,4,6 --step-seconds 60`

Like vLLM's SLA sweep, each rate runs for a fixed time and is judged on the requests that started in it; the
report lists every step and marks the highest one that passed. `-u` is the number of users (concurrent request
slots): give it at least rate x longest answer time, or arrivals start late (the report counts them).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a locustfile: make the `loadtest` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locust import LoadTestShape, events

from loadtest import gate
from loadtest.locustfile import ChatUser, apply_rate

__all__ = ["ChatUser", "RateSteps"]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--step-rates", default="1,2,3,4,5,6", help="Open-loop rates (req/s) to step through.")
    parser.add_argument("--step-seconds", type=float, default=60.0, help="How long each rate runs.")


class RateSteps(LoadTestShape):
    use_common_options = True  # -u and -r size the pool of users; the rate comes from --step-rates

    def __init__(self) -> None:
        super().__init__()
        self._step = -1

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        environment = self.runner.environment
        options = environment.parsed_options
        assert options is not None
        try:
            rates = [float(r) for r in options.step_rates.split(",") if r.strip()]
        except ValueError:
            sys.stderr.write(f"--step-rates: expected numbers separated by commas, got {options.step_rates!r}\n")
            return None
        step = int(self.get_run_time() // options.step_seconds)
        if step >= len(rates):
            return None
        if step != self._step:
            self._step = step
            now = time.time()
            if gate.sweep_steps:
                gate.sweep_steps[-1]["end"] = now
            gate.sweep_steps.append({"rate": rates[step], "start": now, "end": math.inf})
            apply_rate(environment, rates[step])
        return options.num_users, options.spawn_rate
