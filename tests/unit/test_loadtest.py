"""The load test's pure parts: vLLM-exact timings from a real wire stream, exact percentiles and warm-up, the SLO
file (its targets read from thresholds.yml), the prompt set, and the honest explanation of a goodput miss."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from loadtest import goodput, prompts, slo
from loadtest.samples import Warmup, short_of_rate, split_warmup, window
from loadtest.stream import Sample, StreamTiming

from llmwatch import thresholds
from llmwatch.gateway.sse import SSEScanner
from llmwatch.stats import percentile
from tests.support.vllm_chunks import r1_stream

pytestmark = pytest.mark.unit


def timed(stream: bytes, cuts: list[int]) -> StreamTiming:
    """Feed ``stream`` cut at ``cuts``; piece i arrives at t = 1 + i seconds (the request was sent at t = 0)."""
    timing = StreamTiming(0.0)
    scanner = SSEScanner(timing.on_chunk, strip_usage=False)
    bounds = [0, *sorted(set(cuts)), len(stream)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        scanner.feed(stream[a:b], 1.0 + i)
    assert scanner.done
    return timing


def event_cuts(stream: bytes) -> list[int]:
    return [i + 2 for i in range(len(stream)) if stream[i : i + 2] == b"\n\n"]


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_ttft_is_the_first_token_chunk_not_the_role_chunk_and_itl_every_gap(field: str) -> None:
    stream = r1_stream(["Let", " me"], ["4", "."], field=field)
    timing = timed(stream, event_cuts(stream))  # one event per piece: role at t=1, first reasoning at t=2
    assert timing.ttft == 2.0
    assert timing.itl == [1.0, 1.0, 1.0]
    assert timing.output_tokens == 5  # usage: 4 tokens + EOS
    assert timing.tpot(e2e=10.0) == pytest.approx((10.0 - 2.0) / 4)


@given(st.lists(st.integers(min_value=1, max_value=2000), max_size=30))
def test_any_split_of_the_stream_gives_the_same_counts(cuts: list[int]) -> None:
    stream = r1_stream(["a", "b", "c"], ["d"])
    timing = timed(stream, [c for c in cuts if c < len(stream)])
    assert timing.chunks == 4 and len(timing.itl) == 3 and timing.output_tokens == 5


def test_tpot_needs_two_output_tokens() -> None:
    timing = timed(r1_stream([], ["x"]), [])
    assert timing.tpot(e2e=3.0) == pytest.approx(3.0 - 1.0)  # usage: 2 tokens (x + EOS), one gap
    timing.output_tokens = 1
    assert timing.tpot(e2e=3.0) is None


def test_percentiles_are_exact_and_warmup_goes_by_start_time() -> None:
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)  # linear interpolation, not a bucket bound
    assert percentile([], 50) is None
    samples = [Sample(start=t, e2e=1.0, ok=True) for t in (5.0, 1.0, 3.0, 2.0, 4.0)]
    warm, measured = split_warmup(samples, Warmup(requests=2))
    assert [s.start for s in warm] == [1.0, 2.0] and [s.start for s in measured] == [3.0, 4.0, 5.0]
    warm, measured = split_warmup(samples, Warmup(seconds=2.5))
    assert [s.start for s in warm] == [1.0, 2.0, 3.0]


def test_slo_file_names_the_operator_targets_and_copies_no_number() -> None:
    """One source for the operator's KPI targets: slo.yml names thresholds.yml records, and loads their values."""
    doc = yaml.safe_load(slo.DEFAULT_FILE.read_text())
    bounds = [entry.get("max", entry.get("min")) for part in ("per_request", "slos") for entry in doc[part].values()]
    assert all(isinstance(b, str) and b.startswith("threshold:") for b in bounds), bounds
    loaded = slo.load()
    assert {t.threshold for t in loaded.targets()} >= {
        "threshold:gateway_ttft_p99_seconds:max", "threshold:engine_generation_tokens_per_second:min",
        "threshold:kpi_goodput_requests_per_second:min", "threshold:kpi_gpu_memory_bytes:max",
    }  # fmt: skip
    for target in loaded.targets():
        assert target.threshold is not None
        assert target.value == thresholds.value(target.threshold, **target.labels), target.name
    assert loaded.slos["goodput_requests_per_second"].value == 4  # the operator's 4 req/s, read from thresholds.yml


def test_slo_targets_follow_thresholds_yml(tmp_path: Path) -> None:
    """Change a target in thresholds.yml and the load test judges by the new value; slo.yml stays as it is."""
    doc = yaml.safe_load(thresholds.shipped(thresholds.THRESHOLDS).read_text())
    for rule in (rule for group in doc["groups"] for rule in group["rules"]):
        if rule.get("record") == "threshold:kpi_goodput_requests_per_second:min":
            rule["expr"] = "vector(3)"
    edited = tmp_path / "thresholds.yml"
    edited.write_text(yaml.safe_dump(doc))
    assert slo.load(thresholds_file=edited).slos["goodput_requests_per_second"].value == 3
    numbers = tmp_path / "slo.yml"
    numbers.write_text("slos: {goodput_requests_per_second: {min: 2.5}, gpu_memory_bytes: {max: 2.0e9}}")  # one-off
    assert slo.load(numbers, edited).slos["goodput_requests_per_second"].value == 2.5
    assert slo.load(numbers, edited).slos["gpu_memory_bytes"].value == 2e9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slos: {ttft_p42_seconds: {max: 1}}", "unknown SLO names"),
        ("slos: {ttft_p50_seconds: {max: 1, min: 0}}", "exactly one of max: or min:"),
        ("slos: {ttft_p50_seconds: {max: fast}}", "must be a number"),
        ("slos: {ttft_p50_seconds: {max: 'threshold:gateway_ttft_p99_seconds:min'}}", "a bound of the other kind"),
        ("slos: {ttft_p50_seconds: {max: 'threshold:nope:max'}}", "0 constant values for threshold:nope:max"),
        ("slos: {ttft_p50_seconds: {max: 1, labels: {kind: chat}}}", "a number takes none"),
        (
            "slos: {ttft_p50_seconds: {max: 0.8, threshold: 'threshold:gateway_ttft_p99_seconds:max'}}",
            "write the record as the bound, max: 'threshold:gateway_ttft_p99_seconds:max'",
        ),
        ("slos: {ttft_p50_seconds: {max: 1, maximum: 2}}", r"unknown \['maximum'\]"),
        ("- a list", "must be a mapping"),
        ('{"id": "x", "messages": []}', "needs `slos:`"),
    ],
)
def test_bad_slo_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "slo.yml"
    path.write_text(text)
    with pytest.raises(slo.SloError, match=message):
        slo.load(path)


def test_prompt_set_covers_short_long_english_chinese_and_r1_math() -> None:
    loaded = prompts.load()
    for tags in ({"short", "en"}, {"short", "zh"}, {"long", "en"}, {"long", "zh"}, {"math", "en"}, {"math", "zh"}):
        assert prompts.load(tags=frozenset(tags)), f"no prompt tagged {tags}"
    for prompt in loaded:
        assert [m["role"] for m in prompt.messages] == ["user"], "R1: no system prompt"
        if "math" in prompt.tags:
            assert prompt.messages[0]["content"].endswith(prompts.R1_MATH_DIRECTIVE)


def test_bad_prompt_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with pytest.raises(prompts.PromptError, match=r"p.jsonl:2"):
        prompts.load(path)
    path.write_text('{"id": "a", "messages": [{"role": "system", "content": "be brief"}]}\n')
    with pytest.raises(prompts.PromptError, match="no system prompt"):
        prompts.load(path)


def test_goodput_miss_is_explained_with_answer_length_batch_and_decode_speed() -> None:
    """4 streams at 100 tok/s with 300-token answers finish at most 1.33 answers/s: a 4 req/s target is out of reach."""
    slos = slo.load()
    samples = [Sample(start=i * 0.3, e2e=3.0, ok=True, ttft=0.2, tpot=0.01, output_tokens=300) for i in range(40)]
    values = slo.measure(samples, slos, None)
    target = slos.slos["goodput_requests_per_second"]
    assert values["goodput_requests_per_second"] is not None and not target.met(values["goodput_requests_per_second"])
    note = goodput.explain_goodput(samples, values, target, slos, batch=4)
    assert "4 streams (--max-num-seqs) × 100 tok/s ÷ 300 tokens per answer = 1.33 answers/s" in note
    assert "below the target of 4 req/s" in note


def test_tool_call_streams_are_answers_with_a_ttft() -> None:
    from tests.support.vllm_chunks import tool_stream

    stream = tool_stream([], [("get_weather", ['{"city": ', '"Paris"}'])])
    timing = timed(stream, event_cuts(stream))
    assert timing.ttft == 2.0  # the first tool-call delta, right after the role chunk
    assert (timing.answer_kind(), len(timing.tool_indexes)) == ("tool_calls", 1)
    mixed = timed(tool_stream(["hmm"], [("a", ["{}"]), ("b", ["{}"])]), [])
    assert (mixed.answer_kind(), len(mixed.tool_indexes)) == ("tool_calls", 2)


def test_answer_kinds_in_the_report_and_the_reasoning_only_line() -> None:
    from loadtest import answers

    thought = r1_stream(["a", "b"], [], finish="length")
    assert timed(thought, []).answer_kind() == "reasoning_only"
    samples = [Sample(start=1.0, e2e=1.0, ok=True, answer_kind=k) for k in ("reasoning_only",) * 3]
    kinds = answers.counts(samples)
    assert kinds == {"text": 0, "tool_calls": 0, "reasoning_only": 3, "empty": 0}
    assert answers.note(kinds, accepted=True).startswith("Every answer was reasoning-only")
    assert "--accept-reasoning-only" in answers.note(kinds, accepted=True)
    refused = answers.note(kinds, accepted=False)
    assert refused.startswith("Every answer (3) was reasoning-only") and "counts as empty" in refused
    mixed = answers.counts([*samples, Sample(start=1.0, e2e=1.0, ok=True, answer_kind="text")])
    assert answers.note(mixed, accepted=True).startswith("3 of 4 answers were reasoning-only")
    assert answers.note(mixed, accepted=False) == ""  # not all of them: the empty count says it
    assert answers.note(answers.counts([]), accepted=False) == ""


def test_the_tools_and_json_subsets_carry_their_request_fields() -> None:
    tools = prompts.load(tags=frozenset({"tools"}))
    assert tools and all(p.fields["tools"] and p.fields["tool_choice"] != "auto" for p in tools)
    formats = {p.fields["response_format"]["type"] for p in prompts.load(tags=frozenset({"json"}))}
    assert formats == {"json_object", "json_schema"}


def fifo_run(rate: float, seconds: float, slots: int, service_s: float, tokens: int = 300) -> list[Sample]:
    """Poisson arrivals (seeded) into an engine of ``slots`` batch slots, first come first served: a request waits
    for the first free slot, then takes 50 ms to its first token and ``service_s`` in all."""
    rng = random.Random(1)  # this seed sends 3.97 req/s at rate 4 over 120 s: below 4, within Poisson noise
    free = [0.0] * slots
    out: list[Sample] = []
    t = rng.expovariate(rate)
    while t < seconds:
        slot = min(range(slots), key=free.__getitem__)
        wait = max(0.0, free[slot] - t)
        free[slot] = t + wait + service_s
        out.append(Sample(start=t, e2e=wait + service_s, ok=True, ttft=wait + 0.05,
                          tpot=(service_s - 0.05) / tokens, output_tokens=tokens))  # fmt: skip
        t += rng.expovariate(rate)
    return out


def goodput_note(samples: list[Sample], **kwargs: float) -> str:
    slos = slo.load()
    values = slo.measure(samples, slos, None)
    target = slos.slos["goodput_requests_per_second"]
    assert values["goodput_requests_per_second"] is not None and not target.met(values["goodput_requests_per_second"])
    return goodput.explain_goodput(samples, values, target, slos, batch=4, **kwargs)  # type: ignore[arg-type]


def test_a_met_rate_with_ttft_missed_through_queueing_names_queueing_not_the_offered_load() -> None:
    """The real engine's shape: --rate 4 sent (~3.98 req/s), 0 late, 0 unsent, TTFT p99 missed while the 4 batch
    slots were full. The verdict names queueing at --max-num-seqs, not "offered less"."""
    samples = fifo_run(rate=4.0, seconds=120, slots=4, service_s=0.9)
    assert 3.9 < len(samples) / window(samples) < 4.0  # sent: under the asked 4 req/s, within Poisson noise
    values = slo.measure(samples, slo.load(), None)
    assert (values["ttft_p99_seconds"] or 0) > 0.8
    note = goodput_note(samples, rate=4.0, late=0, unsent=0)
    assert "offered less" not in note, note
    assert "Measured cause: queueing at --max-num-seqs 4:" in note, note
    assert "decode speed" not in note and "errors" not in note, note


def test_offered_less_only_for_late_or_unsent_arrivals_or_a_shortfall_beyond_poisson_noise() -> None:
    samples = fifo_run(rate=4.0, seconds=120, slots=4, service_s=0.9)
    late = goodput_note(samples, rate=4.0, late=12, unsent=3)
    assert "The run offered less than 4 req/s: 12 arrivals found every user busy" in late
    assert "3 were never sent" in late
    sparse = fifo_run(rate=3.0, seconds=120, slots=4, service_s=0.9)  # 3 req/s sent at --rate 4, none late
    assert "offered less than 4 req/s, more than Poisson noise" in goodput_note(sparse, rate=4.0)
    assert short_of_rate(86, 4.0, 30) and not short_of_rate(88, 4.0, 30)  # 120 expected, 3 sigma ~33


def test_a_met_rate_with_slow_decode_or_errors_names_that_cause() -> None:
    slow = fifo_run(rate=4.0, seconds=60, slots=64, service_s=0.9, tokens=30)  # no queue; 30 tokens in 0.85 s
    assert "Measured cause: decode speed: " in goodput_note(slow, rate=4.0)
    broken = [s if i % 3 else Sample(start=s.start, e2e=0.1, ok=False, error="HTTP 500")
              for i, s in enumerate(fifo_run(rate=4.0, seconds=60, slots=64, service_s=0.5))]  # fmt: skip
    assert "Measured cause: errors: " in goodput_note(broken, rate=4.0)
