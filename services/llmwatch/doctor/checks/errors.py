"""What users got back: 5xx answers, and successful answers with nothing in them."""

from __future__ import annotations

from llmwatch.doctor.checks import queries as q
from llmwatch.doctor.checks.base import Check, ev, volume_gate
from llmwatch.doctor.context import ENGINE, GATEWAY, Context
from llmwatch.doctor.finding import Action, Finding


def server_errors(ctx: Context) -> Finding | None:
    w = ctx.window
    min_requests = ctx.threshold("threshold:gateway_ratio_min_requests_5m:min")
    ratio_max = ctx.threshold("threshold:gateway_5xx_ratio:max")
    if ctx.scraped(GATEWAY):
        total_q, errors_q = q.gateway_requests(w), q.gateway_requests(w, 'status=~"5.."')
    else:
        job = ctx.job(ENGINE)
        total_q, errors_q = q.engine_requests(w, job), q.engine_requests(w, job, 'status="5xx"')
    total = ctx.require(total_q, "requests")
    volume_gate(ctx, total, min_requests, "requests")
    errors = ctx.value(errors_q) or 0.0
    if errors / total <= ratio_max:
        return None
    evidence = [ev("5xx_ratio", errors / total, q.ratio(errors_q, total_q)), ev("5xx_requests", errors,
                errors_q), ctx.evidence("5xx_ratio_threshold", "threshold:gateway_5xx_ratio:max")]  # fmt: skip
    types_q = q.upstream_error_types(w)
    types = sorted(ctx.prom.query(types_q), key=lambda s: -s.value) if ctx.scraped(GATEWAY) else []
    for s in types:
        evidence.append(ev(f"upstream_errors{{error_type={s.labels.get('error_type')}}}", s.value, types_q))
    seen = ", ".join(f"{s.labels.get('error_type')} ({s.value:.0f})" for s in types) or "none recorded by the gateway"
    return Finding("server_errors", "critical", f"{errors / total:.0%} of requests failed with 5xx (target "
                   f"{ratio_max:.0%})", evidence, Action(
        f"Upstream error types seen: {seen}. Read the engine's log around them (`docker compose logs vllm`): an "
        "out-of-memory or a crash loop shows there; a timeout type points at --read-timeout of the gateway.",
    ))  # fmt: skip


def empty_responses(ctx: Context) -> Finding | None:
    w = ctx.window
    ok_q = q.gateway_requests(w, 'status=~"2.."')
    ok = ctx.require(ok_q, "successful requests")
    volume_gate(ctx, ok, ctx.threshold("threshold:gateway_ratio_min_requests_5m:min"), "successful requests")
    empty_q = q.empty_responses(w)
    empty = ctx.value(empty_q) or 0.0
    ratio_max = ctx.threshold("threshold:gateway_empty_ratio:max")
    if empty / ok <= ratio_max:
        return None
    evidence = [ev("empty_ratio", empty / ok, q.ratio(empty_q, ok_q)), ev("empty_responses", empty, empty_q),
                ctx.evidence("empty_ratio_threshold", "threshold:gateway_empty_ratio:max")]  # fmt: skip
    title = f"{empty / ok:.0%} of successful answers were empty (target {ratio_max:.0%})"
    if not ctx.scraped(ENGINE):
        return Finding("empty_responses", "warning", title, evidence, Action(
            "Without the engine's metrics the doctor cannot tell a reasoning cut off by max_tokens from an engine "
            "that returned nothing: the access log's finish_reason does (Kibana: empty responses)."))  # fmt: skip
    cut_q = q.finished_by_length(w)
    cut = ctx.value(cut_q) or 0.0
    evidence.append(ev("finished_by_length", cut, cut_q))
    if cut >= empty / 2:
        return Finding("empty_responses", "warning", title + ": reasoning cut off by max_tokens", evidence, Action(
            "The model spent the whole max_tokens budget thinking and never reached the answer. Raise the clients' "
            "max_tokens (Open WebUI: Advanced Params > Max Tokens); a reasoning answer often needs 1,000-2,000 "
            "tokens.", "max_tokens (request)", "2048",
        ))  # fmt: skip
    return Finding("empty_responses", "warning", title + ": the engine returned nothing", evidence, Action(
        "The engine finished normally with no text, not by hitting max_tokens. Check that the engine runs "
        "`--reasoning-parser deepseek_r1` and that the client reads `reasoning` as well as `content`; then the "
        "engine's log for the request ids in the access log.", "--reasoning-parser", "deepseek_r1",
    ))  # fmt: skip


SERVER_ERRORS = Check("server_errors", server_errors, (GATEWAY, ENGINE), "the error ratio")
EMPTY_RESPONSES = Check("empty_responses", empty_responses, (GATEWAY,), "empty answers")
