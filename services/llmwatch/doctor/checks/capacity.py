"""The engine's capacity: the context a prompt leaves, the KV cache, the batch slots requests wait for, and the one
core its front end runs on."""

from __future__ import annotations

import math

from llmwatch.doctor.checks import queries as q
from llmwatch.doctor.checks.base import Check, ev
from llmwatch.doctor.context import ENGINE, GATEWAY, Context, Skip
from llmwatch.doctor.finding import Action, Finding

# A prompt is "too long" when on average it takes this share of --max-model-len, leaving little room to reason.
PROMPT_SHARE = 0.5
# Queueing matters once requests wait, on average, this share of the TTFT target for a batch slot.
QUEUE_SHARE = 0.25


def prompt_too_long(ctx: Context) -> Finding | None:
    w = ctx.window
    max_len = ctx.threshold("threshold:engine_max_model_len:max")
    mean_q = q.engine_mean_prompt(w) if ctx.scraped(ENGINE) else q.gateway_mean_prompt(w)
    mean = ctx.require(mean_q, "prompt tokens")
    evidence = [ev("mean_prompt_tokens", mean, mean_q), ctx.evidence("max_model_len",
                "threshold:engine_max_model_len:max")]  # fmt: skip
    rejected_q = q.rejected_400(w)
    rejected = ctx.value(rejected_q) if ctx.scraped(GATEWAY) else None
    if rejected:
        evidence.append(ev("rejected_400", rejected, rejected_q))
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
    w = ctx.window
    usage_q = q.kv_usage_max(w)
    usage = ctx.require(usage_q, "vllm:kv_cache_usage_perc")
    preempt_q = q.preemptions(w)
    preempted = ctx.value(preempt_q) or 0.0
    usage_max = ctx.threshold("threshold:engine_kv_cache_usage_ratio:max")
    preempt_max = ctx.threshold("threshold:engine_preemptions_15m:max")
    if usage < usage_max and preempted <= preempt_max:
        return None
    seqs = ctx.threshold("threshold:engine_max_num_seqs:max")
    share = _engine_memory_share(ctx)
    return Finding("kv_cache_pressure", "warning",
                   f"KV cache peaked at {usage:.0%} with {preempted:.0f} preemptions in {w}", [
        ev("kv_cache_usage_max", usage, usage_q), ev("preemptions", preempted, preempt_q),
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


def batch_for(seqs: float, held: float) -> int:
    """--max-num-seqs with room for the ``held`` requests (running + waiting at the peak), at least twice ``seqs``,
    rounded up to a power of two (vLLM captures CUDA graphs for such batch sizes)."""
    want = max(2 * int(seqs), math.ceil(held))
    return 1 << (want - 1).bit_length()


def queueing(ctx: Context) -> Finding | None:
    w = ctx.window
    waiting_max = ctx.threshold("threshold:engine_waiting_requests:max")
    seqs = ctx.threshold("threshold:engine_max_num_seqs:max")
    share_q = q.waiting_share(w, waiting_max)
    share = ctx.require(share_q, "vllm:num_requests_waiting")
    running_q = q.running_peak(w)
    running = ctx.value(running_q) or 0.0
    peak_q = q.waiting_peak(w)
    queue_q = q.mean_queue_time(w)
    queued = ctx.value(queue_q) or 0.0
    target = ctx.threshold("threshold:gateway_ttft_p99_seconds:max")
    # Requests that vLLM preempts wait again, but their first wait (what vLLM's queue time measures) is what a
    # user feels: queueing is about that, once every batch slot is busy.
    if running < seqs or queued < QUEUE_SHARE * target:
        return None
    usage_q = q.kv_usage_max(w)
    usage = ctx.value(usage_q)
    evidence = [ev("mean_queue_seconds", queued, queue_q), ev("waiting_share_of_window", share, share_q),
                ev("waiting_peak", ctx.value(peak_q) or 0, peak_q),
                ev("running_peak", running, running_q),
                ctx.evidence("max_num_seqs", "threshold:engine_max_num_seqs:max"),
                ctx.evidence("waiting_threshold", "threshold:engine_waiting_requests:max"),
                ctx.evidence("ttft_target_seconds", "threshold:gateway_ttft_p99_seconds:max")]  # fmt: skip
    roomy = usage is not None and usage < ctx.threshold("threshold:engine_kv_cache_usage_ratio:max") / 2
    if usage is not None:
        evidence.append(ev("kv_cache_usage_max", usage, usage_q))
    if roomy:
        held = running + (ctx.value(peak_q) or 0)
        action = Action(f"Every batch slot is busy while the KV cache peaked at {usage:.0%}: more sequences fit in "
                        f"memory. Make room for the {held:.0f} requests the engine held at the peak (running and "
                        "waiting); vLLM batches continuously, so a larger batch raises aggregate tokens/s at a small "
                        "cost per stream.", "--max-num-seqs", f"{batch_for(seqs, held)}")  # fmt: skip
    else:
        action = Action("Every batch slot is busy and the KV cache has no room for more: add a replica (another GPU "
                        "or server behind the gateway's --upstream) rather than a larger batch.")  # fmt: skip
    return Finding("queueing", "warning", f"Requests waited {queued:.2f} s on average for one of the {seqs:.0f} "
                   f"batch slots (--max-num-seqs), all busy; requests were waiting {share:.0%} of the window", evidence,
                   action)  # fmt: skip


def engine_front_cpu(ctx: Context) -> Finding | None:
    cpu_q = q.front_cpu(ctx.job(ENGINE), ctx.window)
    cpu = ctx.require(cpu_q, "the engine's process CPU (vLLM's process_cpu_seconds_total with one API server, "
                      "the vllm-processes job with several; llama.cpp exports none)")  # fmt: skip
    if cpu <= ctx.threshold("threshold:engine_front_cpu_cores:max"):
        return None
    return Finding("engine_front_cpu", "warning", f"vLLM's API server used {cpu:.0%} of a core over {ctx.window}: "
                   "its front end, not the GPU, sets the pace", [
        ev("engine_front_cores", cpu, cpu_q),
        ctx.evidence("engine_front_cores_threshold", "threshold:engine_front_cpu_cores:max"),
    ], Action(
        "vLLM's API server is one Python process that takes every request, tokenizes it and streams every token "
        "back; its engine core drives the GPU in another. On a fast GPU with many streams that one core is the "
        "limit: on the lent H100 at 256 streams it ran at 100% and vLLM gave 13,300 tokens/s with TTFT p99 near 3 s; "
        "with two API servers, 23,900 tokens/s and 473 ms, but both were again at 96-99% of a core; with four, the "
        "busiest was at 76-79%. In compose: VLLM_EXTRA_ARGS=--api-server-count 4, or more if it runs several "
        "already: this check then reads the busiest of them (compose's vllm-processes).",
        "--api-server-count", "4",
    ))  # fmt: skip


def _engine_memory_share(ctx: Context) -> str:
    try:
        return f"{ctx.threshold('threshold:gpu_vllm_memory_share:max'):.2f}"
    except Skip:
        return "unknown"


PROMPT_TOO_LONG = Check("prompt_too_long", prompt_too_long, (ENGINE, GATEWAY), "the prompt length")
KV_CACHE_PRESSURE = Check("kv_cache_pressure", kv_cache_pressure, (ENGINE,), "the KV cache")
QUEUEING = Check("queueing", queueing, (ENGINE,), "the engine's queue")
ENGINE_FRONT_CPU = Check("engine_front_cpu", engine_front_cpu, (ENGINE,), "the engine's front end")
