"""Apply llmwatch's Elasticsearch and Kibana configuration: ILM, templates, roles, users, saved objects, alert rule.

Idempotent: every step is a PUT or an upsert, so run it after each change (compose profile `setup`). Standard
library only, so any image with Python 3.9+ runs it (the llmwatch image does):

    python3 elasticsearch/setup/setup.py

Environment (the four passwords are required; the job fails, naming every missing one, before touching anything):
    ELASTIC_PASSWORD, LOGSTASH_WRITER_PASSWORD, KIBANA_SYSTEM_PASSWORD, GRAFANA_READER_PASSWORD
    ELASTICSEARCH_URL       default http://elasticsearch:9200
    KIBANA_URL              default http://kibana:5601; set it empty to skip the Kibana steps
    SETUP_STEPS             default "elasticsearch,kibana"; compose runs them as two jobs, so that shipping logs
                            never waits for Kibana (the `setup` job: elasticsearch; `kibana-setup`: kibana)
    LLMWATCH_LOG_RETENTION  default 30d: delete log indices this long after rollover
    GRAFANA_PUBLIC_URL      default http://localhost:$GRAFANA_PORT (3000): Grafana's address in the browser, for
                            the Kibana dashboard's link to it (replaces ${GRAFANA_PUBLIC_URL} in kibana/saved-objects)
    SETUP_TIMEOUT_S         default 300: how long to wait for Elasticsearch and Kibana to come up
    LLMWATCH_CONFIG_ROOT    default: the repository root this file sits in (holds elasticsearch/ and kibana/)
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("llmwatch.setup")

REQUIRED = ("ELASTIC_PASSWORD", "LOGSTASH_WRITER_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "GRAFANA_READER_PASSWORD")
RETENTION_PLACEHOLDER = "${LLMWATCH_LOG_RETENTION}"
GRAFANA_URL_PLACEHOLDER = "${GRAFANA_PUBLIC_URL}"
# The URL lands inside JSON strings and a markdown link: nothing that would end either.
PUBLIC_URL = re.compile(r"https?://[^\s\"\\()<>]+")
DATA_STREAMS = "logs-llm_gateway-*,logs-llm_stack-*"
STEPS = ("elasticsearch", "kibana")
# Kibana's /api/status levels that still serve the saved-objects and alerting APIs (critical and unavailable don't).
KIBANA_READY = ("available", "degraded")
# Rule fields Kibana accepts on create but rejects on update.
CREATE_ONLY_RULE_FIELDS = ("rule_type_id", "consumer", "enabled")


class SetupError(Exception):
    """A problem the operator has to fix; the message says what."""


class ConfigError(SetupError):
    """The environment is incomplete or wrong; raised before any request is sent."""


@dataclass(frozen=True)
class Config:
    env: Mapping[str, str]
    es_url: str
    kibana_url: str
    steps: tuple[str, ...]
    retention: str
    timeout_s: float
    root: Path
    grafana_url: str


def load_config(env: Mapping[str, str]) -> Config:
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise ConfigError(f"set {', '.join(missing)} (see .env.example); nothing was changed")
    retention = env.get("LLMWATCH_LOG_RETENTION") or "30d"
    if not re.fullmatch(r"[0-9]+[dhms]", retention):
        raise ConfigError(f"LLMWATCH_LOG_RETENTION={retention!r}: use a number and a unit d, h, m or s, e.g. 30d")
    # A browser-facing address, never called from here (compose always sets it).
    grafana_url = (env.get("GRAFANA_PUBLIC_URL") or f"http://localhost:{env.get('GRAFANA_PORT') or 3000}").rstrip("/")
    if not PUBLIC_URL.fullmatch(grafana_url):
        raise ConfigError(f"GRAFANA_PUBLIC_URL={grafana_url!r}: use the http(s) URL people open Grafana at")
    steps = tuple(s.strip() for s in (env.get("SETUP_STEPS") or ",".join(STEPS)).split(",") if s.strip())
    if not steps or set(steps) - set(STEPS):
        raise ConfigError(f"SETUP_STEPS={env.get('SETUP_STEPS')!r}: use elasticsearch, kibana or both, comma-separated")
    return Config(
        env=env,
        es_url=(env.get("ELASTICSEARCH_URL") or "http://elasticsearch:9200").rstrip("/"),
        kibana_url=env.get("KIBANA_URL", "http://kibana:5601").rstrip("/"),
        steps=steps,
        retention=retention,
        timeout_s=float(env.get("SETUP_TIMEOUT_S") or 300),
        root=Path(env.get("LLMWATCH_CONFIG_ROOT") or Path(__file__).resolve().parents[2]),
        grafana_url=grafana_url,
    )


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def elasticsearch_plan(cfg: Config) -> list[tuple[str, str, dict[str, Any]]]:
    """Every Elasticsearch request, in dependency order: (method, path, body)."""
    es = cfg.root / "elasticsearch"
    ilm = json.loads((es / "ilm/llmwatch-logs.json").read_text().replace(RETENTION_PLACEHOLDER, cfg.retention))
    plan: list[tuple[str, str, dict[str, Any]]] = [("PUT", "/_ilm/policy/llmwatch-logs", ilm)]
    plan += [("PUT", f"/_component_template/{p.stem}", _json(p)) for p in sorted(es.glob("component-templates/*.json"))]
    plan += [("PUT", f"/_index_template/{p.stem}", _json(p)) for p in sorted(es.glob("index-templates/*.json"))]
    plan += [("PUT", f"/_security/role/{p.stem}", _json(p)) for p in sorted(es.glob("security/roles/*.json"))]
    users = _json(es / "security/users.json")
    for name, spec in users["users"].items():
        body = {"password": cfg.env[spec["password_env"]], "roles": spec["roles"], "full_name": spec["full_name"]}
        plan.append(("PUT", f"/_security/user/{name}", body))
    for name, env_name in users["builtin_passwords"].items():
        plan.append(("POST", f"/_security/user/{name}/_password", {"password": cfg.env[env_name]}))
    return plan


class Http:
    """Basic-auth JSON client for one base URL; returns (status, parsed body) and never raises on HTTP status."""

    def __init__(self, base: str, user: str, password: str, headers: Mapping[str, str] | None = None) -> None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.base = base
        self.headers = {"Authorization": f"Basic {token}", **(headers or {})}

    def call(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=dict(self.headers))
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def send(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, None if body is None else json.dumps(body).encode())
        if not 200 <= status < 300:
            raise SetupError(f"{method} {self.base}{path} answered {status}: {answer}")
        return answer


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:  # refused or reset while the service starts
            pass
        time.sleep(2)
    raise SetupError(f"{what} did not come up within {timeout_s:.0f}s")


def apply_elasticsearch(cfg: Config) -> None:
    es = Http(cfg.es_url, "elastic", cfg.env["ELASTIC_PASSWORD"])
    wait_for(
        f"Elasticsearch at {cfg.es_url}",
        lambda: es.call("GET", "/_cluster/health?wait_for_status=yellow&timeout=5s")[0] == 200,
        cfg.timeout_s,
    )
    for method, path, body in elasticsearch_plan(cfg):
        es.send(method, path, body)
        log.info("%s %s", method, path)
    # Template changes reach an existing data stream at its next backing index; roll over lazily on the next write.
    for stream in es.send("GET", f"/_data_stream/{DATA_STREAMS}?expand_wildcards=all")["data_streams"]:
        es.send("POST", f"/{stream['name']}/_rollover?lazy=true")
        log.info("lazy rollover of %s", stream["name"])


def multipart(path: Path, content: bytes | None = None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    )
    return (
        head.encode() + (path.read_bytes() if content is None else content) + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def kibana_saved_objects(cfg: Config, path: Path) -> bytes:
    """An ndjson file of saved objects with the links to Grafana pointing at GRAFANA_PUBLIC_URL."""
    return path.read_text().replace(GRAFANA_URL_PLACEHOLDER, cfg.grafana_url).encode()


def rule_update_body(rule: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in rule.items() if key not in CREATE_ONLY_RULE_FIELDS}


def apply_kibana(cfg: Config) -> None:
    kb = Http(cfg.kibana_url, "elastic", cfg.env["ELASTIC_PASSWORD"], {"kbn-xsrf": "llmwatch-setup"})

    def available() -> bool:
        status, answer = kb.call("GET", "/api/status")
        return status == 200 and answer["status"]["overall"]["level"] in KIBANA_READY

    wait_for(f"Kibana at {cfg.kibana_url}", available, cfg.timeout_s)
    for path in sorted((cfg.root / "kibana/saved-objects").glob("*.ndjson")):
        body, content_type = multipart(path, kibana_saved_objects(cfg, path))
        status, answer = kb.call("POST", "/api/saved_objects/_import?overwrite=true", body, content_type)
        if status != 200 or not answer.get("success"):
            raise SetupError(f"importing {path.name} answered {status}: {answer}")
        log.info("imported %s (%s objects)", path.name, answer["successCount"])
    for path in sorted((cfg.root / "kibana/rules").glob("*.json")):
        rule = _json(path)
        rule_id = rule.pop("id")
        exists = kb.call("GET", f"/api/alerting/rule/{rule_id}")[0] == 200
        if exists:
            kb.send("PUT", f"/api/alerting/rule/{rule_id}", rule_update_body(rule))
        else:
            kb.send("POST", f"/api/alerting/rule/{rule_id}", rule)
        log.info("%s rule %s (%s)", "updated" if exists else "created", rule["name"], rule_id)


def main(env: Mapping[str, str]) -> int:
    logging.basicConfig(level=logging.INFO, format="setup: %(message)s")
    try:
        cfg = load_config(env)
        if "elasticsearch" in cfg.steps:
            apply_elasticsearch(cfg)
        if "kibana" in cfg.steps and cfg.kibana_url:
            apply_kibana(cfg)
    except SetupError as exc:
        log.error("%s", exc)
        return 2 if isinstance(exc, ConfigError) else 1
    log.info("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(os.environ))
