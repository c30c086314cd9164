"""Every error path: a clear OpenAI-envelope error, exactly one access-log line, one counter increment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.support import REPO, Gateway, GatewayFactory, free_port, total, wait_until
from tests.support.vllm_chunks import MODEL

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "2+2?"}]}
# The fake engine's behaviour header is not on the gateway's allow-list: the tests let it through.
FAKE = ("--forward-header", "X-Fake")


def _only_line(gw: Gateway, before: int) -> dict[str, Any]:
    lines = gw.wait_lines(before + 1)
    assert len(lines) == before + 1, f"expected exactly one new line, got {lines[before:]}"
    jsonschema.validate(lines[-1], SCHEMA)
    return lines[-1]


def _assert_envelope(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"]
    return dict(error)


def _post(gw: Gateway, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gw.url + "/v1/chat/completions", content=content, timeout=10.0,
                      headers={"Content-Type": "application/json", **headers})  # fmt: skip


def test_bad_requests_are_answered_by_the_gateway(start_gateway: GatewayFactory, fake_vllm: str) -> None:
    gw = start_gateway(fake_vllm, "--max-body-bytes", "2000")
    cases = [
        (b"{not json", 400, "invalid_json"),
        (b"[1, 2]", 400, "invalid_request"),
        (json.dumps({"messages": []}).encode(), 400, "invalid_request"),
        (json.dumps({**CHAT, "pad": "x" * 3000}).encode(), 413, "body_too_large"),
    ]
    for n, (body, status, code) in enumerate(cases):
        error = _assert_envelope(_post(gw, body), status, code)
        line = _only_line(gw, n)
        assert (line["status"], line["error_type"], line["upstream"]) == (status, code, None)
        assert line["error_message"] == error["message"]
        assert line["kind"] == "chat"
    assert _post(gw, json.dumps({"messages": []}).encode()).json()["error"]["param"] == "model"
    metrics = gw.metrics()
    assert total(metrics, "llmwatch_requests_total", status="400") == 4
    assert total(metrics, "llmwatch_requests_total", status="413") == 1
    resp = httpx.get(gw.url + "/chat/completions")
    _assert_envelope(resp, 404, "route_not_allowed")
    assert _only_line(gw, 5)["status"] == 404


def test_api_keys_map_to_names_and_never_reach_the_log(
    start_gateway: GatewayFactory, fake_vllm: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# name=key\nalice=sk-alice-secret\nopen-webui=sk-owui-secret forward-user\n")
    gw = start_gateway(fake_vllm, "--api-keys", str(keys))
    _assert_envelope(_post(gw, CHAT), 401, "unauthorized")
    _assert_envelope(_post(gw, CHAT, Authorization="Bearer sk-wrong"), 401, "unauthorized")
    assert _post(gw, CHAT, Authorization="Bearer sk-alice-secret").status_code == 200
    ok = _post(gw, CHAT, Authorization="Bearer sk-owui-secret", **{"X-OpenWebUI-User-Name": "bob"})
    assert ok.status_code == 200
    # Open WebUI percent-encodes UTF-8 names in the header.
    named = _post(gw, CHAT, Authorization="Bearer sk-owui-secret",
                  **{"X-OpenWebUI-User-Name": "Zo%C3%AB %E5%BC%A0%E4%B8%89"})  # fmt: skip
    assert named.status_code == 200
    lines = gw.wait_lines(5)
    assert [line["status"] for line in lines] == [401, 401, 200, 200, 200]
    assert [line["user"] for line in lines] == [None, None, "alice", "bob", "Zoë 张三"]
    raw = gw.log_path.read_text()
    for secret in ("sk-alice-secret", "sk-owui-secret", "sk-wrong"):
        assert secret not in raw


def test_upstream_unreachable_is_502(start_gateway: GatewayFactory) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway(dead)
    _assert_envelope(_post(gw, CHAT), 502, "upstream_unreachable")
    line = _only_line(gw, 0)
    assert (line["status"], line["error_type"], line["upstream"]) == (502, "upstream_unreachable", dead)
    assert total(gw.metrics(), "llmwatch_upstream_errors_total", error_type="upstream_unreachable") == 1
    assert httpx.get(gw.url + "/health").status_code == 503
    assert httpx.get(gw.url + "/readyz").status_code == 503


def test_upstream_timeout_is_504(start_gateway: GatewayFactory, fake_vllm: str) -> None:
    gw = start_gateway(fake_vllm, "--read-timeout", "0.5", *FAKE)
    _assert_envelope(_post(gw, CHAT, **{"X-Fake": "hang"}), 504, "upstream_timeout")
    line = _only_line(gw, 0)
    assert (line["status"], line["error_type"]) == (504, "upstream_timeout")
    assert 450 <= line["duration_ms"] < 5000


@pytest.mark.parametrize(
    ("status", "error_type", "engine_failed"), [(400, "engine_rejected", 0), (500, "upstream_error", 1)]
)
def test_upstream_errors_pass_through_with_their_body(
    start_gateway: GatewayFactory, fake_vllm: str, status: int, error_type: str, engine_failed: int
) -> None:
    gw = start_gateway(fake_vllm, *FAKE)
    resp = _post(gw, CHAT, **{"X-Fake": f"error{status}"})
    assert resp.status_code == status
    assert resp.json()["error"]["message"] == f"fake {status}"
    line = _only_line(gw, 0)
    assert (line["status"], line["error_type"], line["error_message"]) == (status, error_type, f"fake {status}")
    metrics = gw.metrics()
    assert total(metrics, "llmwatch_requests_total", status=str(status)) == 1
    assert total(metrics, "llmwatch_request_errors_total", error_type=error_type) == 1
    # The engine refusing a bad request is the client's fault, not a failure of the engine.
    assert total(metrics, "llmwatch_upstream_errors_total") == engine_failed


def test_stream_broken_by_the_upstream_is_502_and_the_client_gets_an_error_event(
    start_gateway: GatewayFactory, fake_vllm: str
) -> None:
    gw = start_gateway(fake_vllm, *FAKE)
    resp = _post(gw, {**CHAT, "stream": True}, **{"X-Fake": "broken"})
    assert resp.status_code == 200  # the headers went out before the upstream broke
    assert '"upstream_stream_broken"' in resp.text.strip().splitlines()[-1]
    line = _only_line(gw, 0)
    assert (line["status"], line["error_type"]) == (502, "upstream_stream_broken")
    assert line["completion_tokens"] == 1  # the one delta that arrived


def test_client_disconnect_mid_stream_cancels_upstream_and_logs_499(
    start_gateway: GatewayFactory, fake_vllm: str
) -> None:
    gw = start_gateway(fake_vllm, *FAKE)
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json={**CHAT, "stream": True},
                      headers={"X-Fake": "slow"}, timeout=10.0) as resp:  # fmt: skip
        assert resp.status_code == 200
        seen = 0
        for line in resp.iter_lines():
            seen += line.startswith("data:")
            if seen >= 6:
                break  # leaving the block closes the connection mid-stream
    line = _only_line(gw, 0)
    assert (line["status"], line["error_type"]) == (499, "client_disconnect")
    assert line["completion_tokens"] is not None and 4 <= line["completion_tokens"] < 200
    assert line["ttft_ms"] is not None
    wait_until(lambda: httpx.get(fake_vllm + "/stats").json()["cancelled"] == 1, 5, "the upstream to see the cancel")
    assert total(gw.metrics(), "llmwatch_requests_total", status="499") == 1
    assert total(gw.metrics(), "llmwatch_requests_in_flight") == 0


def test_a_line_past_the_log_queue_limit_is_dropped_and_counted(start_gateway: GatewayFactory) -> None:
    """--log-max-queued-bytes, wired: with room for no line at all, a request is still answered and counted in the
    metrics, and its dropped line is counted by reason (the writer's limit itself is tested in test_access_log)."""
    gw = start_gateway(f"http://127.0.0.1:{free_port()}", "--log-max-queued-bytes", "1")
    before = gw.metrics()
    assert total(before, "llmwatch_access_log_lines_dropped_total", reason="queue_full") == 0
    assert total(before, "llmwatch_access_log_lines_dropped_total", reason="write_error") == 0
    response = httpx.get(gw.url + "/v1/nothing-here", timeout=10)
    assert response.status_code == 404
    metrics = gw.metrics()
    assert total(metrics, "llmwatch_access_log_lines_dropped_total", reason="queue_full") == 1
    assert total(metrics, "llmwatch_request_errors_total", error_type="route_not_allowed") == 1
    assert gw.lines() == []
