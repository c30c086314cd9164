"""Every PromQL expression the checks send, built from the window and the jobs; one place to read or fix them.

A job matcher (``job``) comes from Context.job; ``w`` is the window (5m). Names say what the number is.
"""

from __future__ import annotations

from llmwatch.doctor.context import ENGINE_INFO

USER = 'kind!="warmup"'  # the gateway's own warm-up requests are not user traffic
MIB = 1024 * 1024
SIM_COUNT = "count(llmwatch_sim_info)"
GPU_CLASSES = "gpu_class:dcgm_gpus:count"
LLAMACPP = "llamacpp:requests_processing"  # a gauge every llama-server --metrics exposes
LLAMACPP_COUNT = f"count({LLAMACPP})"
ENGINE_INFO_COUNT = f"count({ENGINE_INFO})"


def _mean(metric: str, w: str, fn: str = "rate") -> str:
    """A histogram's mean over the window: its sum over its count."""
    return f"sum({fn}({metric}_sum[{w}])) / sum({fn}({metric}_count[{w}]))"


def _per_second(metric: str, w: str, labels: str = "") -> str:
    """The inverse of a histogram of seconds: its count over its sum (tokens per second of a per-token time)."""
    return f"sum(rate({metric}_count{labels}[{w}])) / sum(rate({metric}_sum{labels}[{w}]))"


def _p99(bucket: str, w: str, fn: str = "rate") -> str:
    return f"histogram_quantile(0.99, sum by (le) ({fn}({bucket}[{w}])))"


def _peak_over(expr: str, w: str) -> str:
    return f"max_over_time({expr}[{w}:])"


# Targets.
def down(job: str) -> str:
    return f"up{{{job}}} == 0"


def targets(job_name: str) -> str:
    return f'count(up{{job="{job_name}"}})'


# The engine's front end. vLLM's API servers as process-exporter/vllm.yml groups them (compose's vllm-processes): vLLM
# exports no process series of its own once --api-server-count splits its front end. Matched by group, not job name.
API_SERVER_GROUPS = 'groupname=~"APIServer_[0-9]+"'


def front_cpu(job: str, w: str) -> str:
    """The busiest front-end process's CPU, as a share of one core: vLLM's one API server (prometheus_client counts
    its own process, not the engine-core child that drives the GPU), else the busiest of several (user + system)."""
    groups = f"namedprocess_namegroup_cpu_seconds_total{{{API_SERVER_GROUPS}}}"
    return f"max(rate(process_cpu_seconds_total{{{job}}}[{w}]) or sum without (mode) (rate({groups}[{w}])))"


# Cold start.
def uptime(job: str) -> str:
    """Since the engine's front end started: vLLM's process, else its newest API server."""
    groups = f"namedprocess_namegroup_oldest_start_time_seconds{{{API_SERVER_GROUPS}}}"
    return f"time() - max(process_start_time_seconds{{{job}}} or {groups})"


_MEAN_TTFT = "sum(vllm:time_to_first_token_seconds_sum) / sum(vllm:time_to_first_token_seconds_count)"


def first_mean_ttft(since: str) -> str:
    """The highest mean TTFT since ``since`` ago: the mean of the first requests, when the engine started then."""
    return _peak_over(f"({_MEAN_TTFT})", since)


def mean_ttft(w: str) -> str:
    return _mean("vllm:time_to_first_token_seconds", w, "increase")


def user_ttft_p99_increase(since: str) -> str:
    return _p99(f"llmwatch_time_to_first_token_seconds_bucket{{{USER}}}", since, "increase")


# TTFT.
def user_ttft_p99(w: str) -> str:
    return _p99(f"llmwatch_time_to_first_token_seconds_bucket{{{USER}}}", w)


def engine_ttft_p99(w: str) -> str:
    return _p99("vllm:time_to_first_token_seconds_bucket", w)


# Prompts.
def engine_mean_prompt(w: str) -> str:
    return _mean("vllm:request_prompt_tokens", w)


def gateway_mean_prompt(w: str) -> str:
    return (f'sum(rate(llmwatch_tokens_total{{type="prompt",{USER}}}[{w}])) '
            f'/ sum(rate(llmwatch_requests_total{{status=~"2..",{USER}}}[{w}]))')  # fmt: skip


def rejected_400(w: str) -> str:
    return f'sum(increase(llmwatch_requests_total{{status="400",{USER}}}[{w}]))'


# The engine's capacity: KV cache and batch slots.
def kv_usage_max(w: str) -> str:
    return f"max(max_over_time(vllm:kv_cache_usage_perc[{w}]))"


def preemptions(w: str) -> str:
    return f"sum(increase(vllm:num_preemptions_total[{w}]))"


def waiting_share(w: str, waiting_max: float) -> str:
    """The share of the window during which more than ``waiting_max`` requests waited."""
    return f"avg_over_time((sum(vllm:num_requests_waiting) > bool {waiting_max:g})[{w}:])"


def running_peak(w: str) -> str:
    return _peak_over("sum(vllm:num_requests_running)", w)


def waiting_peak(w: str) -> str:
    return _peak_over("sum(vllm:num_requests_waiting)", w)


def mean_queue_time(w: str) -> str:
    return _mean("vllm:request_queue_time_seconds", w)


# Decode speed.
def engine_stream_speed(w: str) -> str:
    return _per_second("vllm:inter_token_latency_seconds", w)


def gateway_stream_speed(w: str) -> str:
    return _per_second("llmwatch_time_per_output_token_seconds", w, f"{{{USER}}}")


# Errors and empty answers.
def gateway_requests(w: str, status: str = "") -> str:
    """User requests through the gateway; ``status`` a label matcher such as `status=~"5.."`."""
    labels = f"{status},{USER}" if status else USER
    return f"sum(increase(llmwatch_requests_total{{{labels}}}[{w}]))"


def engine_requests(w: str, job: str, status: str = "") -> str:
    extra = f",{status}" if status else ""
    return f'sum(increase(http_requests_total{{{job},handler=~"/v1/.+"{extra}}}[{w}]))'


def upstream_error_types(w: str) -> str:
    return f"sum by (error_type) (increase(llmwatch_upstream_errors_total[{w}])) > 0"


def empty_responses(w: str) -> str:
    return f"sum(increase(llmwatch_empty_responses_total{{{USER}}}[{w}]))"


def finished_by_length(w: str) -> str:
    return f'sum(increase(vllm:request_success_total{{finished_reason="length"}}[{w}]))'


def ratio(numerator: str, denominator: str) -> str:
    return f"({numerator}) / ({denominator})"


# GPU memory (dcgm-exporter reports the framebuffer in MiB).
FB_USED_RATIO = "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)"
FB_TOTAL_BYTES = f"(DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) * {MIB}"
FB_USED_BYTES = f"max(DCGM_FI_DEV_FB_USED) * {MIB}"


def peak(expr: str) -> str:
    return f"max({expr})"
