"""What a user waits for: a cold engine's first tokens, one stream's decode speed, and TTFT with its cause."""

from __future__ import annotations

from llmwatch.doctor.checks import queries as q
from llmwatch.doctor.checks.base import Check, ev
from llmwatch.doctor.context import ENGINE, GATEWAY, Context
from llmwatch.doctor.finding import Action, CheckId, Evidence, Finding
from llmwatch.doctor.sources import recorded_expr
from llmwatch.vllm.model import FP16_WEIGHT_BYTES

# Cold start: the first requests after a restart took at least this many times the recent mean, and 0.1 s more.
COLD_FACTOR, COLD_EXTRA_S = 2.0, 0.1
FLOOR = "threshold:engine_stream_decode_tokens_per_second:min"
EFFECTIVE_FLOOR = FLOOR + "_effective"
# The findings that delay a first token, most specific first.
TTFT_CAUSES: tuple[CheckId, ...] = (
    "cold_start",
    "queueing",
    "engine_front_cpu",
    "kv_cache_pressure",
    "prompt_too_long",
)


def cold_start(ctx: Context) -> Finding | None:
    uptime_q = q.uptime(ctx.job(ENGINE))
    uptime = ctx.require(uptime_q, "the engine's start (process_start_time_seconds, or vllm-processes' API servers)")
    if uptime > ctx.window_s:
        return None
    # Only samples of this process: the means since its start, the first of which are its first requests'.
    since_start = f"{int(uptime) + 1}s"
    first_q = q.first_mean_ttft(since_start)
    first = ctx.value(first_q)
    # Against the requests of the later half of its life: warm by then, if ever.
    recent_q = q.mean_ttft(f"{max(2, int(uptime / 2))}s")
    recent = ctx.value(recent_q)
    if first is None or recent is None or first < COLD_FACTOR * recent or first - recent < COLD_EXTRA_S:
        return None
    evidence = [ev("engine_uptime_seconds", uptime, uptime_q), ev("first_requests_mean_ttft_seconds", first, first_q),
                ev("recent_mean_ttft_seconds", recent, recent_q)]  # fmt: skip
    if ctx.scraped(GATEWAY):
        # What users met since the start: the gateway's own warm-up requests are not theirs.
        users_q = q.user_ttft_p99_increase(since_start)
        users = ctx.value(users_q)
        target = ctx.threshold("threshold:gateway_ttft_p99_seconds:max")
        if users is None or users <= target:
            if users is not None:
                evidence.append(ev("user_ttft_p99_since_start_seconds", users, users_q))
                evidence.append(ctx.evidence("ttft_target_seconds", "threshold:gateway_ttft_p99_seconds:max"))
            return Finding("cold_start", "info", f"Engine restarted {uptime:.0f} s ago; its slow first requests were "
                           "not users' (the gateway's warm-up took them)", evidence, Action(
                "Nothing to do: users met a warm engine.", "llmwatch gateway --warmup", "as set"))  # fmt: skip
        evidence.append(ev("user_ttft_p99_since_start_seconds", users, users_q))
        evidence.append(ctx.evidence("ttft_target_seconds", "threshold:gateway_ttft_p99_seconds:max"))
    return Finding("cold_start", "warning",
                   f"Engine restarted {uptime:.0f} s ago and its first requests waited {first:.2f} s for a first "
                   f"token on average, {first / recent:.1f}x the recent mean", evidence, Action(
        "The first requests after a start pay for CUDA graph capture and allocator warm-up. Let the gateway send "
        "a few short generations before it reports ready, so no user meets a cold engine "
        "(GATEWAY_WARMUP in .env, 2 by default in compose).", "llmwatch gateway --warmup", "2",
    ))  # fmt: skip


def decode_slow(ctx: Context) -> Finding | None:
    w = ctx.window
    speed_q = q.engine_stream_speed(w) if ctx.scraped(ENGINE) else q.gateway_stream_speed(w)
    speed = ctx.require(speed_q, "streamed tokens")
    floor, cards = _decode_floor(ctx)
    if speed >= floor.value:
        return None
    card = ", ".join(cards) or "no GPU reported (the `default` floor)"
    return Finding("decode_slow", "warning", f"One stream decodes {speed:.0f} tokens/s, below the {floor.value:.0f} "
                   f"tokens/s this GPU should give ({card})", [
        ev("stream_decode_tokens_per_second", speed, speed_q), floor,
    ], Action(
        "Decoding one stream reads every weight once per token, so it is bounded by memory bandwidth / "
        f"{FP16_WEIGHT_BYTES / 1e9:.2f} GB "
        "(RTX 3060 ~100 tokens/s, RTX 4090 ~280, H100 ~850); the floor is 40% of that. Below it: look for "
        "GPUThrottling / GPUHot alerts or another process on the card, then for --enforce-eager in the engine's "
        "extra flags (compose sets it only through VLLM_EXTRA_ARGS; CUDA graphs off costs 2-3x per token).",
        "--enforce-eager", "off (compose's default; drop it from VLLM_EXTRA_ARGS if added)",
    ))  # fmt: skip


def _decode_floor(ctx: Context) -> tuple[Evidence, list[str]]:
    """The per-stream decode floor in force, and the GPU classes present: the live `min_effective` series, else
    thresholds.yml's rule for it evaluated here (the lowest floor among the GPUs present, else `default`)."""
    classes = ctx.prom.query(q.GPU_CLASSES) or ctx.prom.query(recorded_expr(q.GPU_CLASSES))
    cards = sorted({s.labels.get("gpu_class", "") for s in classes})
    if ctx.thresholds.get(EFFECTIVE_FLOOR) is not None:
        return ctx.evidence("floor_tokens_per_second", EFFECTIVE_FLOOR), cards
    known = [c for c in cards if ctx.thresholds.get(FLOOR, gpu_class=c) is not None]
    gpu_class = min(known, key=lambda c: ctx.threshold(FLOOR, gpu_class=c)) if known else "default"
    floor = ctx.evidence("floor_tokens_per_second", FLOOR, gpu_class=gpu_class)
    return Evidence(floor.name, floor.value, f'{floor.query}{{gpu_class="{gpu_class}"}}', floor.source), cards


def ttft_high(ctx: Context) -> Finding | None:
    """The symptom, last on the path: TTFT over target, explained by the most specific cause found before it."""
    w = ctx.window
    p99_q = q.user_ttft_p99(w) if ctx.scraped(GATEWAY) else q.engine_ttft_p99(w)
    p99 = ctx.require(p99_q, "streamed requests (TTFT)")
    target = ctx.threshold("threshold:gateway_ttft_p99_seconds:max")
    if p99 <= target:
        return None
    evidence = [ev("ttft_p99_seconds", p99, p99_q), ctx.evidence("ttft_target_seconds",
                "threshold:gateway_ttft_p99_seconds:max")]  # fmt: skip
    explaining = [f for f in ctx.findings if f.id in TTFT_CAUSES and f.severity != "info"]
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


COLD_START = Check("cold_start", cold_start, (ENGINE,), "the engine's start time")
DECODE_SLOW = Check("decode_slow", decode_slow, (ENGINE, GATEWAY), "the decode speed")
TTFT_HIGH = Check("ttft_high", ttft_high, (GATEWAY, ENGINE), "TTFT")
