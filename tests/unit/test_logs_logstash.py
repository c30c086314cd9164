"""Logstash configuration checked offline: every pipeline parses (logstash-pipeline-parser), and a stricter pass
knows each plugin and option used, the pipeline wiring, the secrets, and the files the containers mount."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from logstash_pipeline_parser import Pipeline

from tests.support import REPO
from tests.support.logs import (
    ES_DIR,
    LOGSTASH_DIR,
    LogstashConfig,
    Plugin,
    load_json,
    load_pipeline,
    parse_pipeline,
    run_copies,
)

pytestmark = pytest.mark.unit

PIPELINES = sorted((LOGSTASH_DIR / "pipeline").glob("*.conf"))
COMMON = {"id", "add_tag", "remove_tag", "add_field", "remove_field", "enable_metric", "periodic_flush"}
# The options of the plugins used, from each plugin's reference page; a typo or a removed option fails here.
KNOWN: dict[tuple[str, str], set[str]] = {
    ("input", "beats"): {"id", "port", "host", "ssl_enabled", "client_inactivity_timeout", "ecs_compatibility"},
    ("input", "pipeline"): {"id", "address"},
    ("filter", "mutate"): COMMON
    | {"copy", "rename", "convert", "gsub", "strip", "split", "lowercase", "uppercase", "replace", "update", "merge"},
    ("filter", "date"): COMMON | {"match", "target", "timezone", "locale", "tag_on_failure"},
    ("filter", "grok"): COMMON
    | {"match", "patterns_dir", "patterns_files_glob", "break_on_match", "tag_on_failure", "overwrite"},
    ("filter", "ruby"): COMMON | {"code", "tag_on_exception"},
    ("output", "pipeline"): {"id", "send_to"},
    ("output", "elasticsearch"): {
        "id", "hosts", "user", "password", "data_stream", "data_stream_type", "data_stream_dataset",
        "data_stream_namespace", "data_stream_auto_routing", "data_stream_sync_fields", "ssl_enabled",
        "ssl_certificate_authorities",
    },
}  # fmt: skip
CONTAINER_DIRS = {
    "/usr/share/logstash/pipeline": LOGSTASH_DIR / "pipeline",
    "/usr/share/logstash/patterns": LOGSTASH_DIR / "patterns",
}


def problems(config: LogstashConfig) -> list[str]:
    found = []
    for plugin in config.plugins:
        known = KNOWN.get((plugin.section, plugin.name))
        if known is None:
            found.append(f"unknown {plugin.section} plugin {plugin.name!r}")
            continue
        found += [f"{plugin.name}: unknown option {o!r}" for o in plugin.options if o not in known]
        if "id" not in plugin.options:
            found.append(f"{plugin.name} without an id (the monitoring API names plugins by it)")
    return found


def container_path(path: str) -> Path:
    for inside, outside in CONTAINER_DIRS.items():
        if path == inside or path.startswith(inside + "/"):
            return outside / path[len(inside) :].lstrip("/")
    raise AssertionError(f"{path} is not under a directory docker-compose.yml mounts")


def plugins(name: str) -> list[Plugin]:
    return [p for conf in PIPELINES for p in load_pipeline(conf).plugins if p.name == name]


@pytest.mark.parametrize("conf", PIPELINES, ids=lambda p: p.name)
def test_pipeline_parses_and_uses_known_plugins_and_options(conf: Path) -> None:
    assert Pipeline(conf.read_text()).parse()
    assert problems(load_pipeline(conf)) == []


def test_the_checker_catches_a_typo_and_a_syntax_error(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text('filter { mutate { id => "x" add_tagz => ["a"] } }')
    assert problems(load_pipeline(conf)) == ["mutate: unknown option 'add_tagz'"]
    conf.write_text('filter { mutate { id => "x" add_tag => ["a"] }')
    with pytest.raises(Exception, match="Expected"):
        load_pipeline(conf)


def test_pipelines_yml_wires_beats_to_one_pipeline_per_data_stream() -> None:
    pipelines = yaml.safe_load((LOGSTASH_DIR / "config/pipelines.yml").read_text())
    ids = [p["pipeline.id"] for p in pipelines]
    assert sorted(ids) == ["beats", "llm_gateway", "llm_stack"]
    assert sorted(container_path(p["path.config"]).name for p in pipelines) == [c.name for c in PIPELINES]
    sent = {address for p in plugins("pipeline") if p.section == "output" for address in p.options["send_to"]}
    received = {p.options["address"] for p in plugins("pipeline") if p.section == "input"}
    assert sent == received == {"llm_gateway", "llm_stack"}
    (beats,) = plugins("beats")
    assert beats.options["port"] == 5044


def test_outputs_write_data_streams_with_templates_and_a_role() -> None:
    role = load_json(ES_DIR / "security/roles/logstash_writer.json")
    (granted,) = role["indices"]
    templates = [load_json(p) for p in (ES_DIR / "index-templates").glob("*.json")]
    for output in plugins("elasticsearch"):
        options = output.options
        stream = f"{options['data_stream_type']}-{options['data_stream_dataset']}-{options['data_stream_namespace']}"
        assert options["data_stream"] == "true" and options["user"] == "logstash_writer"
        # The password has no default: Logstash refuses to start without it.
        assert options["password"] == "${LOGSTASH_WRITER_PASSWORD}"
        pattern = f"{options['data_stream_type']}-{options['data_stream_dataset']}-*"
        assert any(pattern in t["index_patterns"] and "data_stream" in t for t in templates), stream
        assert pattern in granted["names"] and {"create_doc", "auto_configure"} <= set(granted["privileges"])


def test_grok_patterns_dir_is_mounted_and_the_slow_threshold_has_a_default() -> None:
    for grok in plugins("grok"):
        (directory,) = grok.options["patterns_dir"]
        assert container_path(directory).is_dir()
    (threshold,) = [p for p in plugins("mutate") if "[@metadata][slow_ms]" in p.options.get("add_field", {})]
    assert threshold.options["add_field"]["[@metadata][slow_ms]"] == "${LLMWATCH_SLOW_MS:30000}"


def test_settings_keep_events_durable() -> None:
    settings = yaml.safe_load((LOGSTASH_DIR / "config/logstash.yml").read_text())
    assert settings["queue.type"] == "persisted" and settings["dead_letter_queue.enable"] is True
    assert settings["api.http.host"] == "0.0.0.0" and "path.config" not in settings  # pipelines.yml rules


# Container names equal the compose service names in both runtimes (docker-compose.yml, deploy/k8s).
STACK_SERVICES = ["vllm", "sim", "llama", "gateway", "open-webui", "relay"]


@pytest.mark.parametrize("service", STACK_SERVICES)
def test_llm_stack_names_the_service_in_docker_and_kubernetes_shapes(service: str) -> None:
    """Filebeat's add_docker_metadata gives the compose label; Kubernetes autodiscover gives kubernetes.*."""
    filters = [
        items for section, items in parse_pipeline(LOGSTASH_DIR / "pipeline/llm_stack.conf") if section == "filter"
    ]
    (stack_filter,) = filters
    docker = {"container": {"labels": {"com_docker_compose_service": service}, "name": f"llmwatch-{service}-1"}}
    kubernetes = {
        "kubernetes": {
            "container": {"name": service},
            "namespace": "llmwatch",
            "pod": {"name": f"{service}-7d9f8c6b5-x2x4q"},
            "labels": {"app_kubernetes_io/name": service},
        }
    }
    for shape in (docker, kubernetes):
        event = run_copies(stack_filter, {"message": "x", "tags": ["llm_stack"], **shape})
        assert event["service"]["name"] == service, shape
    assert "service" not in run_copies(stack_filter, {"message": "x"})


def test_kubernetes_fields_are_mapped() -> None:
    mapping = load_json(ES_DIR / "component-templates/llm_stack@mappings.json")["template"]["mappings"]["properties"]
    kubernetes = mapping["kubernetes"]["properties"]
    assert kubernetes["container"]["properties"]["name"]["type"] == "keyword"
    assert kubernetes["namespace"]["type"] == kubernetes["pod"]["properties"]["name"]["type"] == "keyword"


# Logstash's own placeholder rule (logstash-core/lib/logstash/util/substitution_variables.rb and the Java
# ConfigVariableExpander: `\${(?<name>[a-zA-Z_.][a-zA-Z0-9_.]*)(:(?<default>[^}]*))?}`). A reference without a
# default fails the pipeline at start when the variable is unset; compose's `${...}` forms do not apply here.
LOGSTASH_PLACEHOLDER = re.compile(r"\$\{(?P<name>[a-zA-Z_.][a-zA-Z0-9_.]*)(:(?P<default>[^}]*))?\}")


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_pipeline_variable_is_set_by_compose_or_has_a_default(path: Path) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    environment = compose["services"]["logstash"].get("environment") or {}
    names = set(environment) if isinstance(environment, dict) else {e.split("=", 1)[0] for e in environment}
    text = path.read_text()
    assert text.count("${") == len(LOGSTASH_PLACEHOLDER.findall(text)), "a `${` Logstash would not substitute"
    for match in LOGSTASH_PLACEHOLDER.finditer(text):
        assert match.group("default") is not None or match.group("name") in names, match.group(0)
