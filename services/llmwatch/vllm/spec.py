"""How llmwatch describes one Prometheus family that vLLM exposes (metrics.py and http_metrics.py list them).

``name`` is the name given to prometheus_client (a counter is exposed as ``name + "_total"``). ``values`` are
the values of the last label for which vLLM creates a series at start, so they read 0 before any traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmwatch.vllm.buckets import build_1_2_5_buckets

MetricType = Literal["counter", "gauge", "histogram", "summary"]
ENGINE_LABELS = ("model_name", "engine")
BUCKETS_1_2_5 = "1-2-5 up to max_model_len"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: MetricType
    documentation: str
    labels: tuple[str, ...] = ENGINE_LABELS
    buckets: tuple[float, ...] | str | None = None
    values: tuple[str, ...] = ()

    @property
    def exposed_name(self) -> str:
        return self.name + "_total" if self.type == "counter" else self.name


def histogram_buckets(spec: MetricSpec, max_model_len: int) -> tuple[float, ...]:
    if spec.buckets == BUCKETS_1_2_5:
        return build_1_2_5_buckets(max_model_len)
    if isinstance(spec.buckets, tuple):
        return spec.buckets
    raise ValueError(f"{spec.name} is not a histogram")
