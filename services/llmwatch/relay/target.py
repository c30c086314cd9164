"""What a delivery target is, and the HTTP exchange the three IM bots share: POST JSON, read a JSON verdict."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from llmwatch.relay.render import Message

logger = logging.getLogger(__name__)

# httpx logs every request's full URL at INFO, and an IM webhook URL carries its token: keep those records out of
# every log, whoever configures logging (uvicorn, pytest, an embedding app).
for _noisy in ("httpx", "httpcore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)


class DeliveryError(Exception):
    """One failed attempt. The text says why and never holds a URL, token or secret."""


class Target(Protocol):
    name: str

    async def send(self, client: httpx.AsyncClient, message: Message) -> None:
        """Deliver once; raise DeliveryError when the IM did not take the message."""


def secret_parts(url: str, *extra: str | None) -> tuple[str, ...]:
    """Strings that must never reach a log: the URL, its query values, its last path segment, and ``extra``."""
    parts = urlsplit(url)
    found = [url, *(value for _, value in parse_qsl(parts.query)), parts.path.rsplit("/", 1)[-1], *extra]
    # Longest first, so that a token inside the URL is not replaced before the URL is.
    return tuple(sorted({p for p in found if p and len(p) >= 6}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    verdict: Callable[[dict[str, Any]], str | None],
    secrets: Iterable[str],
) -> None:
    """POST ``body``; success is a 2xx whose JSON ``verdict`` returns None (else the IM's error, as text)."""
    try:
        response = await client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise DeliveryError(redact(f"{type(exc).__name__}: {exc}", secrets)) from None
    if not response.is_success:
        raise DeliveryError(redact(f"HTTP {response.status_code}: {response.text[:200]}", secrets))
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryError(redact(f"HTTP {response.status_code} with a non-JSON body", secrets)) from None
    problem = verdict(answer) if isinstance(answer, dict) else "the answer is not a JSON object"
    if problem is not None:
        raise DeliveryError(redact(problem, secrets))


class SignedWebhook:
    """A bot webhook URL with an optional signing secret (DingTalk, Feishu); each send signs anew with ``clock``."""

    name: str

    def __init__(self, url: str, secret: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self._url = url
        self._secret = secret
        self._clock = clock
        self._secrets = secret_parts(url, secret)


class LogTarget:
    """Writes each message to the log: lets the demo run the relay with no IM configured, visibly."""

    name = "log"

    async def send(self, client: httpx.AsyncClient, message: Message) -> None:
        logger.info("alert message: %s\n%s", message.title, message.text())
