"""The scheduler in-process: FIFO beyond --max-num-seqs, continuous batching, recompute preemption."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from llmwatch.simulator.engine import Engine, EngineConfig
from llmwatch.simulator.faults import Faults
from llmwatch.simulator.metrics import EngineMetrics, build_collectors, cache_config_labels
from llmwatch.simulator.sequence import Sequence
from llmwatch.vllm.gpus import GPUS

pytestmark = pytest.mark.unit
MODEL = "m"


class Recorder:
    """A listener that keeps what the engine told it."""

    def __init__(self) -> None:
        self.tokens = 0
        self.finish: str | None = None
        self.first_at: float | None = None

    def emit(self, seq: Sequence, start: int, end: int, finish: str | None) -> bool:
        if start == 0 and self.first_at is None:
            self.first_at = asyncio.get_running_loop().time()
        self.tokens += end - start
        self.finish = finish or self.finish
        return True

    def drop(self, seq: Sequence) -> None:
        raise AssertionError("no drop expected")


def _engine(blocks: int, max_num_seqs: int) -> tuple[Engine, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = EngineMetrics(build_collectors(registry, 4096), MODEL, cache_config_labels(0.9, blocks, None, 4096))
    config = EngineConfig(max_num_seqs=max_num_seqs, max_num_batched_tokens=512, num_gpu_blocks=blocks, speed=20.0)
    return Engine(GPUS["h100"], config, metrics, lambda: Faults()), registry


def _seq(engine: Engine, n: int, prompt: int = 20) -> tuple[Sequence, Recorder]:
    rec = Recorder()
    seq = Sequence(f"r{n}", prompt, ["x"] * 39 + [""], "stop", rec, engine.clock())
    return seq, rec


def _value(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(name, {"model_name": MODEL, "engine": "0"})
    assert value is not None, name
    return value


async def _run_all(engine: Engine, seqs: list[Sequence], observe: list[float] | None = None) -> None:
    task = asyncio.create_task(engine.run())
    for seq in seqs:
        engine.submit(seq)
    try:
        if observe is not None:
            await asyncio.sleep(0.002)
            observe.append(len(engine.waiting))
        await asyncio.wait_for(asyncio.gather(*(s.done for s in seqs)), timeout=10)
    finally:
        task.cancel()


async def test_requests_beyond_max_num_seqs_wait_in_fifo_order() -> None:
    engine, registry = _engine(blocks=10_000, max_num_seqs=2)
    pairs = [_seq(engine, i) for i in range(5)]
    waiting: list[float] = []
    await _run_all(engine, [s for s, _ in pairs], waiting)
    assert waiting == [3]
    firsts = [rec.first_at for _, rec in pairs]
    assert all(f is not None for f in firsts)
    assert firsts == sorted(firsts)  # type: ignore[type-var]
    assert all(rec.tokens == 40 and rec.finish == "stop" for _, rec in pairs)
    assert _value(registry, "vllm:generation_tokens_total") == 5 * 40
    assert _value(registry, "vllm:num_requests_waiting") == 0
    assert _value(registry, "vllm:num_preemptions_total") == 0


async def test_exhausted_kv_cache_preempts_and_recomputes() -> None:
    # 3 sequences of 20 prompt + 40 output tokens need 4 blocks each; 6 blocks hold one and a half
    engine, registry = _engine(blocks=6, max_num_seqs=3)
    pairs = [_seq(engine, i) for i in range(3)]
    await _run_all(engine, [s for s, _ in pairs])
    assert _value(registry, "vllm:num_preemptions_total") > 0
    assert all(rec.tokens == 40 and rec.finish == "stop" for _, rec in pairs)
    assert (
        registry.get_sample_value(
            "vllm:request_success_total", {"model_name": MODEL, "engine": "0", "finished_reason": "stop"}
        )
        == 3
    )
    assert engine.free_blocks == 6
    # every preemption lands in one finished request's vllm:request_num_preemptions observation
    assert _value(registry, "vllm:request_num_preemptions_count") == 3
    assert _value(registry, "vllm:request_num_preemptions_sum") == _value(registry, "vllm:num_preemptions_total")


def _rows(engine: Engine, count: int, filtered: bool = True) -> list[tuple[Sequence, int]]:
    """A step's batch of ``count`` sequences that each sample a token (their whole pending prefill runs)."""
    seqs = [Sequence(f"r{i}", 20, ["x"], "stop", Recorder(), engine.clock(), filtered=filtered) for i in range(count)]
    return [(seq, seq.pending) for seq in seqs]


async def test_the_samplers_compile_follows_vllms_rule() -> None:
    """--sampler-compile-ms, by vLLM 0.26.0's own rule: vllm/v1/sample/ops/topk_topp_sampler.py `apply_top_k_top_p`
    filters with the Triton kernel when `logits.shape[0] >= 8` (below, a PyTorch sort) and only when a row asks for
    top-p/top-k; topk_topp_triton.py passes BATCH_SIZE as a plain int argument, which Triton specializes by
    divisibility by 16, so 16, 32, ... rows compile once and every other count once."""
    registry = CollectorRegistry()
    metrics = EngineMetrics(build_collectors(registry, 4096), MODEL, cache_config_labels(0.9, 1000, None, 4096))
    config = EngineConfig(max_num_seqs=64, max_num_batched_tokens=4096, num_gpu_blocks=1000, speed=2.0,
                          sampler_compile_s=3.0)  # fmt: skip
    engine = Engine(GPUS["h100"], config, metrics, lambda: Faults())
    stall = 3.0 / 2.0  # on the simulator's clock
    assert engine._sampler_compile(_rows(engine, 7)) == 0, "below 8 rows vLLM sorts in PyTorch: nothing to compile"
    assert engine._sampler_compile(_rows(engine, 9, filtered=False)) == 0, "no row filtered: no kernel at all"
    half_prefill = [(seq, seq.pending - 1) for seq, _ in _rows(engine, 20)]
    assert engine._sampler_compile(half_prefill) == 0, "an unfinished prefill samples nothing"
    assert engine._sampler_compile(_rows(engine, 9)) == stall
    assert engine._sampler_compile(_rows(engine, 12)) == 0, "the same variant"
    assert engine._sampler_compile(_rows(engine, 32)) == stall, "rows divisible by 16: the other variant"
    assert engine._sampler_compile(_rows(engine, 16)) == 0
