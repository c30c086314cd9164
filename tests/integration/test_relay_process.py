"""A real `llmwatch relay` process on 127.0.0.1 posting to fake IM servers over real sockets, and the real
Alertmanager binary posting its webhook to the relay through alertmanager/alertmanager.yml.

These start processes, so they are `integration` tests (they live here because the relay's tests are grouped).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fakes.im import SECRETS, FakeIM, relay_env
from tests.support import REPO, free_port, llmwatch_cmd, need_binary, running, wait_until
from tests.support.relay_payloads import payload

pytestmark = pytest.mark.integration


def relay_args(port: int) -> list[str]:
    return llmwatch_cmd("relay", "--host", "127.0.0.1", "--port", str(port))


def sample(text: str, target: str, outcome: str) -> float | None:
    needle = f'llmwatch_relay_deliveries_total{{outcome="{outcome}",target="{target}"}} '
    for line in text.splitlines():
        if line.startswith(needle):
            return float(line.split()[-1])
    return None


def test_relay_process_retries_until_each_im_has_the_message(tmp_path: Path) -> None:
    fake = FakeIM()
    fake.fail_first("dingtalk", 2)
    with fake.serve() as base:
        port = free_port()
        relay = f"http://127.0.0.1:{port}"
        env = relay_env(base, 0.05, 0.2)
        with running(relay_args(port), tmp_path / "relay.log", f"{relay}/healthz", env=env) as proc:
            answer = httpx.post(f"{relay}/alertmanager", json=payload(), timeout=5)
            assert answer.status_code == 202, answer.text
            for target in ("dingtalk", "wecom", "feishu"):
                wait_until(lambda t=target: fake.delivered(t), 10, f"a {target} message at the fake IM")

            def metrics_settled() -> str | None:
                text = httpx.get(f"{relay}/metrics", timeout=2).text
                return text if sample(text, "dingtalk", "success") == 1.0 else None

            exposition = wait_until(metrics_settled, 10, "the relay to count the DingTalk success")
            bad = httpx.post(f"{relay}/alertmanager", content=b'{"version": "3"}', timeout=5)
            output = proc.output()

    assert sample(exposition, "dingtalk", "retry") == 2.0
    assert sample(exposition, "wecom", "success") == 1.0 and sample(exposition, "wecom", "retry") == 0.0
    assert sample(exposition, "feishu", "success") == 1.0
    assert bad.status_code == 400
    assert [a.target for a in fake.attempts].count("dingtalk") == 3
    assert "GatewayErrorRatioHigh" in fake.delivered("feishu")[0].body["card"]["header"]["title"]["content"]
    assert "errcode 130101" in output and "retrying in" in output
    for secret in SECRETS:
        assert secret not in output, f"relay output leaked {secret!r}"


def test_relay_refuses_to_start_without_any_target(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_RELAY_")}
    env["LLMWATCH_RELAY_WECOM_URL"] = ""  # what compose passes for an unset ${VAR:-}
    done = subprocess.run(
        [*relay_args(free_port())], capture_output=True, text=True, timeout=30, env=env, cwd=REPO, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "no delivery target configured" in done.stderr


def test_relay_rejects_a_malformed_webhook_url_without_echoing_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMWATCH_RELAY_")}
    env["LLMWATCH_RELAY_DINGTALK_URL"] = f"htps://oapi.dingtalk.com/robot/send?access_token={SECRETS[0]}"
    done = subprocess.run(
        [*relay_args(free_port())], capture_output=True, text=True, timeout=30, env=env, cwd=REPO, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "--dingtalk-url" in done.stderr and "must start with http:// or https://" in done.stderr
    assert SECRETS[0] not in done.stdout + done.stderr


def test_real_alertmanager_webhook_reaches_the_ims_through_the_relay(tmp_path: Path) -> None:
    binary = need_binary("prometheus-alertmanager")
    rendered = subprocess.run(
        ["sh", str(REPO / "alertmanager/entrypoint.sh"), "render"],
        env={"PATH": os.environ["PATH"], "LLMWATCH_ALERTMANAGER_CONFIG": str(REPO / "alertmanager/alertmanager.yml")},
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    fake = FakeIM()
    with fake.serve() as base:
        relay_port, am_port = free_port(), free_port()
        config = tmp_path / "alertmanager.yml"
        config.write_text(rendered.replace("http://relay:9099", f"http://127.0.0.1:{relay_port}"))
        am_args = [
            binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
        ]  # fmt: skip
        relay = f"http://127.0.0.1:{relay_port}/healthz"
        am = f"http://127.0.0.1:{am_port}"
        with (
            running(relay_args(relay_port), tmp_path / "relay.log", relay, env=relay_env(base, 0.05, 0.2)),
            running(am_args, tmp_path / "am.log", f"{am}/-/ready"),
        ):
            now = datetime.now(UTC).isoformat()
            alert = {
                "labels": {"alertname": "GPUXidError", "severity": "critical", "component": "gpu", "gpu": "0"},
                "annotations": {"summary": "GPU 0 on gpu-host reported XID 79", "runbook_url": "docs/x.md#y"},
                "startsAt": now,
                "generatorURL": "http://prometheus:9090/graph",
            }
            httpx.post(f"{am}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
            # the critical route waits 10s (group_wait) before its first notification
            wait_until(lambda: len(fake.accepted) >= 3, 30, "Alertmanager -> relay -> three IMs")
    texts = {r.target: json.dumps(r.body, ensure_ascii=False) for r in fake.accepted}
    assert set(texts) == {"dingtalk", "wecom", "feishu"}
    for text in texts.values():
        assert "GPUXidError" in text and "GPU 0 on gpu-host reported XID 79" in text
