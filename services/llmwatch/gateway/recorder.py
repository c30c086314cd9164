"""Records each finished request: exactly one access-log line and its metric updates, both from one Outcome."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from llmwatch.gateway.access_log import AccessLog
from llmwatch.gateway.errors import ERRORS
from llmwatch.gateway.facts import RequestFacts
from llmwatch.gateway.log_line import log_line
from llmwatch.gateway.metrics import OTHER_MODEL, GatewayMetrics
from llmwatch.gateway.outcome import Outcome, outcome
from llmwatch.gateway.upstreams import UpstreamPool

log = logging.getLogger(__name__)

MAX_LEARNED_MODELS = 32
# OpenMetrics caps an exemplar's label names and values at 128 characters together; a longer client-sent id gets no
# exemplar rather than a cut one that names another request.
MAX_EXEMPLAR_ID = 128 - len("request_id")


class OutcomeRecorder:
    """Turns a finished request's facts into its Outcome, then its access-log line and its metric updates."""

    def __init__(
        self, metrics: GatewayMetrics, access_log: AccessLog, pool: UpstreamPool, content_chars: int | None
    ) -> None:
        self._metrics = metrics
        self._log = access_log
        self._pool = pool
        self._content_chars = content_chars
        self._children: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}  # as many as the metric has series
        self._learned: set[str] = set()

    def record(self, facts: RequestFacts) -> Outcome:
        """Write the line and update the metrics. Never raises: a failing step is logged and counted, and the line
        is written even so (without the accounting, if that is what failed)."""
        ended = time.perf_counter()
        keep = self._content_chars is not None
        try:
            if facts.acct is not None:
                facts.acct.finish()
            result = outcome(facts, ended, keep)
            line = log_line(result, self._content_chars or 0)
        except Exception:
            # What the request's accounting gathered broke the outcome: the line goes out without it.
            self._failed("outcome", facts)
            facts.acct = None
            result = outcome(facts, ended, keep)
            line = log_line(result, self._content_chars or 0)
        try:
            self._log.write(line)
        except Exception:
            self._failed("log_line", facts)
        try:
            self._observe(result)
        except Exception:
            self._failed("metrics", facts)
        return result

    def _failed(self, step: str, facts: RequestFacts) -> None:
        log.exception("reporting request %s failed at %s", facts.request_id, step)
        with contextlib.suppress(Exception):  # nothing left to tell: the traceback above is logged
            self._metrics.report_failures.labels(step).inc()

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

    def _observe(self, o: Outcome) -> None:
        model = self._model_label(o.model, o.status)
        key = (model, o.kind)
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
        requests = self._requests.get((model, o.kind, o.status))
        if requests is None:
            requests = self._requests[model, o.kind, o.status] = m.requests.labels(model, o.kind, str(o.status))
        requests.inc()
        # The request's id as an exemplar: Grafana links a latency dot to this request's line in Kibana.
        exemplar = {"request_id": o.request_id} if len(o.request_id) <= MAX_EXEMPLAR_ID else None
        duration.observe(o.duration, exemplar)
        if o.ttft is not None:
            ttft.observe(o.ttft, exemplar)
        if o.tpot is not None:
            tpot.observe(o.tpot)
        if o.prompt_tokens:
            prompt.inc(o.prompt_tokens)
        if o.completion_tokens:
            completion.inc(o.completion_tokens)
        if o.reasoning_tokens:
            reasoning.inc(o.reasoning_tokens)
        if o.empty:
            empty.inc()
        if o.answer_kind is not None:
            m.answers.labels(model, o.kind, o.answer_kind).inc()
        for field in o.anomalies:
            m.engine_anomalies.labels(field).inc()
        if o.error_type is not None:
            m.errors.labels(model, o.kind, o.error_type).inc()
            if ERRORS[o.error_type].upstream_failure and o.upstream is not None:
                m.upstream_errors.labels(o.upstream, o.error_type).inc()
