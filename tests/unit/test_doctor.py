"""`llmwatch doctor` without a live stack: ranking, the CLI's exit codes, partial stacks, the renderer, the fake
dcgm-exporter. The findings themselves are proven on a real Prometheus in tests/integration/test_doctor_live.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from unittest.mock import patch

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmwatch import thresholds
from llmwatch.config import parse_cli
from llmwatch.doctor.checks.path import PATH
from llmwatch.doctor.diagnose import diagnose, rank
from llmwatch.doctor.finding import Action, Diagnosis, Evidence, Finding
from llmwatch.doctor.render import as_text
from llmwatch.doctor.settings import DoctorSettings
from llmwatch.doctor.sources import Limit, Thresholds, assumption
from llmwatch.prom import Prometheus
from llmwatch.render import engine_sizing, interpolate
from tests.fakes.dcgm import FakeDcgm, Gpu, counters
from tests.fakes.prometheus import THRESHOLDS_QUERY, Row, sample, stand_in, threshold_rows, up
from tests.support import REPO, free_port, llmwatch_cmd


def finding(id_: str, severity: str, explained_by: str | None = None) -> Finding:
    return Finding(id_, severity, id_, [], Action("why"), explained_by)  # type: ignore[arg-type]


@pytest.mark.unit
def test_rank_puts_the_most_severe_first_and_the_symptom_right_after_its_cause() -> None:
    found = [finding("ttft_high", "warning", "queueing"), finding("gpu_memory", "info"), finding("queueing", "warning"),
             finding("server_errors", "critical"), finding("cold_start", "warning")]  # fmt: skip
    assert [f.id for f in rank(found)] == ["server_errors", "cold_start", "queueing", "ttft_high", "gpu_memory"]
    alone = [finding("ttft_high", "warning"), finding("decode_slow", "warning")]
    assert [f.id for f in rank(alone)] == ["decode_slow", "ttft_high"]


def run_doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(llmwatch_cmd("doctor", *args), capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "flag"),
    [((), "--prometheus"), (("--prometheus", "prometheus:9090"), "--prometheus"),
     (("--prometheus", "http://p:9090", "--window", "5 minutes"), "--window"), (("--verbose",), "--verbose")],
)  # fmt: skip
def test_usage_errors_are_one_line_naming_the_flag_and_exit_2(args: tuple[str, ...], flag: str) -> None:
    done = run_doctor(*args)
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and flag in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.integration
def test_unreachable_prometheus_is_one_line_and_exit_3() -> None:
    done = run_doctor(env={"LLMWATCH_DOCTOR_PROMETHEUS": f"http://127.0.0.1:{free_port()}"})
    assert done.returncode == 3, done
    assert done.stderr.startswith("llmwatch doctor: cannot reach Prometheus") and done.stderr.count("\n") == 1


def fake_prometheus(
    jobs: list[str],
    tmp: Path,
    answers: dict[str, list[float]] | None = None,
    extra: dict[str, float] | None = None,
    rules: bool = True,
) -> Prometheus:
    """A Prometheus that scrapes only ``jobs`` and holds the thresholds (plus ``extra`` ones; none without ``rules``),
    with no traffic yet; ``answers`` gives the values of exact queries (one unlabelled sample each)."""
    series = [*thresholds.load(), *thresholds.load(engine_sizing.write(REPO, tmp))] if rules else []
    series += [thresholds.Threshold(name, value) for name, value in (extra or {}).items()]

    def rows(query: str) -> list[Row]:
        if query in (answers or {}):
            return [sample(v, gpu="0") for v in (answers or {})[query]]
        if query == "up":
            return up(*jobs)
        if query.startswith(THRESHOLDS_QUERY):
            return threshold_rows(series)
        return []

    return stand_in(rows)


@pytest.mark.unit
def test_gateway_alone_lists_the_engine_checks_as_not_checked(tmp_path: Path) -> None:
    report = diagnose(fake_prometheus(["gateway"], tmp_path), "5m")
    why = {n.id: n.why for n in report.not_checked}
    for check in ("cold_start", "kv_cache_pressure", "queueing", "engine_front_cpu"):
        assert "no `vllm` job" in why[check], why
    assert "dcgm-exporter" in why["gpu_memory"]
    assert "no data" in why["ttft_high"]  # gateway metrics are read, there is just no traffic yet
    # A GPU is expected (GPUS_EXPECTED defaults to 1) and no dcgm-exporter is scraped: that is the one finding.
    assert [(f.id, f.evidence[-1].name) for f in report.findings] == [("target_down", "dcgm_targets")]
    assert set(report.checked) | set(why) == {check.id for check in PATH}


@pytest.mark.unit
def test_engine_alone_lists_the_gateway_checks_as_not_checked(tmp_path: Path) -> None:
    report = diagnose(fake_prometheus(["vllm"], tmp_path), "5m")
    why = {n.id: n.why for n in report.not_checked}
    assert "no `gateway` job" in why["empty_responses"], why
    assert "target_down" in report.checked
    assert json.loads(json.dumps(report.as_dict()))["not_checked"][0].keys() == {"id", "why"}


@pytest.mark.unit
def test_engine_sizing_interpolates_as_compose_does() -> None:
    env = {"A": "", "B": "2"}
    assert interpolate.interpolate("${A:-1} ${A-1} ${B:-1} ${C} $$B $B", env) == "1  2  $B 2"
    with pytest.raises(interpolate.RenderError, match="A is required: set A"):
        interpolate.interpolate("${A:?set A}", env)
    rendered = engine_sizing.render(REPO, {"GPUS_EXPECTED": "0", "VLLM_MAX_NUM_SEQS": "8"})
    assert "threshold:gpus_expected:min\n        expr: vector(0)" in rendered and "vector(8)" in rendered


@pytest.mark.unit
def test_fake_dcgm_serves_the_counters_file_in_dcgm_exporters_format(tmp_path: Path) -> None:
    csv = tmp_path / "counters.csv"
    # A field added to the committed file later is served too: the csv is read at run time.
    csv.write_text((REPO / "dcgm-exporter/counters.csv").read_text() + "DCGM_FI_PROF_PCIE_TX_BYTES, counter, TX.\n")
    fake = FakeDcgm([Gpu(0, "NVIDIA H100 80GB HBM3"), Gpu(1, "NVIDIA GeForce RTX 3060", "GPU-b")], counters(csv))
    fake.set(1, DCGM_FI_DEV_FB_USED=11000.0)
    families = {f.name: f for f in text_string_to_metric_families(fake.exposition())}
    assert list(families) == [f.name for f in counters(csv)]
    used = {s.labels["gpu"]: s for s in families["DCGM_FI_DEV_FB_USED"].samples}
    assert used["1"].value == 11000 and used["1"].labels["modelName"] == "NVIDIA GeForce RTX 3060"
    assert set(used["0"].labels) == {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname",
                                     "DCGM_FI_DRIVER_VERSION"}  # fmt: skip
    assert [s.labels["gpu"] for s in families["DCGM_FI_PROF_PCIE_TX_BYTES"].samples] == ["0"]  # none on GeForce
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter" in fake.exposition()  # no _total suffix


@pytest.mark.unit
def test_a_gpu_memory_budget_below_vllms_preallocation_is_info_pointing_to_a_4_bit_model(tmp_path: Path) -> None:
    card = 24564 * 1048576  # an RTX 4090's framebuffer, bytes
    answers = {
        "DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)": [0.9],  # vLLM's own share: expected
        "(DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) * 1048576": [card],
    }
    prom = fake_prometheus(["gateway", "vllm", "dcgm"], tmp_path, answers, {"threshold:kpi_gpu_memory_bytes:max": 3e9})
    (found,) = [f for f in diagnose(prom, "5m").findings if f.id == "gpu_memory"]
    assert found.severity == "info"
    assert found.number("budget_bytes") == 3e9 and found.number("fb_used_ratio") == 0.9
    # The FP16 weights (3.56 GB) cannot fit 3 GB at any share: the action is the gpu-q4 profile, not a share.
    assert found.action.flag == "docker compose --profile gpu-q4 up -d" and found.action.value is None
    assert "3.56 GB" in found.action.why and "4-bit" in found.action.why


@pytest.mark.unit
def test_each_threshold_comes_from_the_first_source_that_has_it() -> None:
    record = "threshold:engine_max_num_seqs:max"
    live = {(record, frozenset()): 16.0}
    engine = {"threshold:gpu_vllm_memory_share:max": (0.8, "vllm:cache_config_info, label gpu_memory_utilization")}
    both = Thresholds(live, {record: 8.0}, engine)
    assert both.get(record) == Limit(record, 16, "rule", record)
    flag = Thresholds({}, {record: 8.0, "threshold:gpu_vllm_memory_share:max": 0.7}, engine)
    assert flag.get(record) == Limit(record, 8, "flag", "--max-num-seqs")
    assert flag.get("threshold:gpu_vllm_memory_share:max") == Limit(
        "threshold:gpu_vllm_memory_share:max", 0.7, "flag", "--gpu-memory-utilization"
    )
    bare = Thresholds({}, {}, engine)
    assert bare.get("threshold:gpu_vllm_memory_share:max").source == "engine"  # type: ignore[union-attr]
    # The shipped defaults: the engine-sizing template's (32 sequences) and thresholds.yml's, labels included.
    assert bare.get(record) == Limit(record, 32, "default", record)
    floor = "threshold:engine_stream_decode_tokens_per_second:min"
    assert bare.get(floor, gpu_class="h100") == Limit(floor, 340, "default", floor)
    assert bare.get("threshold:nope:max") is None
    assert "`--threshold threshold:kpi_gpu_memory_bytes:max=3000000000`" in assumption(
        "threshold:kpi_gpu_memory_bytes:max", 3e9
    )
    assert assumption(record, 4) == (
        "assuming `--max-num-seqs 4` (the stack's default); pass `--max-num-seqs` if yours differs"
    )
    assert assumption("threshold:gateway_ttft_p99_seconds:max", 0.8) == (
        "assuming `--threshold threshold:gateway_ttft_p99_seconds:max=0.8` (the stack's default); pass "
        "`--threshold threshold:gateway_ttft_p99_seconds:max=VALUE` if yours differs"
    )


@pytest.mark.unit
def test_without_the_stacks_rules_nothing_is_skipped_for_a_missing_threshold(tmp_path: Path) -> None:
    report = diagnose(fake_prometheus(["gateway", "vllm"], tmp_path, rules=False), "5m")
    why = {n.id: n.why for n in report.not_checked}
    assert not [w for w in why.values() if "threshold:" in w], why
    assert all("no data" in w or "dcgm-exporter" in w for w in why.values()), why
    # No dcgm-exporter, and only the stack's default says a GPU is expected: not a critical finding here.
    assert report.findings == [] and report.exit_code == 0
    assert {t.source for t in report.thresholds} == {"default"}
    flagged = diagnose(fake_prometheus(["gateway", "vllm"], tmp_path, rules=False), "5m",
                       {"threshold:gpus_expected:min": 1.0})  # fmt: skip
    (found,) = flagged.findings
    assert found.id == "target_down" and found.evidence[0] == Evidence("gpus_expected", 1, "--gpus-expected", "flag")


@pytest.mark.unit
def test_text_output_says_in_one_line_that_defaults_were_used_and_each_finding_what_it_assumed() -> None:
    seqs = Limit("threshold:engine_max_num_seqs:max", 4, "default", "threshold:engine_max_num_seqs:max")
    queueing = Finding("queueing", "warning", "Requests waited", [
        Evidence("mean_queue_seconds", 3.2, "sum(rate(...))"),
        Evidence("max_num_seqs", 4, seqs.where, "default"),
    ], Action("why", "--max-num-seqs", "8"))  # fmt: skip
    live = Limit("threshold:gateway_ttft_p99_seconds:max", 0.8, "rule", "threshold:gateway_ttft_p99_seconds:max")
    text = as_text(Diagnosis([queueing], ["queueing"], [], [seqs, live]), "http://p:9090", "5m")
    assert text.count("the stack's defaults") == 1 and "1 of the 2 read are the stack's defaults" in text
    assert "  assuming `--max-num-seqs 4` (the stack's default); pass `--max-num-seqs` if yours differs\n" in text
    assert "max_num_seqs = 4    <- threshold:engine_max_num_seqs:max (the stack's default)\n" in text
    without = as_text(Diagnosis([queueing], ["queueing"], [], [live]), "http://p:9090", "5m")
    assert "Thresholds:" not in without


@pytest.mark.integration
def test_threshold_flags_have_env_twins_and_bad_ones_are_one_line() -> None:
    settings = parse_cli(DoctorSettings, ["--prometheus", "http://p:9090", "--max-num-seqs", "8",
                                          "--threshold", "threshold:gateway_ttft_p99_seconds:max=1.5"])  # fmt: skip
    assert settings.flags() == {"threshold:engine_max_num_seqs:max": 8, "threshold:gateway_ttft_p99_seconds:max": 1.5}
    env = {"LLMWATCH_DOCTOR_PROMETHEUS": "http://127.0.0.1:1", "LLMWATCH_DOCTOR_GPU_MEMORY_UTILIZATION": "0.8",
           "LLMWATCH_DOCTOR_THRESHOLD": "threshold:a:max=1,threshold:b:min=2"}  # fmt: skip
    with patch.dict(os.environ, env):
        from_env = parse_cli(DoctorSettings, [])
    assert from_env.flags() == {"threshold:a:max": 1, "threshold:b:min": 2, "threshold:gpu_vllm_memory_share:max": 0.8}
    for args, flag in ((("--threshold", "ttft=1"), "--threshold"), (("--max-num-seqs", "0"), "--max-num-seqs")):
        done = run_doctor("--prometheus", "http://127.0.0.1:1", *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and flag in done.stderr, done.stderr


@pytest.mark.unit
def test_jobs_are_found_by_their_metrics_whatever_another_prometheus_names_them() -> None:
    """A cluster's Prometheus: the engine's job is `default/vllm-r1`, the gateway's `llm-gateway`; no dcgm."""
    jobs = {"default/vllm-r1": "vllm:num_requests_running", "llm-gateway": "llmwatch_requests_in_flight"}
    asked: list[str] = []

    def rows(query: str) -> list[Row]:
        if query == "up":
            return up(*jobs)
        found = [job for job, metric in jobs.items() if query == f"group by (job) (last_over_time({metric}[1h]))"]
        return [sample(1, job=job) for job in found]

    prom = stand_in(rows, asked)
    report = diagnose(prom, "5m")
    why = {n.id: n.why for n in report.not_checked}
    assert not [w for w in why.values() if "scrapes no" in w], why  # the engine and the gateway were found
    assert any(a.startswith('time() - max(process_start_time_seconds{job=~"vllm|default/vllm-r1"} or ') for a in asked)
    assert 'up{job=~"gateway|vllm|dcgm|node|default/vllm-r1|llm-gateway"} == 0' in asked
