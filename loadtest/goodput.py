"""Why goodput missed its target, with the numbers: the load offered, the engine's capacity, then the measured cause
(queueing at --max-num-seqs, decode speed, or errors)."""

from __future__ import annotations

import bisect
import statistics

from loadtest.samples import short_of_rate, window
from loadtest.slo import SloFile, Target, good
from loadtest.stream import Sample


def explain_goodput(
    measured: list[Sample],
    values: dict[str, float | None],
    target: Target,
    slos: SloFile,
    batch: int,
    rate: float = 0.0,
    late: int = 0,
    unsent: int = 0,
) -> str:
    """Why goodput missed its target, with the numbers: how much load was sent, what the engine can complete at all
    (answer length ÷ (batch x one stream's decode speed)), and then the cause. "Offered less" only when the arrivals
    were late or unsent, or the count sent falls short of the rate (``rate``, else the target) by more than Poisson
    noise; otherwise the measured cause of the misses: queueing at --max-num-seqs, decode speed, or errors."""
    ok = [s for s in measured if s.ok and not s.empty and s.output_tokens]
    if not ok:
        return "No request completed with tokens in the measured window."
    span = window(measured)
    sent = len(measured) / span if span else 0.0
    mean_out = statistics.fmean(s.output_tokens or 0 for s in ok)
    tpots = [s.tpot for s in ok if s.tpot]
    missed = [s for s in ok if not good(s, slos.per_request)]
    failed = len(measured) - len(ok)
    parts = [
        f"{sent:.2f} req/s were sent; {len(missed)} of {len(ok)} completed requests missed a per-request SLO "
        f"and {failed} failed or were empty."
    ]
    if tpots:
        stream = 1.0 / statistics.median(tpots)
        aggregate = values.get("output_tokens_per_second") or 0.0
        if batch:
            capacity = batch * stream / mean_out
            how = f"{batch} streams (--max-num-seqs) × {stream:.0f} tok/s ÷ {mean_out:.0f} tokens per answer"
        else:
            capacity = aggregate / mean_out
            how = f"{aggregate:.0f} tok/s aggregate (pass --max-num-seqs for the batch) ÷ {mean_out:.0f} tokens"
        parts.append(f"Answers averaged {mean_out:.0f} output tokens and one stream decoded at {stream:.0f} tok/s, so "
                     f"the engine completes at most {how} = {capacity:.2f} answers/s.")  # fmt: skip
        if capacity < target.value:
            parts.append(
                f"That is below the target of {target.value:g} req/s: this profile cannot meet it without shorter "
                "answers (--max-tokens), a larger batch (if the KV cache holds it) or a faster GPU."
            )
    asked = rate or target.value
    starts = sorted(s.start for s in measured)
    if late or unsent:
        parts.append(
            f"The run offered less than {asked:g} req/s: {late} arrivals found every user busy and went "
            f"out late, and {unsent} were never sent: the server fell behind (or --users is too small)."
        )
    elif short_of_rate(len(starts), asked, starts[-1] - starts[0]):
        parts.append(f"The run offered less than {asked:g} req/s, more than Poisson noise explains: raise "
                     + ("--users." if rate else "--rate (or --users)."))  # fmt: skip
    elif missed or failed:
        parts.append(_cause(measured, ok, missed, slos, batch))
    return " ".join(parts)


def _cause(measured: list[Sample], ok: list[Sample], missed: list[Sample], slos: SloFile, batch: int) -> str:
    """The load was offered: what the misses measured, the largest cause first."""
    ttft = slos.per_request.get("ttft_seconds")
    decode = slos.per_request.get("stream_decode_tokens_per_second")
    slow_first = [s for s in missed if ttft and (s.ttft is None or not ttft.met(s.ttft))]
    slow_decode = [s for s in missed if decode and s.tpot and not decode.met(1.0 / s.tpot)]
    # In flight when each request started: every earlier request that had not ended yet.
    ends = sorted(s.start + s.e2e for s in measured)
    starts = sorted(s.start for s in measured)
    busy = {id(s): bisect.bisect_left(starts, s.start) - bisect.bisect_right(ends, s.start) for s in measured}
    causes: list[tuple[int, str]] = []
    if slow_first and batch:
        queued = [s for s in slow_first if busy[id(s)] >= batch]
        if queued:
            causes.append((len(queued), f"queueing at --max-num-seqs {batch}: {len(queued)} of the "
                           f"{len(slow_first)} TTFT misses started while {batch} or more requests were already in "
                           "flight, so they waited for a batch slot (raise --max-num-seqs if the KV cache has room, "
                           "or add a replica)"))  # fmt: skip
        if len(slow_first) > len(queued):
            free = len(slow_first) - len(queued)
            causes.append((free, f"{free} TTFT misses with a batch slot free: a slow prefill (long prompts) or the "
                           "network; `llmwatch doctor` tells which"))  # fmt: skip
    elif slow_first:
        causes.append((len(slow_first), f"{len(slow_first)} TTFT misses: pass --max-num-seqs to tell queueing for a "
                       "batch slot from a slow prefill"))  # fmt: skip
    if slow_decode and decode:
        speed = 1.0 / statistics.median(s.tpot or 0 for s in slow_decode)
        causes.append((len(slow_decode), f"decode speed: {len(slow_decode)} requests streamed below {decode.value:g} "
                       f"tok/s (median {speed:.0f} tok/s among them)"))  # fmt: skip
    failed = len(measured) - len(ok)
    if failed:
        causes.append((failed, f"errors: {failed} requests failed or were empty"))
    if not causes:
        return "The rate was offered; the misses have no single measured cause."
    causes.sort(key=lambda c: -c[0])
    return (
        "The rate was offered (within Poisson noise, none late or unsent). Measured cause: "
        + "; ".join(text for _, text in causes)
        + "."
    )
