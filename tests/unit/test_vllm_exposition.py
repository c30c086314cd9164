"""The real vLLM exposition (tests/fixtures/vllm-0.26.0-metrics-*.txt, captured by bench/gpu_check on the lent GPU)
against what the project assumes: the simulator's families, the rules', dashboards' and doctor's selectors, and the
doctor's reading of vllm:cache_config_info."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO
from tests.support.promql import VLLM_CAPTURE, VLLM_CAPTURE_TWO_API_SERVERS

FIXTURES = REPO / "tests" / "fixtures"
IDLE = FIXTURES / "vllm-0.26.0-metrics-idle.txt"
AFTER_LOAD = VLLM_CAPTURE
# The captures come from GPU runs (bench/gpu_check writes metrics-idle.txt and metrics-after-load.txt; prepend
# one line `# vLLM 0.26.0 ... captured DATE on GPU, not edited`). The idle one is taken after the gateway's warm-up
# requests, so its histograms have samples; the after-load one after 19,566 requests.
CAPTURES = [IDLE, AFTER_LOAD]
LATEST = AFTER_LOAD
pytestmark = pytest.mark.unit
# Families the simulator has because vLLM 0.33 (the version compose pins) registers them, and 0.26.0 does not. The
# simulator's spec is checked against the 0.33 wheel's names elsewhere (services/llmwatch/simulator/metric_spec.py).
ONLY_IN_033: dict[str, str] = {
    "vllm:admission_rejections": "requests refused at admission, new after 0.26",
    "vllm:admission_rejections_created": "its creation time",
    "vllm:prompt_tokens_cached_by_source": "prefix-cache hits by source, new after 0.26",
    "vllm:prompt_tokens_cached_by_source_created": "its creation time",
    "vllm:request_num_preemptions": "preemptions per request (a histogram), new after 0.26",
    "vllm:request_num_preemptions_created": "its creation time",
}
# Families whose label names follow the release: cache_config_info's labels are vLLM's CacheConfig fields (0.26 has
# calculate_kv_scales, 0.33 ten fields more). The labels the doctor reads are checked against the real text below.
LABELS_FOLLOW_THE_RELEASE = {"vllm:cache_config_info"}

Family = dict[str, Any]  # type, label names, histogram buckets, samples


def families(text: str, prefix: str = "vllm:") -> dict[str, Family]:
    out: dict[str, Family] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix):
            continue
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        buckets = sorted({float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")})
        out[family.name] = {"type": family.type, "labels": labels, "buckets": buckets, "samples": family.samples}
    return out


def real_text() -> str:
    return "\n".join(p.read_text() for p in CAPTURES)


def simulator_text() -> str:
    from llmwatch.simulator.settings import SimSettings
    from llmwatch.simulator.simulator import Simulator

    registry = CollectorRegistry()
    Simulator(SimSettings(), registry)
    return generate_latest(registry).decode()


def test_fixtures_are_vllm_0_26_0_captures() -> None:
    for path in [*CAPTURES, VLLM_CAPTURE_TWO_API_SERVERS]:
        head = path.read_text().splitlines()[0]
        assert head.startswith("# vLLM 0.26.0") and "not edited" in head, head


def test_the_simulator_has_the_real_families_types_buckets_and_labels() -> None:
    real = families(LATEST.read_text())
    sim = families(simulator_text())
    assert len(real) > 20
    assert set(sim) - set(real) == set(ONLY_IN_033), "the simulator's extra families must be the 0.33-only ones"
    assert not set(real) - set(sim), f"real vLLM families the simulator lacks: {sorted(set(real) - set(sim))}"
    for name, fam in real.items():
        mine = sim[name]
        assert mine["type"] == fam["type"], (name, mine["type"], fam["type"])
        if name not in LABELS_FOLLOW_THE_RELEASE:
            assert mine["labels"] == fam["labels"], (name, sorted(mine["labels"]), sorted(fam["labels"]))
        assert mine["buckets"] == fam["buckets"], (name, mine["buckets"], fam["buckets"])


# ---- every vLLM selector the project queries matches a real series ---------------------------------------------------

# A name that starts with `vllm:`, not one that has it inside (stack:llamacpp_engines_without_vllm:count).
_SELECTOR = re.compile(r"(?<![A-Za-z0-9_:])(vllm:[A-Za-z0-9_:]+)\s*(\{[^{}]*\})?")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*\"([^\"]*)\"")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted((REPO / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            for rule in group.get("rules", []):
                out.append((f"{path.name}: {rule.get('alert') or rule.get('record')}", str(rule["expr"])))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    out = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    out.append((where, value))
                else:
                    walk(value, where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        walk(json.loads(path.read_text()), path.name)
    return out


def doctor_exprs() -> list[tuple[str, str]]:
    """The doctor's PromQL as written in its source (f-strings' doubled braces undone)."""
    out = []
    for path in sorted((REPO / "services" / "llmwatch" / "doctor").glob("*.py")):
        out += [(path.name, line.replace("{{", "{").replace("}}", "}")) for line in path.read_text().splitlines()]
    return out


def matches(samples: list[Any], name: str, matchers: list[tuple[str, str, str]]) -> bool:
    """A series named ``name`` (or, for a histogram's family name as prose cites it, one of its series) whose labels
    satisfy every matcher; Grafana variables match any value."""
    for s in samples:
        if s.name != name and s.name not in {f"{name}_bucket", f"{name}_count", f"{name}_sum"}:
            continue
        ok = True
        for label, op, value in matchers:
            got = s.labels.get(label, "")
            value = _GRAFANA_VAR.sub(".*", value)
            if op == "=":
                ok &= got == value if ".*" not in value else re.fullmatch(value, got) is not None
            elif op == "!=":
                ok &= got != value
            elif op == "=~":
                ok &= re.fullmatch(value, got) is not None
            else:
                ok &= re.fullmatch(value, got) is None
        if ok:
            return True
    return False


@pytest.mark.parametrize("text", [real_text, VLLM_CAPTURE_TWO_API_SERVERS.read_text], ids=["one API server", "two"])
def test_every_vllm_selector_matches_a_real_series_with_its_label_values(text: Callable[[], str]) -> None:
    samples = [s for fam in text_string_to_metric_families(text()) for s in fam.samples]
    checked, missing = 0, []
    for where, expr in rule_exprs() + dashboard_exprs() + doctor_exprs():
        for name, braces in _SELECTOR.findall(expr):
            checked += 1
            matchers = _MATCHER.findall(braces or "")
            if not matches(samples, name, matchers):
                missing.append(f"{where}: {name}{braces}")
    assert checked > 20, "no vllm: selectors found: the extraction is broken"
    assert not missing, "selectors with no series in the real exposition:\n" + "\n".join(sorted(set(missing)))


def test_the_doctor_reads_cache_config_info_from_the_real_labels() -> None:
    from llmwatch import thresholds
    from llmwatch.doctor.context import Context
    from tests.fakes.prometheus import THRESHOLDS_QUERY, Row, sample, stand_in, threshold_rows

    info = families(LATEST.read_text())["vllm:cache_config_info"]["samples"]
    assert len(info) == 1
    series = thresholds.load()  # no engine-sizing series: the share must come from the engine's own labels

    def rows(query: str) -> list[Row]:
        if query == "vllm:cache_config_info":
            return [sample(1, __name__="vllm:cache_config_info", **info[0].labels)]
        if query.startswith(THRESHOLDS_QUERY):
            return threshold_rows(series)
        return []

    prom = stand_in(rows)
    share = Context.load(prom, "5m").limit("threshold:gpu_vllm_memory_share:max")
    assert share.value == float(info[0].labels["gpu_memory_utilization"]) and share.source == "engine"
