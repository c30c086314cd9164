"""Elasticsearch, Logstash, Filebeat and Kibana from their pinned official images (ELASTIC_VERSION, .env.example),
configured from this repository, fed by a real `llmwatch gateway` and the vLLM fixtures; the setup job applied from
this machine. Skipped, saying why, when no Docker daemon answers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import REPO, free_port, llmwatch_cmd, running, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

PASSWORDS = {
    "ELASTIC_PASSWORD": "elastic-test-pass",
    "LOGSTASH_WRITER_PASSWORD": "logstash-test-pass",
    "KIBANA_SYSTEM_PASSWORD": "kibana-test-pass",
    "GRAFANA_READER_PASSWORD": "grafana-test-pass",
}
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
RULE_ID = json.loads((REPO / "kibana/rules/empty-responses.json").read_text())["id"]


def elastic_version() -> str:
    if os.environ.get("ELASTIC_VERSION"):
        return os.environ["ELASTIC_VERSION"]
    found = re.search(r"^ELASTIC_VERSION=(\S+)", (REPO / ".env.example").read_text(), re.MULTILINE)
    assert found, "ELASTIC_VERSION is not pinned in .env.example"
    return found[1]


@pytest.fixture(scope="module")
def docker_ready() -> None:
    try:
        import docker

        docker.from_env().ping()
    except Exception as exc:  # no socket, no permission, daemon down: all mean the same here
        pytest.skip(f"no Docker daemon answers ({type(exc).__name__}: {exc}); these tests need one")


@dataclass
class Stack:
    es_url: str
    network: Any
    work: Path

    def es(self, method: str, path: str, user: str = "elastic", password: str | None = None, **kw: Any) -> Any:
        auth = (user, password or PASSWORDS["ELASTIC_PASSWORD"])
        return httpx.request(method, self.es_url + path, auth=auth, timeout=30, **kw)

    def count(self, stream: str) -> int:
        response = self.es("GET", f"/{stream}/_count")
        return int(response.json()["count"]) if response.status_code == 200 else 0


def run_setup(es_url: str, kibana_url: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **PASSWORDS, "ELASTICSEARCH_URL": es_url, "KIBANA_URL": kibana_url, "SETUP_TIMEOUT_S": "300"}
    args = [sys.executable, str(REPO / "elasticsearch/setup/setup.py")]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)


def write_gateway_lines(sim_url: str, logs: Path) -> list[str]:
    """Real access-log lines: a chat, an empty response, a listing, a bad request, a server error."""
    request_ids: list[str] = []
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the second gateway answers 502/503
    for name, upstream in (("access.log", sim_url), ("access.log.1", dead)):
        port = free_port()
        args = llmwatch_cmd("gateway", "--upstream", upstream, "--host", "127.0.0.1", "--port", str(port),
                            "--log-file", str(logs / name), "--no-log-stdout")  # fmt: skip
        with running(args, logs.parent / f"{name}.gateway.log", f"http://127.0.0.1:{port}/healthz"):
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            headers = {"X-OpenWebUI-User-Name": "alice"}
            chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
            calls = [("POST", "/v1/chat/completions", chat), ("POST", "/v1/chat/completions", chat | {"max_tokens": 2}),
                     ("GET", "/v1/models", None), ("POST", "/v1/chat/completions", "{not json")]  # fmt: skip
            for i, (method, path, body) in enumerate(calls if upstream == sim_url else calls[:1]):
                request_id = f"elk-{name}-{i}"
                extra: dict[str, Any] = {"json": body} if isinstance(body, dict) else {"content": body}
                client.request(method, path, headers=headers | {"X-Request-Id": request_id}, **extra)
                request_ids.append(request_id)
    return request_ids


@pytest.fixture(scope="module")
def stack(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network

    version = elastic_version()
    work = tmp_path_factory.mktemp("elk")
    with Network() as network:
        es = (
            DockerContainer(f"docker.elastic.co/elasticsearch/elasticsearch:{version}")
            .with_env("ELASTIC_PASSWORD", PASSWORDS["ELASTIC_PASSWORD"])
            .with_env("ES_JAVA_OPTS", "-Xms512m -Xmx512m")
            .with_volume_mapping(
                str(REPO / "elasticsearch/config/elasticsearch.yml"),
                "/usr/share/elasticsearch/config/elasticsearch.yml",
                "ro",
            )
            .with_network(network)
            .with_network_aliases("elasticsearch")
            .with_exposed_ports(9200)
        )
        with es:
            url = f"http://{es.get_container_host_ip()}:{es.get_exposed_port(9200)}"
            yield Stack(url, network, work)


def test_setup_job_is_idempotent_and_least_privilege(stack: Stack) -> None:
    for _ in range(2):
        result = run_setup(stack.es_url)
        assert result.returncode == 0, result.stderr
    assert stack.es("GET", "/_index_template/logs-llm_gateway").status_code == 200
    # logstash_writer may append to the log data streams and do nothing else.
    denied = stack.es("PUT", "/not-a-log-index", user="logstash_writer", password=PASSWORDS["LOGSTASH_WRITER_PASSWORD"])
    assert denied.status_code == 403
    reader = stack.es("GET", "/logs-llm_gateway-*/_search", user="grafana_reader",
                      password=PASSWORDS["GRAFANA_READER_PASSWORD"])  # fmt: skip
    assert reader.status_code == 200


def test_gateway_lines_and_vllm_logs_land_typed_and_tagged(stack: Stack, sim_url: str) -> None:
    from testcontainers.core.container import DockerContainer

    assert run_setup(stack.es_url).returncode == 0
    logs = stack.work / "gateway-logs"
    logs.mkdir()
    request_ids = write_gateway_lines(sim_url, logs)
    containers = stack.work / "containers"
    for name in ("vllm-container.log", "open-webui-container.log"):
        cid = name.split("-container")[0]
        (containers / cid).mkdir(parents=True)
        (containers / cid / f"{cid}-json.log").write_bytes((REPO / "tests/fixtures/vllm-logs" / name).read_bytes())
    # The project's filebeat.yml, less the Docker-socket processors (the fixture files belong to no container).
    config = yaml.safe_load((REPO / "filebeat/filebeat.yml").read_text())
    for item in config["filebeat.inputs"]:
        item.pop("processors", None)
    (stack.work / "filebeat.yml").write_text(yaml.safe_dump(config))
    version = elastic_version()
    logstash = (
        DockerContainer(f"docker.elastic.co/logstash/logstash:{version}")
        .with_env("LOGSTASH_WRITER_PASSWORD", PASSWORDS["LOGSTASH_WRITER_PASSWORD"])
        .with_env("LLMWATCH_SLOW_MS", "1")
        .with_env("LS_JAVA_OPTS", "-Xms256m -Xmx256m")
        .with_network(stack.network)
        .with_network_aliases("logstash")
    )
    for sub in ("config/logstash.yml", "config/pipelines.yml"):
        logstash.with_volume_mapping(str(REPO / "logstash" / sub), f"/usr/share/logstash/{sub}", "ro")
    for sub in ("pipeline", "patterns"):
        logstash.with_volume_mapping(str(REPO / "logstash" / sub), f"/usr/share/logstash/{sub}", "ro")
    filebeat = (
        DockerContainer(f"docker.elastic.co/beats/filebeat:{version}")
        .with_command("-e --strict.perms=false")
        .with_kwargs(user="root")
        .with_volume_mapping(str(stack.work / "filebeat.yml"), "/usr/share/filebeat/filebeat.yml", "ro")
        .with_volume_mapping(str(logs), "/var/log/llmwatch", "ro")
        .with_volume_mapping(str(containers), "/var/lib/docker/containers", "ro")
        .with_network(stack.network)
    )
    with logstash, filebeat:
        wait_until(lambda: stack.count("logs-llm_gateway-default") >= len(request_ids), 300, "gateway documents")
        wait_until(lambda: stack.count("logs-llm_stack-default") >= 29, 300, "vLLM / Open WebUI documents")

    mapping = stack.es("GET", "/logs-llm_gateway-default/_mapping").json()
    (properties,) = [m["mappings"]["properties"] for m in mapping.values()]
    assert properties["status"]["type"] == "integer" and properties["duration_ms"]["type"] == "float"
    assert properties["user"]["properties"]["name"]["type"] == "keyword"
    assert properties["client"]["properties"]["ip"]["type"] == "ip"
    hits = stack.es("GET", "/logs-llm_gateway-default/_search?size=100").json()["hits"]["hits"]
    docs = {h["_source"]["request_id"]: h["_source"] for h in hits}
    assert sorted(docs) == sorted(request_ids) and len(hits) == len(request_ids)
    for doc in docs.values():
        assert doc["@timestamp"] == doc["time"] and doc["trace"]["id"] == doc["request_id"]
        assert doc["http"]["response"]["status_code"] == doc["status"]
        assert doc["event"]["duration"] == round(doc["duration_ms"] * 1_000_000)
        assert doc["user"]["name"] == "alice"
        assert ("slow" in doc["tags"]) == (doc["duration_ms"] > 1)  # LLMWATCH_SLOW_MS=1
    assert "empty_response" in docs["elk-access.log-1"]["tags"]
    assert docs["elk-access.log-3"]["status"] == 400
    assert "server_error" in docs["elk-access.log.1-0"]["tags"]

    stats = stack.es("GET", "/logs-llm_stack-default/_search", json={"query": {"term": {"tags": "vllm_stats"}}}).json()
    sources = [h["_source"]["vllm"]["stats"] for h in stats["hits"]["hits"]]
    assert len(sources) == 3 and all(isinstance(s["kv_cache_usage_pct"], float) for s in sources)
    errors = stack.es("GET", "/logs-llm_stack-default/_search", json={"query": {"term": {"tags": "traceback"}}}).json()
    assert {h["_source"]["error"]["type"] for h in errors["hits"]["hits"]} >= {"torch.OutOfMemoryError"}


def test_kibana_imports_saved_objects_and_creates_the_rule(stack: Stack) -> None:
    from testcontainers.core.container import DockerContainer

    kibana = (
        DockerContainer(f"docker.elastic.co/kibana/kibana:{elastic_version()}")
        .with_env("KIBANA_SYSTEM_PASSWORD", PASSWORDS["KIBANA_SYSTEM_PASSWORD"])
        .with_env("KIBANA_ENCRYPTION_KEY", "0123456789abcdef0123456789abcdef")
        .with_volume_mapping(str(REPO / "kibana/config/kibana.yml"), "/usr/share/kibana/config/kibana.yml", "ro")
        .with_network(stack.network)
        .with_exposed_ports(5601)
    )
    with kibana:
        url = f"http://{kibana.get_container_host_ip()}:{kibana.get_exposed_port(5601)}"
        for _ in range(2):  # the second run updates what the first created
            result = run_setup(stack.es_url, url)
            assert result.returncode == 0, result.stderr
        auth = ("elastic", PASSWORDS["ELASTIC_PASSWORD"])
        found = httpx.get(
            f"{url}/api/saved_objects/_find?type=dashboard&search_fields=title&search=overview", auth=auth
        )
        assert [o["id"] for o in found.json()["saved_objects"]] == ["llmwatch-gateway-overview"]
        rule = httpx.get(f"{url}/api/alerting/rule/{RULE_ID}", auth=auth)
        assert rule.status_code == 200 and rule.json()["rule_type_id"] == ".es-query"
