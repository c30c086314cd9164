"""The checks of the bottleneck path: each reads live metrics and returns a Finding, None (healthy) or raises Skip.

Every number a finding shows comes with the PromQL that produced it. Thresholds come from the first source that has
them (sources.py): the live `threshold:*` series the alerts compare with, a flag, the engine's own report, or the
stack's defaults; each threshold's evidence says which.
"""

from __future__ import annotations

from collections.abc import Callable

from llmwatch.doctor.context import ENGINE, ENGINE_INFO, GATEWAY, GPU, NODE, Context, Skip
from llmwatch.doctor.finding import Action, Evidence, Finding
from llmwatch.doctor.sources import recorded_expr
from llmwatch.vllm.model import FP16_WEIGHT_BYTES

Check = Callable[[Context], Finding | None]

USER = 'kind!="warmup"'  # the gateway's own warm-up requests are not user traffic
MIB = 1024 * 1024
FLOOR = "threshold:engine_stream_decode_tokens_per_second:min"
EFFECTIVE_FLOOR = FLOOR + "_effective"
GPU_CLASSES = "gpu_class:dcgm_gpus:count"
LLAMACPP = "llamacpp:requests_processing"  # a gauge every llama-server --metrics exposes
# The switch for a GPU too small for vLLM's FP16 weights: llama.cpp with CUDA on the Q4_K_M GGUF (docs/edge.md).
GPU_Q4 = "docker compose --profile gpu-q4 up -d"
# Cold start: the first requests after a restart took at least this many times the recent mean, and 0.1 s more.
COLD_FACTOR, COLD_EXTRA_S = 2.0, 0.1
# A prompt is "too long" when on average it takes this share of --max-model-len, leaving little room to reason.
PROMPT_SHARE = 0.5
# Queueing matters once requests wait, on average, this share of the TTFT target for a batch slot.
QUEUE_SHARE = 0.25


def _ev(name: str, value: float, query: str) -> Evidence:
    return Evidence(name, round(value, 4), query)


def target_down(ctx: Context) -> Finding | None:
    query = f"up{{{ctx.job(GATEWAY, ENGINE, GPU, NODE)}}} == 0"
    down = ctx.prom.query(query)
    evidence = [_ev(f"up{{job={s.labels.get('job')},instance={s.labels.get('instance')}}}", 0, query) for s in down]
    sim = ctx.value("count(llmwatch_sim_info)")
    # The stack's default (1) is no fact about another deployment: only a series or a flag says a GPU is expected.
    expected = ctx.thresholds.get("threshold:gpus_expected:min")
    gpu_expected = expected is not None and expected.source in ("rule", "flag") and expected.value > 0
    if not ctx.scraped(GPU) and not sim and gpu_expected:
        evidence.append(ctx.evidence("gpus_expected", "threshold:gpus_expected:min"))
        evidence.append(_ev("dcgm_targets", 0, f'count(up{{job="{GPU}"}})'))
    if not evidence:
        return None
    names = sorted({e.name.split(",")[0].removeprefix("up{job=") for e in evidence if e.name.startswith("up{")})
    if any(e.name == "dcgm_targets" for e in evidence):
        names.append("dcgm (no target while a GPU is expected)")
    return Finding("target_down", "critical", f"Not scraped: {', '.join(names)}", evidence, Action(
        "Every check that reads these metrics is blind until they are back. Check `docker compose ps` and the "
        "service's logs; for dcgm-exporter the NVIDIA driver and container toolkit. A CPU-only engine sets "
        "GPUS_EXPECTED=0 in .env.",
    ))  # fmt: skip


def cold_start(ctx: Context) -> Finding | None:
    ctx.need(ENGINE, "the engine's start time")
    uptime_q = f"time() - max(process_start_time_seconds{{{ctx.job(ENGINE)}}})"
    uptime = ctx.require(uptime_q, "the engine's process_start_time_seconds")
    if uptime > ctx.window_s:
        return None
    # Only samples of this process: the means since its start, the first of which are its first requests'.
    since_start = f"{int(uptime) + 1}s"
    mean = "sum(vllm:time_to_first_token_seconds_sum) / sum(vllm:time_to_first_token_seconds_count)"
    first_q = f"max_over_time(({mean})[{since_start}:])"
    first = ctx.value(first_q)
    # Against the requests of the later half of its life: warm by then, if ever.
    half = f"{max(2, int(uptime / 2))}s"
    recent_q = (f"sum(increase(vllm:time_to_first_token_seconds_sum[{half}])) "
                f"/ sum(increase(vllm:time_to_first_token_seconds_count[{half}]))")  # fmt: skip
    recent = ctx.value(recent_q)
    if first is None or recent is None or first < COLD_FACTOR * recent or first - recent < COLD_EXTRA_S:
        return None
    evidence = [_ev("engine_uptime_seconds", uptime, uptime_q), _ev("first_requests_mean_ttft_seconds", first, first_q),
                _ev("recent_mean_ttft_seconds", recent, recent_q)]  # fmt: skip
    if ctx.scraped(GATEWAY):
        # What users met since the start: the gateway's own warm-up requests are not theirs.
        users_q = (f"histogram_quantile(0.99, sum by (le) "
                   f"(increase(llmwatch_time_to_first_token_seconds_bucket{{{USER}}}[{since_start}])))")  # fmt: skip
        users = ctx.value(users_q)
        target = ctx.threshold("threshold:gateway_ttft_p99_seconds:max")
        if users is None or users <= target:
            if users is not None:
                evidence.append(_ev("user_ttft_p99_since_start_seconds", users, users_q))
                evidence.append(ctx.evidence("ttft_target_seconds", "threshold:gateway_ttft_p99_seconds:max"))
            return Finding("cold_start", "info", f"Engine restarted {uptime:.0f} s ago; its slow first requests were "
                           "not users' (the gateway's warm-up took them)", evidence, Action(
                "Nothing to do: users met a warm engine.", "llmwatch gateway --warmup", "as set"))  # fmt: skip
        evidence.append(_ev("user_ttft_p99_since_start_seconds", users, users_q))
        evidence.append(ctx.evidence("ttft_target_seconds", "threshold:gateway_ttft_p99_seconds:max"))
    return Finding("cold_start", "warning",
                   f"Engine restarted {uptime:.0f} s ago and its first requests waited {first:.2f} s for a first "
                   f"token on average, {first / recent:.1f}x the recent mean", evidence, Action(
        "The first requests after a start pay for CUDA graph capture and allocator warm-up. Let the gateway send "
        "a few short generations before it reports ready, so no user meets a cold engine "
        "(GATEWAY_WARMUP in .env, 2 by default in compose).", "llmwatch gateway --warmup", "2",
    ))  # fmt: skip


def prompt_too_long(ctx: Context) -> Finding | None:
    w = ctx.window
    max_len = ctx.threshold("threshold:engine_max_model_len:max")
    if ctx.scraped(ENGINE):
        mean_q = f"sum(rate(vllm:request_prompt_tokens_sum[{w}])) / sum(rate(vllm:request_prompt_tokens_count[{w}]))"
    else:
        ctx.need(GATEWAY, "the prompt length")
        mean_q = (f'sum(rate(llmwatch_tokens_total{{type="prompt",{USER}}}[{w}])) '
                  f'/ sum(rate(llmwatch_requests_total{{status=~"2..",{USER}}}[{w}]))')  # fmt: skip
    mean = ctx.require(mean_q, "prompt tokens")
    evidence = [_ev("mean_prompt_tokens", mean, mean_q), ctx.evidence("max_model_len",
                "threshold:engine_max_model_len:max")]  # fmt: skip
    rejected_q = f'sum(increase(llmwatch_requests_total{{status="400",{USER}}}[{w}]))'
    rejected = ctx.value(rejected_q) if ctx.scraped(GATEWAY) else None
    if rejected:
        evidence.append(_ev("rejected_400", rejected, rejected_q))
    if mean < PROMPT_SHARE * max_len:
        return None
    return Finding("prompt_too_long", "warning",
                   f"Prompts average {mean:.0f} tokens, {mean / max_len:.0%} of the {max_len:.0f}-token context",
                   evidence, Action(
        f"Long prompts (chat history) slow the prefill, and what is left of the context ({max_len - mean:.0f} tokens) "
        "is all the model has to reason and answer; past it the engine answers 400. Truncate the history in Open "
        "WebUI (Settings > Advanced Params > Context Length, or fewer messages per chat), or raise the engine's "
        "context if the KV cache has room (kv_cache_pressure stays quiet).", "--max-model-len", f"{int(max_len * 2)}",
    ))  # fmt: skip


def kv_cache_pressure(ctx: Context) -> Finding | None:
    ctx.need(ENGINE, "the KV cache")
    w = ctx.window
    usage_q = f"max(max_over_time(vllm:kv_cache_usage_perc[{w}]))"
    usage = ctx.require(usage_q, "vllm:kv_cache_usage_perc")
    preempt_q = f"sum(increase(vllm:num_preemptions_total[{w}]))"
    preempted = ctx.value(preempt_q) or 0.0
    usage_max = ctx.threshold("threshold:engine_kv_cache_usage_ratio:max")
    preempt_max = ctx.threshold("threshold:engine_preemptions_15m:max")
    if usage < usage_max and preempted <= preempt_max:
        return None
    seqs = ctx.threshold("threshold:engine_max_num_seqs:max")
    share = _engine_memory_share(ctx)
    return Finding("kv_cache_pressure", "warning",
                   f"KV cache peaked at {usage:.0%} with {preempted:.0f} preemptions in {w}", [
        _ev("kv_cache_usage_max", usage, usage_q), _ev("preemptions", preempted, preempt_q),
        ctx.evidence("kv_cache_usage_threshold", "threshold:engine_kv_cache_usage_ratio:max"),
        ctx.evidence("preemptions_threshold", "threshold:engine_preemptions_15m:max"),
        ctx.evidence("max_num_seqs", "threshold:engine_max_num_seqs:max"),
    ], Action(
        "When the cache is full vLLM preempts running sequences and recomputes them later (what is often called "
        "memory fragmentation): latency jumps. Run fewer sequences at once, or give the cache more room: lower "
        f"--max-model-len, raise --gpu-memory-utilization (now {share}) if nothing else shares the card, or serve "
        "a 4-bit model (AWQ) whose smaller weights leave ~2.5 GB more for the cache.",
        "--max-num-seqs", f"{max(1, int(seqs) // 2)}",
    ))  # fmt: skip


def queueing(ctx: Context) -> Finding | None:
    ctx.need(ENGINE, "the engine's queue")
    w = ctx.window
    waiting_max = ctx.threshold("threshold:engine_waiting_requests:max")
    seqs = ctx.threshold("threshold:engine_max_num_seqs:max")
    share_q = f"avg_over_time((sum(vllm:num_requests_waiting) > bool {waiting_max:g})[{w}:])"
    share = ctx.require(share_q, "vllm:num_requests_waiting")
    running_q = f"max_over_time(sum(vllm:num_requests_running)[{w}:])"
    running = ctx.value(running_q) or 0.0
    peak_q = f"max_over_time(sum(vllm:num_requests_waiting)[{w}:])"
    queue_q = (f"sum(rate(vllm:request_queue_time_seconds_sum[{w}])) "
               f"/ sum(rate(vllm:request_queue_time_seconds_count[{w}]))")  # fmt: skip
    queued = ctx.value(queue_q) or 0.0
    target = ctx.threshold("threshold:gateway_ttft_p99_seconds:max")
    # Requests that vLLM preempts wait again, but their first wait (what vLLM's queue time measures) is what a
    # user feels: queueing is about that, once every batch slot is busy.
    if running < seqs or queued < QUEUE_SHARE * target:
        return None
    usage_q = f"max(max_over_time(vllm:kv_cache_usage_perc[{w}]))"
    usage = ctx.value(usage_q)
    evidence = [_ev("mean_queue_seconds", queued, queue_q), _ev("waiting_share_of_window", share, share_q),
                _ev("waiting_peak", ctx.value(peak_q) or 0, peak_q),
                _ev("running_peak", running, running_q),
                ctx.evidence("max_num_seqs", "threshold:engine_max_num_seqs:max"),
                ctx.evidence("waiting_threshold", "threshold:engine_waiting_requests:max"),
                ctx.evidence("ttft_target_seconds", "threshold:gateway_ttft_p99_seconds:max")]  # fmt: skip
    roomy = usage is not None and usage < ctx.threshold("threshold:engine_kv_cache_usage_ratio:max") / 2
    if usage is not None:
        evidence.append(_ev("kv_cache_usage_max", usage, usage_q))
    if roomy:
        action = Action(f"Every batch slot is busy while the KV cache peaked at {usage:.0%}: more sequences fit in "
                        "memory. vLLM batches continuously, so a larger batch raises aggregate tokens/s at a small "
                        "cost per stream.", "--max-num-seqs", f"{int(seqs) * 2}")  # fmt: skip
    else:
        action = Action("Every batch slot is busy and the KV cache has no room for more: add a replica (another GPU "
                        "or server behind the gateway's --upstream) rather than a larger batch.")  # fmt: skip
    return Finding("queueing", "warning", f"Requests waited {queued:.2f} s on average for one of the {seqs:.0f} "
                   f"batch slots (--max-num-seqs), all busy; requests were waiting {share:.0%} of the window", evidence,
                   action)  # fmt: skip


def decode_slow(ctx: Context) -> Finding | None:
    w = ctx.window
    if ctx.scraped(ENGINE):
        speed_q = (f"sum(rate(vllm:inter_token_latency_seconds_count[{w}])) "
                   f"/ sum(rate(vllm:inter_token_latency_seconds_sum[{w}]))")  # fmt: skip
    else:
        ctx.need(GATEWAY, "the decode speed")
        speed_q = (f"sum(rate(llmwatch_time_per_output_token_seconds_count{{{USER}}}[{w}])) "
                   f"/ sum(rate(llmwatch_time_per_output_token_seconds_sum{{{USER}}}[{w}]))")  # fmt: skip
    speed = ctx.require(speed_q, "streamed tokens")
    floor, cards = _decode_floor(ctx)
    if speed >= floor.value:
        return None
    card = ", ".join(cards) or "no GPU reported (the `default` floor)"
    return Finding("decode_slow", "warning", f"One stream decodes {speed:.0f} tokens/s, below the {floor.value:.0f} "
                   f"tokens/s this GPU should give ({card})", [
        _ev("stream_decode_tokens_per_second", speed, speed_q), floor,
    ], Action(
        "Decoding one stream reads every weight once per token, so it is bounded by memory bandwidth / 3.56 GB "
        "(RTX 3060 ~100 tokens/s, RTX 4090 ~280, H100 ~850); the floor is 40% of that. Below it: look for "
        "GPUThrottling / GPUHot alerts or another process on the card, then for --enforce-eager in the engine's "
        "extra flags (compose sets it only through VLLM_EXTRA_ARGS; CUDA graphs off costs 2-3x per token).",
        "--enforce-eager", "off (compose's default; drop it from VLLM_EXTRA_ARGS if added)",
    ))  # fmt: skip


def server_errors(ctx: Context) -> Finding | None:
    w = ctx.window
    min_requests = ctx.threshold("threshold:gateway_ratio_min_requests_5m:min")
    ratio_max = ctx.threshold("threshold:gateway_5xx_ratio:max")
    if ctx.scraped(GATEWAY):
        total_q = f"sum(increase(llmwatch_requests_total{{{USER}}}[{w}]))"
        errors_q = f'sum(increase(llmwatch_requests_total{{status=~"5..",{USER}}}[{w}]))'
    else:
        ctx.need(ENGINE, "the error ratio")
        total_q = f'sum(increase(http_requests_total{{{ctx.job(ENGINE)},handler=~"/v1/.+"}}[{w}]))'
        errors_q = f'sum(increase(http_requests_total{{{ctx.job(ENGINE)},handler=~"/v1/.+",status="5xx"}}[{w}]))'
    total = ctx.require(total_q, "requests")
    _volume_gate(ctx, total, min_requests, "requests")
    errors = ctx.value(errors_q) or 0.0
    if errors / total <= ratio_max:
        return None
    evidence = [_ev("5xx_ratio", errors / total, f"({errors_q}) / ({total_q})"), _ev("5xx_requests", errors,
                errors_q), ctx.evidence("5xx_ratio_threshold", "threshold:gateway_5xx_ratio:max")]  # fmt: skip
    types_q = f"sum by (error_type) (increase(llmwatch_upstream_errors_total[{w}])) > 0"
    types = sorted(ctx.prom.query(types_q), key=lambda s: -s.value) if ctx.scraped(GATEWAY) else []
    for s in types:
        evidence.append(_ev(f"upstream_errors{{error_type={s.labels.get('error_type')}}}", s.value, types_q))
    seen = ", ".join(f"{s.labels.get('error_type')} ({s.value:.0f})" for s in types) or "none recorded by the gateway"
    return Finding("server_errors", "critical", f"{errors / total:.0%} of requests failed with 5xx (target "
                   f"{ratio_max:.0%})", evidence, Action(
        f"Upstream error types seen: {seen}. Read the engine's log around them (`docker compose logs vllm`): an "
        "out-of-memory or a crash loop shows there; a timeout type points at --read-timeout of the gateway.",
    ))  # fmt: skip


def empty_responses(ctx: Context) -> Finding | None:
    ctx.need(GATEWAY, "empty answers")
    w = ctx.window
    ok_q = f'sum(increase(llmwatch_requests_total{{status=~"2..",{USER}}}[{w}]))'
    ok = ctx.require(ok_q, "successful requests")
    _volume_gate(ctx, ok, ctx.threshold("threshold:gateway_ratio_min_requests_5m:min"), "successful requests")
    empty_q = f"sum(increase(llmwatch_empty_responses_total{{{USER}}}[{w}]))"
    empty = ctx.value(empty_q) or 0.0
    ratio_max = ctx.threshold("threshold:gateway_empty_ratio:max")
    if empty / ok <= ratio_max:
        return None
    evidence = [_ev("empty_ratio", empty / ok, f"({empty_q}) / ({ok_q})"), _ev("empty_responses", empty, empty_q),
                ctx.evidence("empty_ratio_threshold", "threshold:gateway_empty_ratio:max")]  # fmt: skip
    title = f"{empty / ok:.0%} of successful answers were empty (target {ratio_max:.0%})"
    if not ctx.scraped(ENGINE):
        return Finding("empty_responses", "warning", title, evidence, Action(
            "Without the engine's metrics the doctor cannot tell a reasoning cut off by max_tokens from an engine "
            "that returned nothing: the access log's finish_reason does (Kibana: empty responses)."))  # fmt: skip
    cut_q = f'sum(increase(vllm:request_success_total{{finished_reason="length"}}[{w}]))'
    cut = ctx.value(cut_q) or 0.0
    evidence.append(_ev("finished_by_length", cut, cut_q))
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


def gpu_memory(ctx: Context) -> Finding | None:
    used_q = "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)"
    total_q = "(DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) * 1048576"
    gpus = ctx.prom.query(used_q)
    if not gpus:
        raise Skip("no dcgm-exporter framebuffer metrics (a CPU engine, the simulator, or dcgm-exporter not scraped)")
    used = max(s.value for s in gpus)
    card = max(s.value for s in ctx.prom.query(total_q))
    # llama.cpp publishes no cache config and preallocates no share of the card: judge what it uses.
    if ctx.value(f"count({ENGINE_INFO})") is None and ctx.value(f"count({LLAMACPP})"):
        return _llamacpp_memory(ctx, used, used_q, card, total_q)
    share = ctx.limit("threshold:gpu_vllm_memory_share:max")
    margin = ctx.threshold("threshold:gpu_memory_margin_ratio:max")
    evidence = [_ev("fb_used_ratio", used, f"max({used_q})"),
                ctx.evidence("vllm_memory_share", "threshold:gpu_vllm_memory_share:max"),
                ctx.evidence("margin", "threshold:gpu_memory_margin_ratio:max")]  # fmt: skip
    budget = ctx.optional_threshold("threshold:kpi_gpu_memory_bytes:max")
    over_share = used > share.value + margin
    over_budget = budget is not None and share.value * card > budget
    if budget is not None:
        evidence += [_ev("card_bytes", card, f"max({total_q})"), ctx.evidence("budget_bytes",
                     "threshold:kpi_gpu_memory_bytes:max")]  # fmt: skip
    if not over_share and not over_budget:
        return None
    four_bit = (f"a 4-bit model holds its weights in ~1.2 GB: the `gpu-q4` profile (`{GPU_Q4}`: llama.cpp with CUDA "
                "on the Q4_K_M GGUF, docs/edge.md), or AWQ on vLLM (--quantization awq)")  # fmt: skip
    if over_share:
        return Finding("gpu_memory", "warning", f"GPU memory {used:.0%} in use, beyond vLLM's preallocated "
                       f"{share.value:.0%} + {margin:.0%} margin", evidence, Action(
            "vLLM takes --gpu-memory-utilization of the card up front, so use near it is expected; more means "
            "another process (see `nvidia-smi`) or a leak. Lower the engine's share if the card is shared; if the "
            f"card is too small for vLLM, {four_bit}.", "--gpu-memory-utilization",
            f"{max(0.1, share.value - (used - share.value)):.2f}",
        ))  # fmt: skip
    assert budget is not None
    title = (f"vLLM preallocates {share.value * card / 1e9:.1f} GB, beyond the GPU-memory budget of "
             f"{budget / 1e9:.1f} GB in the operator's KPI targets")  # fmt: skip
    if budget < FP16_WEIGHT_BYTES:
        return Finding("gpu_memory", "info", title, evidence, Action(
            f"The FP16 weights alone are 3.56 GB, so vLLM cannot meet this budget with them: {four_bit}.",
            GPU_Q4))  # fmt: skip
    return Finding("gpu_memory", "info", title, evidence, Action(
        "Set the engine's share to the budget.", "--gpu-memory-utilization", f"{budget / card:.2f}"))  # fmt: skip


def _llamacpp_memory(ctx: Context, used: float, used_q: str, card: float, total_q: str) -> Finding | None:
    """llama.cpp as the engine: the card nearly full, or more in use than the operator's GPU-memory budget."""
    bytes_q = f"max(DCGM_FI_DEV_FB_USED) * {MIB}"
    used_bytes = ctx.value(bytes_q) or used * card
    margin = ctx.threshold("threshold:gpu_memory_margin_ratio:max")
    budget = ctx.optional_threshold("threshold:kpi_gpu_memory_bytes:max")
    engines = ctx.value(f"count({LLAMACPP})") or 0.0
    evidence = [_ev("fb_used_ratio", used, f"max({used_q})"), _ev("fb_used_bytes", used_bytes, bytes_q),
                _ev("card_bytes", card, f"max({total_q})"), _ev("llamacpp_engines", engines, f"count({LLAMACPP})"),
                ctx.evidence("margin", "threshold:gpu_memory_margin_ratio:max")]  # fmt: skip
    if budget is not None:
        evidence.append(ctx.evidence("budget_bytes", "threshold:kpi_gpu_memory_bytes:max"))
    if used > 1 - margin:
        return Finding("gpu_memory", "warning", f"GPU memory {used:.0%} in use with llama.cpp as the engine: less "
                       f"than the {margin:.0%} margin left", evidence, Action(
            "llama.cpp allocates the offloaded weights (--n-gpu-layers) and the KV cache of every slot (--parallel "
            "x the context per slot) when it starts; a card this full has another process on it (see `nvidia-smi`) "
            "or too much context. Lower LLAMA_CTX_SIZE or LLAMA_PARALLEL in .env.", "--parallel",
            "fewer slots (LLAMA_PARALLEL)",
        ))  # fmt: skip
    if budget is None or used_bytes <= budget:
        return None
    return Finding("gpu_memory", "warning", f"llama.cpp uses {used_bytes / 1e9:.2f} GB of GPU memory, beyond the "
                   f"{budget / 1e9:.1f} GB budget of the operator's KPI targets", evidence, Action(
        "llama.cpp holds the weights plus the KV cache of every slot. FP16 weights alone are 3.56 GB; the Q4_K_M "
        f"GGUF of the `gpu-q4` profile (`{GPU_Q4}`) holds them in ~1.1 GB (docs/edge.md has its measured use). "
        "With Q4_K_M already, lower the context per slot (LLAMA_CTX_SIZE) or the slots (LLAMA_PARALLEL).",
        "LLAMA_MODEL_FILE", "a Q4_K_M GGUF",
    ))  # fmt: skip


def ttft_high(ctx: Context, causes: list[Finding]) -> Finding | None:
    w = ctx.window
    if ctx.scraped(GATEWAY):
        p99_q = (f"histogram_quantile(0.99, sum by (le) "
                 f"(rate(llmwatch_time_to_first_token_seconds_bucket{{{USER}}}[{w}])))")  # fmt: skip
    else:
        ctx.need(ENGINE, "TTFT")
        p99_q = f"histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[{w}])))"
    p99 = ctx.require(p99_q, "streamed requests (TTFT)")
    target = ctx.threshold("threshold:gateway_ttft_p99_seconds:max")
    if p99 <= target:
        return None
    evidence = [_ev("ttft_p99_seconds", p99, p99_q), ctx.evidence("ttft_target_seconds",
                "threshold:gateway_ttft_p99_seconds:max")]  # fmt: skip
    explaining = [f for f in causes if f.id in TTFT_CAUSES and f.severity != "info"]
    cause = min(explaining, key=lambda f: TTFT_CAUSES.index(f.id)) if explaining else None
    title = f"TTFT p99 {p99:.2f} s is over the {target:.2f} s target"
    if cause is not None:
        return Finding("ttft_high", "warning", f"{title}: explained by {cause.id}", evidence, Action(
            f"Fix {cause.id} (listed just above): {cause.action.flag or 'see its action'} "
            f"{cause.action.value or ''}".rstrip() + "."), explained_by=cause.id)  # fmt: skip
    return Finding("ttft_high", "warning", f"{title}: no cause found on the path", evidence, Action(
        "None of cold start, queueing, KV-cache pressure or long prompts applies. Compare the engine's own TTFT "
        "(vllm:time_to_first_token_seconds) with the gateway's: a gap is the network or the gateway; otherwise look "
        "for GPUThrottling / GPUHot and another process on the card."))  # fmt: skip


# The findings that delay a first token, most specific first.
TTFT_CAUSES = ("cold_start", "queueing", "kv_cache_pressure", "prompt_too_long")
CHECKS: list[tuple[str, Check]] = [
    ("target_down", target_down), ("cold_start", cold_start), ("prompt_too_long", prompt_too_long),
    ("kv_cache_pressure", kv_cache_pressure), ("queueing", queueing), ("decode_slow", decode_slow),
    ("server_errors", server_errors), ("empty_responses", empty_responses), ("gpu_memory", gpu_memory),
]  # fmt: skip


def _volume_gate(ctx: Context, count: float, per_5m: float, what: str) -> None:
    """The alerts' gate: a ratio needs this many requests per 5 minutes at the window's rate (1 of 3 is no outage)."""
    if count / ctx.window_s * 300 < per_5m:
        raise Skip(f"only {count:.0f} {what} in the last {ctx.window}; a ratio needs {per_5m:.0f} per 5 minutes")


def _engine_memory_share(ctx: Context) -> str:
    try:
        return f"{ctx.threshold('threshold:gpu_vllm_memory_share:max'):.2f}"
    except Skip:
        return "unknown"


def _decode_floor(ctx: Context) -> tuple[Evidence, list[str]]:
    """The per-stream decode floor in force, and the GPU classes present: the live `min_effective` series, else
    thresholds.yml's rule for it evaluated here (the lowest floor among the GPUs present, else `default`)."""
    classes = ctx.prom.query(GPU_CLASSES) or ctx.prom.query(recorded_expr(GPU_CLASSES))
    cards = sorted({s.labels.get("gpu_class", "") for s in classes})
    if ctx.thresholds.get(EFFECTIVE_FLOOR) is not None:
        return ctx.evidence("floor_tokens_per_second", EFFECTIVE_FLOOR), cards
    known = [c for c in cards if ctx.thresholds.get(FLOOR, gpu_class=c) is not None]
    gpu_class = min(known, key=lambda c: ctx.threshold(FLOOR, gpu_class=c)) if known else "default"
    floor = ctx.evidence("floor_tokens_per_second", FLOOR, gpu_class=gpu_class)
    return Evidence(floor.name, floor.value, f'{floor.query}{{gpu_class="{gpu_class}"}}', floor.source), cards
