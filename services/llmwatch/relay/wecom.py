"""WeCom (企业微信) group bot: markdown message POSTed to .../cgi-bin/webhook/send?key=KEY (the key is the secret)."""

from __future__ import annotations

from typing import Any

import httpx

from llmwatch.relay.render import Message
from llmwatch.relay.target import post_json, secret_parts

# WeCom markdown knows three colours: info (green), comment (grey), warning (orange-red).
_COLOUR = {"firing": "warning", "resolved": "info"}


def verdict(answer: dict[str, Any]) -> str | None:
    """WeCom answers HTTP 200 with {"errcode": 0, "errmsg": "ok"}, or a non-zero errcode on failure."""
    code = answer.get("errcode")
    return None if code == 0 else f"errcode {code}: {answer.get('errmsg', '')}"


def body(message: Message) -> dict[str, Any]:
    colour = _COLOUR.get(message.status, "comment")
    heading = f'### <font color="{colour}">{message.title}</font>'
    return {"msgtype": "markdown", "markdown": {"content": message.text(line_sep="\n", heading=heading)}}


class WeComTarget:
    name = "wecom"

    def __init__(self, url: str) -> None:
        self._url = url
        self._secrets = secret_parts(url)

    async def send(self, client: httpx.AsyncClient, message: Message) -> None:
        await post_json(client, self._url, body(message), verdict, self._secrets)
