"""The Elasticsearch/Kibana setup job (elasticsearch/setup/setup.py) without a network, and the static rules every
logs-as-code file follows: a two-line header, JSON that Elasticsearch accepts, secrets only from the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO
from tests.support.logs import ES_DIR, KIBANA_DIR, load_filebeat, load_json, load_setup_script

pytestmark = pytest.mark.unit

PASSWORDS = {
    "ELASTIC_PASSWORD": "e-pass",
    "LOGSTASH_WRITER_PASSWORD": 'ls "quoted" \\ pass',
    "KIBANA_SYSTEM_PASSWORD": "kb-pass",
    "GRAFANA_READER_PASSWORD": "gr-pass",
}


setup = load_setup_script()


def test_missing_passwords_are_all_named_before_anything_runs() -> None:
    with pytest.raises(setup.ConfigError) as raised:
        setup.load_config({"ELASTIC_PASSWORD": "x", "KIBANA_SYSTEM_PASSWORD": ""})
    message = str(raised.value)
    assert "LOGSTASH_WRITER_PASSWORD" in message and "KIBANA_SYSTEM_PASSWORD" in message
    assert "GRAFANA_READER_PASSWORD" in message and "ELASTIC_PASSWORD," not in message
    assert setup.main({}) == 2  # the exit code the compose job reports


def test_retention_is_validated_and_substituted() -> None:
    with pytest.raises(setup.ConfigError, match="LLMWATCH_LOG_RETENTION"):
        setup.load_config(PASSWORDS | {"LLMWATCH_LOG_RETENTION": "30 days"})
    plan = setup.elasticsearch_plan(setup.load_config(PASSWORDS | {"LLMWATCH_LOG_RETENTION": "7d"}))
    method, path, ilm = plan[0]
    assert (method, path) == ("PUT", "/_ilm/policy/llmwatch-logs")
    assert ilm["policy"]["phases"]["delete"]["min_age"] == "7d"
    default = setup.elasticsearch_plan(setup.load_config(PASSWORDS))[0][2]
    assert default["policy"]["phases"]["delete"]["min_age"] == "30d"


def test_plan_puts_every_file_in_dependency_order_with_passwords_from_env() -> None:
    cfg = setup.load_config(PASSWORDS)
    paths = [path for _, path, _ in setup.elasticsearch_plan(cfg)]
    kinds = [p.split("/")[1] + ("/" + p.split("/")[2] if p.startswith("/_security") else "") for p in paths]
    # ILM before the templates that name it, components before the index templates, roles before users.
    assert kinds == sorted(kinds, key=["_ilm", "_component_template", "_index_template", "_security/role",
                                       "_security/user"].index)  # fmt: skip
    components = {p.split("/")[-1] for p in paths if p.startswith("/_component_template/")}
    for template in (ES_DIR / "index-templates").glob("*.json"):
        assert set(load_json(template)["composed_of"]) <= components
    bodies = {path: body for _, path, body in setup.elasticsearch_plan(cfg)}
    assert bodies["/_security/user/logstash_writer"]["password"] == PASSWORDS["LOGSTASH_WRITER_PASSWORD"]
    assert bodies["/_security/user/grafana_reader"]["roles"] == ["grafana_reader"]
    assert bodies["/_security/user/kibana_system/_password"] == {"password": "kb-pass"}
    # Every password the job needs is required, and only those.
    users = load_json(ES_DIR / "security/users.json")
    needed = {u["password_env"] for u in users["users"].values()} | set(users["builtin_passwords"].values())
    assert needed | {"ELASTIC_PASSWORD"} == set(setup.REQUIRED)


def test_rule_update_drops_what_kibana_only_accepts_on_create() -> None:
    rule = load_json(next((KIBANA_DIR / "rules").glob("*.json")))
    update = setup.rule_update_body({k: v for k, v in rule.items() if k != "id"})
    assert not {"rule_type_id", "consumer", "enabled"} & set(update)
    assert update["params"] == rule["params"] and update["schedule"] == rule["schedule"]
    # Kibana accepts only a UUID v1/v4 as a rule id.
    assert rule["id"][14] == "4" and rule["id"][19] in "89ab" and len(rule["id"]) == 36


def test_saved_objects_go_out_as_one_multipart_file() -> None:
    path = next((KIBANA_DIR / "saved-objects").glob("*.ndjson"))
    body, content_type = setup.multipart(path)
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f"--{boundary}\r\n".encode()) and body.endswith(f"\r\n--{boundary}--\r\n".encode())
    assert path.read_bytes() in body and f'filename="{path.name}"'.encode() in body


def test_every_ndjson_line_is_a_saved_object_with_resolvable_references() -> None:
    objects = [
        json.loads(line) for p in (KIBANA_DIR / "saved-objects").glob("*.ndjson") for line in p.read_text().splitlines()
    ]
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects)
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in ids, (obj["id"], ref)
    titles = {o["attributes"]["title"] for o in objects}
    assert {"LLM gateway: errors", "LLM gateway: empty responses", "LLM gateway: slow requests",
            "LLM gateway: one user's requests", "LLM gateway: overview"} <= titles  # fmt: skip


CONFIGS = [
    REPO / "filebeat/filebeat.yml",
    REPO / "logstash/config/logstash.yml",
    REPO / "logstash/config/pipelines.yml",
    *sorted((REPO / "logstash/pipeline").glob("*.conf")),
    REPO / "logstash/patterns/llm_stack",
    REPO / "elasticsearch/config/elasticsearch.yml",
    REPO / "kibana/config/kibana.yml",
]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_config_files_start_with_the_two_line_header(path: Path) -> None:
    first, second = path.read_text().splitlines()[:2]
    assert first.startswith("# ") and second.startswith("# Departs from upstream defaults")


@pytest.mark.parametrize("path", sorted(ES_DIR.glob("**/*.json")), ids=lambda p: str(p.relative_to(REPO)))
def test_elasticsearch_json_says_what_it_is(path: Path) -> None:
    body = load_json(path)
    meta = body.get("_meta") or body.get("metadata") or body.get("policy", {}).get("_meta")
    assert meta and meta["description"] and meta["departs_from"]


def test_index_templates_win_over_the_builtin_logs_template() -> None:
    for path in (ES_DIR / "index-templates").glob("*.json"):
        template = load_json(path)
        assert template["priority"] > 500 and template["data_stream"] == {}
        assert template["index_patterns"] == [f"{path.stem}-*"]


def test_kibana_and_filebeat_take_secrets_and_hosts_as_the_stack_expects() -> None:
    kibana = yaml.safe_load((KIBANA_DIR / "config/kibana.yml").read_text())
    assert kibana["elasticsearch.username"] == "kibana_system"
    assert kibana["elasticsearch.password"] == "${KIBANA_SYSTEM_PASSWORD}"
    assert kibana["xpack.encryptedSavedObjects.encryptionKey"] == "${KIBANA_ENCRYPTION_KEY}"  # no default: required
    filebeat = load_filebeat()
    assert filebeat["output.logstash"]["hosts"] == ["logstash:5044"]
    assert (filebeat["http.host"], filebeat["http.port"]) == ("0.0.0.0", 5066)
    assert filebeat["path.data"] == "/usr/share/filebeat/data"
    gateway, stack = filebeat["filebeat.inputs"]
    assert gateway["paths"] == ["/var/log/llmwatch/access.log*"] and gateway["parsers"][0]["ndjson"]["target"] == ""
    assert gateway["file_identity.native"] is None and gateway["prospector.scanner.fingerprint.enabled"] is False
    assert (gateway["tags"], stack["tags"]) == (["llm_gateway"], ["llm_stack"])


def test_steps_are_chosen_and_checked() -> None:
    assert setup.load_config(PASSWORDS).steps == ("elasticsearch", "kibana")
    assert setup.load_config(PASSWORDS | {"SETUP_STEPS": "kibana"}).steps == ("kibana",)
    with pytest.raises(setup.ConfigError, match="SETUP_STEPS"):
        setup.load_config(PASSWORDS | {"SETUP_STEPS": "elastic"})


def test_a_degraded_kibana_still_gets_its_objects_and_elasticsearch_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kibana's status API says "degraded" while one plugin lags; its saved-objects API works all the same."""
    calls: list[tuple[str, str]] = []

    def call(self: Any, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, Any]:
        calls.append((self.base, path))
        if path == "/api/status":
            return 200, {"status": {"overall": {"level": "degraded"}}}
        if path.startswith("/api/saved_objects/_import"):
            return 200, {"success": True, "successCount": 1}
        return (404, None) if method == "GET" else (200, {})

    monkeypatch.setattr(setup.Http, "call", call)
    env = PASSWORDS | {"SETUP_STEPS": "kibana", "SETUP_TIMEOUT_S": "1", "ELASTICSEARCH_URL": "http://es:9200"}
    assert setup.main(env) == 0
    assert calls and all(base == "http://kibana:5601" for base, _ in calls)
    assert any(path.startswith("/api/saved_objects/_import") for _, path in calls)
