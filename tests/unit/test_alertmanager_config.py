"""alertmanager/alertmanager.yml: amtool accepts it as committed and as entrypoint.sh renders it, severities route
to the relay and the generic webhook, and the committed file holds no real webhook URL."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmwatch.render import alertmanager
from tests.support import REPO, need_binary

CONFIG = REPO / "alertmanager" / "alertmanager.yml"
ENTRYPOINT = REPO / "alertmanager" / "entrypoint.sh"
RELAY_URL = "http://relay:9099/alertmanager"
WEBHOOK = "https://hooks.example.com/alerts?token=abc&x='1'"


def amtool(*args: str | Path) -> str:
    done = subprocess.run([need_binary("amtool"), *map(str, args)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"amtool {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def render(webhook: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "LLMWATCH_ALERTMANAGER_CONFIG": str(CONFIG)}
    if webhook is not None:
        env["LLMWATCH_ALERT_WEBHOOK_URL"] = webhook
    return subprocess.run(["sh", str(ENTRYPOINT), "render"], env=env, capture_output=True, text=True, timeout=10)


def webhook_urls(config: dict[str, Any]) -> list[str]:
    return [hook["url"] for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]


@pytest.mark.integration
def test_amtool_accepts_the_committed_config() -> None:
    amtool("check-config", CONFIG)


@pytest.mark.integration
@pytest.mark.parametrize("webhook", [WEBHOOK, None, ""], ids=["with-webhook", "unset", "empty"])
def test_rendered_config_is_valid_and_has_the_webhook_only_when_set(tmp_path: Path, webhook: str | None) -> None:
    done = render(webhook)
    assert done.returncode == 0, done.stderr
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(done.stdout)
    amtool("check-config", rendered)
    urls = webhook_urls(yaml.safe_load(done.stdout))
    assert urls == ([RELAY_URL, WEBHOOK] if webhook else [RELAY_URL])
    assert "generic-webhook.invalid" not in done.stdout
    if webhook:
        assert "token=abc" not in done.stderr  # the URL is a secret: the script never echoes it


@pytest.mark.integration
def test_entrypoint_refuses_a_webhook_that_is_not_http() -> None:
    done = render("ftp://hooks.example.com/x")
    assert done.returncode == 2
    assert "must start with http:// or https://" in done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_every_severity_reaches_the_oncall_receiver(severity: str) -> None:
    out = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"severity={severity}", "alertname=X")
    assert out.strip() == "oncall"


# Everything below is pure: YAML and Python only.


@pytest.mark.unit
def test_critical_and_warning_routes_send_to_relay_and_generic_webhook_with_sensible_timing() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    routes = {tuple(r["matchers"]): r for r in config["route"]["routes"]}
    critical, warning = routes[('severity="critical"',)], routes[('severity="warning"',)]
    (oncall,) = [r for r in config["receivers"] if r["name"] == "oncall"]
    assert critical["receiver"] == warning["receiver"] == "oncall"
    assert len(oncall["webhook_configs"]) == 2 and all(h["send_resolved"] for h in oncall["webhook_configs"])
    assert critical["repeat_interval"] == "1h" and warning["repeat_interval"] == "4h"
    assert critical["group_wait"] == "10s" and config["route"]["group_wait"] == "30s"


@pytest.mark.unit
def test_missing_gateway_or_engine_inhibits_their_own_derived_alerts() -> None:
    rules = yaml.safe_load(CONFIG.read_text())["inhibit_rules"]
    down = [r for r in rules if r["source_matchers"] == ['alertname=~"GatewayDown|EngineDown"']]
    assert down and down[0]["equal"] == ["stack", "job"]


@pytest.mark.unit
def test_committed_config_names_the_relay_once_and_no_real_webhook() -> None:
    text = CONFIG.read_text()
    assert text.count("relay:9099") == 1  # one place for the live test to rewrite
    for url in webhook_urls(yaml.safe_load(text)):
        assert url == RELAY_URL or url.split("/")[2].endswith(".invalid"), url
    first, second = text.splitlines()[:2]
    assert first.startswith("# ") and second.startswith("# ")


@pytest.mark.integration
def test_the_demo_runs_what_compose_runs_with_no_webhook_at_local_urls(tmp_path: Path) -> None:
    """`make demo` and the live tests: entrypoint.sh's own rendering (no generic webhook), the relay at 127.0.0.1."""
    local = alertmanager.local(REPO, {"relay": 19099})
    compose = render(None)
    assert compose.returncode == 0, compose.stderr
    expected = yaml.safe_load(compose.stdout.replace(RELAY_URL, "http://127.0.0.1:19099/alertmanager"))
    assert yaml.safe_load(local) == expected
    assert webhook_urls(expected) == ["http://127.0.0.1:19099/alertmanager"]
    (tmp_path / "alertmanager.yml").write_text(local)
    amtool("check-config", tmp_path / "alertmanager.yml")


@pytest.mark.unit
def test_only_the_entrypoint_reads_the_generic_webhook_markers() -> None:
    """One parser of the BEGIN/END generic-webhook block: compose's entrypoint.sh, which the demo runs too."""
    readers = [
        path.relative_to(REPO).as_posix()
        for folder in ("services", "deploy", "loadtest", "bench", "scripts")
        for path in (REPO / folder).rglob("*")
        if path.is_file() and path.suffix in (".py", ".sh") and "BEGIN generic-webhook" in path.read_text()
    ]
    assert readers == [], f"the generic-webhook markers are parsed outside alertmanager/entrypoint.sh: {readers}"
