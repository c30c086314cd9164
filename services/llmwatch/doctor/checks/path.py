"""The bottleneck path, declared once: the checks in the order they run and their findings are listed in.

Each check reads live metrics and returns a Finding, None (healthy) or raises Skip.

Every number a finding shows comes with the PromQL that produced it (queries.py). Thresholds come from the first
source that has them (sources.py): the live `threshold:*` series the alerts compare with, a flag, the engine's own
report, or the stack's defaults; each threshold's evidence says which.

PATH is the one declaration of the path's order: the order the checks run in, the order findings of one severity
are listed in, and the order of docs/doctor.md's table (a test holds the docs to it). The symptom (ttft_high) comes
last, as it reads the findings before it.
"""

from __future__ import annotations

from llmwatch.doctor.checks.base import Check
from llmwatch.doctor.checks.capacity import ENGINE_FRONT_CPU, KV_CACHE_PRESSURE, PROMPT_TOO_LONG, QUEUEING
from llmwatch.doctor.checks.errors import EMPTY_RESPONSES, SERVER_ERRORS
from llmwatch.doctor.checks.gpu import GPU_MEMORY
from llmwatch.doctor.checks.latency import COLD_START, DECODE_SLOW, TTFT_HIGH
from llmwatch.doctor.checks.targets import TARGET_DOWN

PATH: tuple[Check, ...] = (
    TARGET_DOWN, COLD_START, PROMPT_TOO_LONG, KV_CACHE_PRESSURE, QUEUEING, ENGINE_FRONT_CPU, DECODE_SLOW,
    SERVER_ERRORS, EMPTY_RESPONSES, GPU_MEMORY, TTFT_HIGH,
)  # fmt: skip
