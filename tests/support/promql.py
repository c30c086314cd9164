"""Reading Grafana dashboards and PromQL in tests: which metric names an expression selects, which panels a
dashboard holds. Shared by the offline dashboard checks and the live Prometheus test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.support import REPO

_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NAME_MATCHER = re.compile(r"__name__\s*(=~?)\s*\"([^\"]*)\"")
# A quoted PromQL (or Lucene) string, with escapes: what name-scanning regexes must not look inside.
QUOTED = re.compile(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_TOKEN = re.compile(
    r"(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)"
    r"|(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)(?P<call>\s*\()?"
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right",
             "atan2", "inf", "nan"}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: strings, matchers, ranges, label lists, calls and keywords stripped."""
    names = set()
    for op, value in _NAME_MATCHER.findall(expr):
        if op == "=~":
            raise ValueError(f"cannot check a regex metric name {value!r} in {expr!r}: select it by name")
        names.add(value)
    text = QUOTED.sub('""', expr)
    text = _GRAFANA_VAR.sub(" 1 ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    for match in _TOKEN.finditer(text):
        ident = match["ident"]
        if ident and not match["call"] and ident.lower() not in _KEYWORDS:
            names.add(ident)
    return names


def variable_expr(query: str) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query (label_values(expr, label), query_result(expr))."""
    query = query.strip()
    if m := re.fullmatch(r"label_values\((.*),\s*[A-Za-z_]\w*\s*\)", query, re.S):
        return m[1]
    if m := re.fullmatch(r"query_result\((.*)\)", query, re.S):
        return m[1]
    if re.fullmatch(r"label_values\(\s*[A-Za-z_]\w*\s*\)|label_names\(\)|metrics\(.*\)", query, re.S):
        return None
    return query


def panels_of(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those a collapsed row keeps inside it."""
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def exposed_names(name: str, kind: Any) -> set[str]:
    """Series names a metric family of this type puts on /metrics (client_python and vLLM conventions).

    This is how histogram (_bucket/_sum/_count) and counter (_total) suffixes are handled: each real family is
    expanded to exactly the series it exposes, which is stricter than stripping suffixes (a gauge_bucket fails).
    """
    kind = str(getattr(kind, "value", getattr(kind, "__name__", kind))).lower()
    if kind == "counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "info":
        return {f"{name.removesuffix('_info')}_info"}
    return {name}


def registry_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the families of ``registry`` expose."""
    names: set[str] = set()
    for family in registry.collect():
        names |= exposed_names(family.name, family.type) | {sample.name for sample in family.samples}
    return names


def vllm_names() -> set[str]:
    """Every series name of the vLLM 0.33 families the simulator's metric spec lists."""
    from llmwatch.vllm.metrics import VLLM_METRICS

    return {name for metric in VLLM_METRICS for name in exposed_names(metric.name, metric.type)}


def series_names(exposition: str) -> set[str]:
    """Series names as Prometheus stores them: the literal name on each sample line.

    Not client_python's parser: it appends `_total` to every sample of a `counter` family, and llama.cpp declares
    `llamacpp:n_tokens_max` a counter without the suffix, which Prometheus keeps as written.
    """
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            match = _SAMPLE_NAME.match(line)
            if match is None:
                raise ValueError(f"not a sample line: {line!r}")
            names.add(match.group(0))
    return names


# vLLM 0.26.0's own /metrics after load, captured on the lent GPU (tests/unit/test_vllm_exposition.py checks it),
# with one API server and with two (prometheus_client's multiprocess mode: the same vllm: families, no process_*).
VLLM_CAPTURE = REPO / "tests" / "fixtures" / "vllm-0.26.0-metrics-after-load.txt"
VLLM_CAPTURE_TWO_API_SERVERS = REPO / "tests" / "fixtures" / "vllm-0.26.0-api-server-count-2-metrics-after-load.txt"


# process-exporter's /metrics as compose's vllm-processes serves it over two API servers and an engine core
# (tests/integration/test_vllm_processes.py checks a live scrape has the same series names).
PROCESS_EXPORTER_CAPTURE = REPO / "tests" / "fixtures" / "process-exporter-0.7.10-vllm-api-servers.txt"


def process_exporter_names() -> set[str]:
    return series_names(PROCESS_EXPORTER_CAPTURE.read_text())


def vllm_capture_names() -> set[str]:
    """Every series name of the real vLLM exposition: its vllm: families and what else its API server exports
    (process_*, http_*)."""
    families = text_string_to_metric_families(VLLM_CAPTURE.read_text())
    return {sample.name for family in families for sample in family.samples}
