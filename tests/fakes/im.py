"""A fake of the three IM bot endpoints (DingTalk, WeCom, Feishu), shared by the relay tests and the live alerting test.

It answers as the real services do: HTTP 200 with {"errcode": 0, "errmsg": "ok"} (DingTalk, WeCom) or
{"code": 0, "msg": "success", "data": {}} (Feishu), and the services' own error codes for a wrong token, a bad
signature or a stale timestamp. Signatures are checked with the documented formulas, written here independently
of llmwatch.relay. It can fail the first N requests of a target, as an IM error or as an HTTP 502.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support import serving

DINGTALK_TOKEN = "dt-token-5f1c2a9b7e"
DINGTALK_SECRET = "SECdingtalk-3b8e7f1d2c"
WECOM_KEY = "wecom-key-9a7c1e5b3d"
FEISHU_HOOK = "feishu-hook-2d4f6a8c0e"
FEISHU_SECRET = "feishu-secret-7e5c3a1f9b"
SECRETS = (DINGTALK_TOKEN, DINGTALK_SECRET, WECOM_KEY, FEISHU_HOOK, FEISHU_SECRET)
WECOM_MARKDOWN_MAX_BYTES = 4096
FEISHU_MAX_BODY_BYTES = 20 * 1024


def dingtalk_url(base: str) -> str:
    return f"{base}/robot/send?access_token={DINGTALK_TOKEN}"


def wecom_url(base: str) -> str:
    return f"{base}/cgi-bin/webhook/send?key={WECOM_KEY}"


def feishu_url(base: str) -> str:
    return f"{base}/open-apis/bot/v2/hook/{FEISHU_HOOK}"


def expected_dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)), before URL encoding."""
    mac = hmac.digest(secret.encode("utf-8"), (timestamp_ms + "\n" + secret).encode("utf-8"), "sha256")
    return base64.standard_b64encode(mac).decode("ascii")


def expected_feishu_sign(secret: str, timestamp_s: str) -> str:
    """base64(HMAC-SHA256(key=timestamp + "\\n" + secret, msg=empty))."""
    mac = hmac.new((timestamp_s + "\n" + secret).encode("utf-8"), digestmod=hashlib.sha256)
    return base64.standard_b64encode(mac.digest()).decode("ascii")


@dataclass
class Received:
    target: str
    query: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeIM:
    clock: Callable[[], float] = time.time
    failures: dict[str, int] = field(default_factory=dict)  # target -> requests still to fail
    fail_with_http: bool = False  # False: IM error JSON with HTTP 200; True: HTTP 502
    accepted: list[Received] = field(default_factory=list)
    attempts: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_first(self, target: str, count: int, http: bool = False) -> None:
        self.failures[target] = count
        self.fail_with_http = http

    def delivered(self, target: str) -> list[Received]:
        with self._lock:
            return [r for r in self.accepted if r.target == target]

    def handle(self, path_and_query: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path_and_query)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"errcode": 40001, "errmsg": "invalid json"}
        if parts.path == "/robot/send":
            return self._dingtalk(query, body)
        if parts.path == "/cgi-bin/webhook/send":
            return self._wecom(query, body, raw)
        if parts.path.startswith("/open-apis/bot/v2/hook/"):
            return self._feishu(parts.path.rsplit("/", 1)[-1], body, raw)
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _record(self, target: str, query: dict[str, str], body: dict[str, Any]) -> bool:
        """Count the attempt; True when this one is to fail on purpose."""
        with self._lock:
            self.attempts.append(Received(target, query, body))
            if self.failures.get(target, 0) > 0:
                self.failures[target] -= 1
                return True
            self.accepted.append(Received(target, query, body))
            return False

    def _stale(self, seconds: float) -> bool:
        return abs(self.clock() - seconds) > 3600

    def _dingtalk(self, query: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if query.get("access_token") != DINGTALK_TOKEN:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not timestamp.isdigit() or self._stale(int(timestamp) / 1000):
            return 200, {"errcode": 310000, "errmsg": "sign not match, timestamp is invalid"}
        if not hmac.compare_digest(sign, expected_dingtalk_sign(DINGTALK_SECRET, timestamp)):
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        markdown = body.get("markdown") or {}
        if body.get("msgtype") != "markdown" or not markdown.get("title") or not markdown.get("text"):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 markdown"}
        if self._record("dingtalk", query, body):
            if self.fail_with_http:
                return 502, {"errcode": -1, "errmsg": "bad gateway"}
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _wecom(self, query: dict[str, str], body: dict[str, Any], raw: bytes) -> tuple[int, dict[str, Any]]:
        if query.get("key") != WECOM_KEY:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        content = (body.get("markdown") or {}).get("content")
        if body.get("msgtype") != "markdown" or not content:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if len(content.encode()) > WECOM_MARKDOWN_MAX_BYTES:
            return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
        if self._record("wecom", query, body):
            if self.fail_with_http:
                return 502, {"errcode": -1, "errmsg": "bad gateway"}
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _feishu(self, hook: str, body: dict[str, Any], raw: bytes) -> tuple[int, dict[str, Any]]:
        if hook != FEISHU_HOOK:
            return 200, {"code": 19001, "msg": "param invalid: incoming webhook access token invalid", "data": {}}
        timestamp, sign = str(body.get("timestamp", "")), str(body.get("sign", ""))
        signed = timestamp.isdigit() and not self._stale(int(timestamp))
        if not signed or not hmac.compare_digest(sign, expected_feishu_sign(FEISHU_SECRET, timestamp)):
            msg = "sign match fail or timestamp is not within one hour from current time"
            return 200, {"code": 19021, "msg": msg, "data": {}}
        card = body.get("card") or {}
        if len(raw) > FEISHU_MAX_BODY_BYTES or body.get("msg_type") != "interactive" or not card.get("elements"):
            return 200, {"code": 9499, "msg": "Bad Request", "data": {}}
        if self._record("feishu", {}, body):
            if self.fail_with_http:
                return 502, {"code": -1, "msg": "bad gateway", "data": {}}
            return 200, {"code": 11232, "msg": "frequency limited", "data": {}}
        return 200, {"code": 0, "msg": "success", "data": {}}

    def transport(self) -> httpx.MockTransport:
        """An in-process transport for httpx.AsyncClient (no socket)."""

        def handler(request: httpx.Request) -> httpx.Response:
            status, answer = self.handle(request.url.raw_path.decode(), request.content)
            return httpx.Response(status, json=answer)

        return httpx.MockTransport(handler)

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a free port of 127.0.0.1 in a thread; yields the base URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = fake.handle(self.path, raw)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
            yield url


def relay_env(base: str, backoff: float, backoff_max: float) -> dict[str, str]:
    """`llmwatch relay` environment that sends to all three fakes under ``base`` (signed where the IM signs)."""
    return {
        "LLMWATCH_RELAY_DINGTALK_URL": dingtalk_url(base),
        "LLMWATCH_RELAY_DINGTALK_SECRET": DINGTALK_SECRET,
        "LLMWATCH_RELAY_WECOM_URL": wecom_url(base),
        "LLMWATCH_RELAY_FEISHU_URL": feishu_url(base),
        "LLMWATCH_RELAY_FEISHU_SECRET": FEISHU_SECRET,
        "LLMWATCH_RELAY_BACKOFF_SECONDS": str(backoff),
        "LLMWATCH_RELAY_BACKOFF_MAX_SECONDS": str(backoff_max),
    }
