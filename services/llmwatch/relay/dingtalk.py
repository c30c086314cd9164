"""DingTalk custom robot: markdown message, optionally signed ("加签").

Signature: sign = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}"))), appended to
the webhook URL as &timestamp=<ms>&sign=<sign>. DingTalk rejects a timestamp over an hour off: each attempt signs anew.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote_plus, urlsplit

import httpx

from llmwatch.relay.render import Message
from llmwatch.relay.target import SignedWebhook, post_json


def sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


def verdict(answer: dict[str, Any]) -> str | None:
    """DingTalk answers HTTP 200 with {"errcode": 0, "errmsg": "ok"}, or a non-zero errcode on failure."""
    code = answer.get("errcode")
    return None if code == 0 else f"errcode {code}: {answer.get('errmsg', '')}"


def body(message: Message) -> dict[str, Any]:
    # DingTalk markdown needs a blank line to break a line; the title is what the phone notification shows.
    text = message.text(line_sep="\n\n", heading=f"#### {message.title}")
    return {"msgtype": "markdown", "markdown": {"title": message.title, "text": text}}


class DingTalkTarget(SignedWebhook):
    name = "dingtalk"

    async def send(self, client: httpx.AsyncClient, message: Message) -> None:
        url = self._url
        if self._secret:
            url = signed_url(url, self._secret, int(self._clock() * 1000))
        await post_json(client, url, body(message), verdict, self._secrets)
