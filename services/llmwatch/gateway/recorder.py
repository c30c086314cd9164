"""Turns a finished RequestRecord into its one access-log line and its metric updates."""

from __future__ import annotations

import time
from typing import Any

from llmwatch.gateway.access_log import AccessLog
from llmwatch.gateway.metrics import OTHER_MODEL, GatewayMetrics
from llmwatch.gateway.record import RequestRecord
from llmwatch.gateway.upstreams import UpstreamPool

MAX_LEARNED_MODELS = 32


class Recorder:
    def __init__(
        self, metrics: GatewayMetrics, access_log: AccessLog, pool: UpstreamPool, content_chars: int | None
    ) -> None:
        self._metrics = metrics
        self._log = access_log
        self._pool = pool
        self._content_chars = content_chars
        self._children: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._learned: set[str] = set()

    def record(self, rec: RequestRecord) -> None:
        line = rec.line(time.perf_counter(), self._content_chars)
        self._log.write(line)
        self._observe(rec, line)

    def _model_label(self, model: str | None, status: int) -> str:
        # Bounded: only names the upstream serves (from /v1/models, or that it just answered 2xx for).
        if model is None:
            return OTHER_MODEL
        if model in self._learned or self._pool.known_model(model):
            return model
        if 200 <= status < 300 and len(self._learned) < MAX_LEARNED_MODELS:
            self._learned.add(model)
            return model
        return OTHER_MODEL

    def _observe(self, rec: RequestRecord, line: dict[str, Any]) -> None:
        model = self._model_label(rec.model, rec.status)
        key = (model, rec.kind)
        children = self._children.get(key)
        m = self._metrics
        if children is None:
            children = (
                m.duration.labels(*key),
                m.ttft.labels(*key),
                m.tpot.labels(*key),
                m.tokens.labels(*key, "prompt"),
                m.tokens.labels(*key, "completion"),
                m.tokens.labels(*key, "reasoning"),
                m.empty.labels(*key),
            )
            self._children[key] = children
        duration, ttft, tpot, prompt, completion, reasoning, empty = children
        m.requests.labels(model, rec.kind, str(rec.status)).inc()
        duration.observe(line["duration_ms"] / 1000.0)
        if line["ttft_ms"] is not None:
            ttft.observe(line["ttft_ms"] / 1000.0)
        if line["tpot_ms"] is not None:
            tpot.observe(line["tpot_ms"] / 1000.0)
        if line["prompt_tokens"]:
            prompt.inc(line["prompt_tokens"])
        if line["completion_tokens"]:
            completion.inc(line["completion_tokens"])
        if line["reasoning_tokens"]:
            reasoning.inc(line["reasoning_tokens"])
        if line["empty_response"]:
            empty.inc()
        if rec.error_type is not None and rec.error_type.startswith("upstream") and rec.upstream is not None:
            m.upstream_errors.labels(rec.upstream, rec.error_type).inc()
