"""Feishu (飞书) custom bot: an interactive card with a lark_md body, optionally signed ("签名校验").

Signature: sign = base64(HMAC-SHA256(key=f"{timestamp_s}\\n{secret}", msg=b"")), sent in the JSON body next to
"timestamp" (seconds, as a string). Feishu rejects a timestamp over an hour off: each attempt signs anew.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx

from llmwatch.relay.render import Message
from llmwatch.relay.target import SignedWebhook, post_json


def sign(secret: str, timestamp_s: int) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def verdict(answer: dict[str, Any]) -> str | None:
    """Feishu answers {"code": 0, "msg": "success"} (older bots: "StatusCode"), or a non-zero code on failure."""
    code = answer.get("code", answer.get("StatusCode"))
    return None if code == 0 else f"code {code}: {answer.get('msg', answer.get('StatusMessage', ''))}"


def _template(message: Message) -> str:
    if message.status == "resolved":
        return "green"
    return "red" if message.severity == "critical" else "orange"


def card(message: Message) -> dict[str, Any]:
    return {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": message.title}, "template": _template(message)},
        "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": message.text(line_sep="\n")}}],
    }


class FeishuTarget(SignedWebhook):
    name = "feishu"

    async def send(self, client: httpx.AsyncClient, message: Message) -> None:
        payload: dict[str, Any] = {"msg_type": "interactive", "card": card(message)}
        if self._secret:
            timestamp = int(self._clock())
            payload["timestamp"] = str(timestamp)
            payload["sign"] = sign(self._secret, timestamp)
        await post_json(client, self._url, payload, verdict, self._secrets)
