"""The facts package (llmwatch.vllm) stands alone, and production code takes vLLM's facts from it, not from the
simulator that imitates vLLM."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from llmwatch.gateway.metrics import TPOT_BUCKETS, TTFT_BUCKETS
from llmwatch.simulator.settings import SimSettings
from llmwatch.vllm.buckets import INTER_TOKEN_LATENCY_BUCKETS, TIME_TO_FIRST_TOKEN_BUCKETS
from llmwatch.vllm.gpus import GPUS
from llmwatch.vllm.model import FP16_WEIGHT_BYTES, KV_BYTES_PER_TOKEN, PARAMS

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "llmwatch"


def imported_modules(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return names


def test_the_facts_package_imports_nothing_else_of_llmwatch() -> None:
    ours = {m for m in imported_modules(PACKAGE / "vllm") if m == "llmwatch" or m.startswith("llmwatch.")}
    assert ours and all(m.startswith("llmwatch.vllm.") for m in ours), sorted(ours)


def test_the_gateway_does_not_import_the_simulator() -> None:
    modules = imported_modules(PACKAGE / "gateway")
    assert "llmwatch.gateway.metrics" in modules  # the walk saw the gateway's own imports
    assert not [m for m in modules if m.startswith("llmwatch.simulator")]


def test_gateway_latency_buckets_are_vllms_plus_the_ttft_target() -> None:
    assert set(TTFT_BUCKETS) == {*TIME_TO_FIRST_TOKEN_BUCKETS, 0.8} and list(TTFT_BUCKETS) == sorted(TTFT_BUCKETS)
    assert TPOT_BUCKETS == INTER_TOKEN_LATENCY_BUCKETS


def test_model_numbers_agree() -> None:
    assert pytest.approx(PARAMS * 2, rel=0.01) == FP16_WEIGHT_BYTES
    assert KV_BYTES_PER_TOKEN == 28 * 1024  # 28 KiB per context token, as docs/simulator.md says


def test_one_streams_ceiling_is_bandwidth_over_weights() -> None:
    # The numbers the docs and the doctor's advice quote: ~100, ~280 and ~850 tokens/s.
    ceilings = {name: 1 / gpu.step_seconds(1, 0) for name, gpu in GPUS.items()}
    assert ceilings == {
        "rtx3060": pytest.approx(100, rel=0.02),
        "rtx4090": pytest.approx(280, rel=0.02),
        "h100": pytest.approx(850, rel=0.02),
    }


def test_the_simulators_gpu_flag_offers_the_gpu_table() -> None:
    assert get_args(SimSettings.model_fields["gpu_profile"].annotation) == tuple(GPUS)
