"""One request's results, derived once from its facts, in base units (seconds, tokens).

The access-log line and the metrics both read an Outcome; only the log line rounds (to milliseconds) and formats.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmwatch.answers import AnswerKind, is_empty
from llmwatch.gateway.errors import ErrorTypeName
from llmwatch.gateway.facts import RequestFacts


@dataclass(frozen=True, slots=True)
class Outcome:
    request_id: str
    started_wall: float
    method: str
    path: str
    model: str | None
    kind: str
    stream: bool
    status: int
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    answer_tokens: int | None
    total_tokens: int | None
    duration: float
    ttft: float | None
    time_to_answer: float | None
    tpot: float | None
    tokens_per_s: float | None
    finish_reason: str | None
    empty: bool
    answer_kind: AnswerKind | None  # successful generations only
    tool_calls: int | None  # null when the engine generated nothing
    tool_names: tuple[str, ...]
    tools_offered: bool
    response_format: str | None
    json_valid: bool | None
    error_type: ErrorTypeName | None
    error_message: str | None
    upstream: str | None
    client_ip: str | None
    user: str | None
    user_agent: str | None
    client_request_id: str | None = None
    anomalies: tuple[str, ...] = ()  # engine protocol violations (usage.py), counted in the metrics
    # llama.cpp's own per-token times (its `timings`), when the engine sent them.
    engine_prompt_per_token: float | None = None
    engine_predicted_per_token: float | None = None
    # Texts, only when the operator opted in to logging them (--log-content).
    prompt: str | None = None
    reasoning: str | None = None
    completion: str | None = None


def outcome(facts: RequestFacts, ended: float, keep_texts: bool) -> Outcome:
    """The results of a finished request. Pure: reads ``facts`` (whose accounting is settled), changes nothing."""
    acct = facts.acct
    duration = ended - facts.started
    prompt = completion = reasoning = total = None
    ttft = answer = tpot = rate = None
    finish = None
    empty = False
    kind: AnswerKind | None = None
    calls: int | None = None
    names: tuple[str, ...] = ()
    json_ok = None
    prompt_pt = predicted_pt = None
    if acct is not None:
        prompt, completion, reasoning, total = acct.token_counts(facts.stream)
        finish = acct.finish_reason
        if facts.stream and acct.first_token_at is not None:
            ttft = acct.first_token_at - facts.started
            if acct.answer_at is not None:
                answer = acct.answer_at - facts.started
            if completion is not None and completion > 1 and duration > ttft:
                tpot = (duration - ttft) / (completion - 1)
                rate = 1.0 / tpot
        elif not facts.stream and completion and duration > 0:
            rate = completion / duration
        if 200 <= facts.status < 300:
            kind = acct.answer_kind(completion)
            empty = is_empty(kind)
            json_ok = acct.json_valid()
        if acct.generated:
            calls, names = acct.tool_calls, tuple(acct.tool_names)
        prompt_pt, predicted_pt = acct.engine_per_token_seconds()
    texts = keep_texts and acct is not None
    return Outcome(
        request_id=facts.request_id,
        started_wall=facts.started_wall,
        method=facts.method,
        path=facts.path,
        model=facts.model,
        kind=facts.kind,
        stream=facts.stream,
        status=facts.status,
        prompt_tokens=prompt,
        completion_tokens=completion,
        reasoning_tokens=reasoning,
        answer_tokens=None if completion is None or reasoning is None else completion - reasoning,
        total_tokens=total,
        duration=duration,
        ttft=ttft,
        time_to_answer=answer,
        tpot=tpot,
        tokens_per_s=rate,
        finish_reason=finish,
        empty=empty,
        answer_kind=kind,
        tool_calls=calls,
        tool_names=names,
        tools_offered=facts.tools_offered,
        response_format=facts.response_format,
        json_valid=json_ok,
        error_type=facts.error_type,
        error_message=facts.error_message,
        upstream=facts.upstream,
        client_ip=facts.client_ip,
        user=facts.user,
        user_agent=facts.user_agent,
        client_request_id=facts.client_request_id,
        anomalies=tuple(acct.anomalies) if acct is not None else (),
        engine_prompt_per_token=prompt_pt,
        engine_predicted_per_token=predicted_pt,
        prompt=facts.prompt_text if keep_texts else None,
        reasoning="".join(acct.reasoning_text) if texts and acct is not None else None,
        completion="".join(acct.answer_text) if texts and acct is not None else None,
    )
