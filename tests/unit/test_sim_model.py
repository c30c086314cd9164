"""The simulator's pure parts: token arithmetic, deterministic R1 text, the GPU cost model, KV sizing."""

from __future__ import annotations

import pytest

from llmwatch.simulator.textgen import THINK_END, chat_prompt_tokens, count_text_tokens, generate
from llmwatch.vllm.buckets import build_1_2_5_buckets
from llmwatch.vllm.cache import BLOCK_SIZE
from llmwatch.vllm.gpus import GPUS
from llmwatch.vllm.metrics import REMOVED_METRICS, VLLM_METRICS
from llmwatch.vllm.model import KV_BYTES_PER_TOKEN

pytestmark = pytest.mark.unit


def test_token_approximation_counts_cjk_per_character_and_latin_per_four_chars() -> None:
    assert count_text_tokens("abcdefgh") == 2
    assert count_text_tokens("abcdefghi") == 3
    assert count_text_tokens("北京") == 2
    assert count_text_tokens("北京 abcd") == 2 + 2  # " abcd" is 5 other characters


def test_chat_template_overhead_is_added() -> None:
    text = "What is 2+2?"  # 12 chars -> 3 tokens
    assert chat_prompt_tokens([{"role": "user", "content": text}]) == 1 + 1 + 3 + 3
    parts = [{"role": "user", "content": [{"type": "text", "text": text}]}]
    assert chat_prompt_tokens(parts) == chat_prompt_tokens([{"role": "user", "content": text}])


def test_generation_is_deterministic_per_seed_and_prompt() -> None:
    a = generate("Explain TCP slow start", seed=1)
    assert a == generate("Explain TCP slow start", seed=1)
    assert a != generate("Explain TCP slow start", seed=2)
    assert a != generate("Explain UDP", seed=1)
    assert a != generate("Explain TCP slow start", seed=1, request_seed=7)


def test_generation_is_reasoning_then_think_end_then_answer_then_eos() -> None:
    gen = generate("How do rainbows form?", seed=0)
    assert gen.tokens[gen.think_end] == THINK_END
    assert gen.tokens[gen.think_end - 1] == "\n"
    assert gen.tokens[-1] == ""  # EOS: counted as a completion token, no text
    assert THINK_END not in "".join(gen.tokens[: gen.think_end])
    assert len(gen.tokens) - gen.think_end > 3


def test_chinese_prompt_gets_chinese_text() -> None:
    gen = generate("请解释一下彩虹是怎么形成的", seed=0)
    reasoning = "".join(gen.tokens[: gen.think_end])
    assert sum("\u4e00" <= c <= "\u9fff" for c in reasoning) > len(reasoning) // 2
    english = "".join(generate("How do rainbows form?", seed=0).tokens)
    assert not any("\u4e00" <= c <= "\u9fff" for c in english)


@pytest.mark.parametrize(("profile", "low", "high"), [("rtx3060", 90, 110), ("rtx4090", 250, 310), ("h100", 780, 920)])
def test_single_stream_decode_speed_matches_the_card(profile: str, low: float, high: float) -> None:
    rate = 1 / GPUS[profile].step_seconds(1, 500)
    assert low <= rate <= high


def test_batching_raises_aggregate_output_but_not_single_stream_speed() -> None:
    gpu = GPUS["rtx3060"]
    single = 1 / gpu.step_seconds(1, 500)
    batch4 = 4 / gpu.step_seconds(4, 4 * 500)
    assert single < 180 <= batch4
    # compute-bound at large batches: more sequences still add throughput, with diminishing returns
    assert 256 / gpu.step_seconds(256, 256 * 500) > batch4


def test_kv_capacity_follows_memory_utilization() -> None:
    gpu = GPUS["rtx3060"]
    expected = int((12 * 1024**3 * 0.9 - 3.56e9 - 1024**3) // (BLOCK_SIZE * KV_BYTES_PER_TOKEN))
    assert gpu.num_gpu_blocks(0.9) == expected
    assert gpu.num_gpu_blocks(0.5) < expected
    assert gpu.num_gpu_blocks(0.2) == 0  # weights do not even fit: vLLM refuses to start


def test_metric_spec_has_no_removed_metrics_and_unique_names() -> None:
    names = [spec.name for spec in VLLM_METRICS]
    assert len(names) == len(set(names))
    assert not set(REMOVED_METRICS) & set(names)
    assert build_1_2_5_buckets(4096) == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
