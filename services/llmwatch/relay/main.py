"""`llmwatch relay`: parse flags (or LLMWATCH_RELAY_* env), build the configured targets, serve with uvicorn.

With no target configured the relay refuses to start: it would answer Alertmanager 2xx for alerts that reach
no one, and Alertmanager would count them as sent. `--log-target` is the explicit way to run without an IM.
"""

from __future__ import annotations

import asyncio
import logging
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics
from pydantic import SecretStr

from llmwatch.config import parse_cli
from llmwatch.relay.app import create_app
from llmwatch.relay.delivery import Deliverer, RetryPolicy
from llmwatch.relay.dingtalk import DingTalkTarget
from llmwatch.relay.feishu import FeishuTarget
from llmwatch.relay.metrics import RelayMetrics
from llmwatch.relay.render import Renderer
from llmwatch.relay.settings import RelaySettings
from llmwatch.relay.target import LogTarget, Target
from llmwatch.relay.wecom import WeComTarget

logger = logging.getLogger(__name__)


def _plain(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def build_targets(settings: RelaySettings) -> list[Target]:
    targets: list[Target] = []
    if settings.dingtalk_url is not None:
        targets.append(DingTalkTarget(settings.dingtalk_url.get_secret_value(), _plain(settings.dingtalk_secret)))
    if settings.wecom_url is not None:
        targets.append(WeComTarget(settings.wecom_url.get_secret_value()))
    if settings.feishu_url is not None:
        targets.append(FeishuTarget(settings.feishu_url.get_secret_value(), _plain(settings.feishu_secret)))
    if settings.log_target:
        targets.append(LogTarget())
    return targets


async def _serve(settings: RelaySettings, targets: list[Target]) -> None:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    metrics = RelayMetrics(registry, [t.name for t in targets])
    policy = RetryPolicy(settings.max_attempts, settings.backoff_seconds, settings.backoff_max_seconds)
    renderer = Renderer(settings.runbook_base_url, ZoneInfo(settings.timezone))
    async with httpx.AsyncClient(timeout=settings.timeout_seconds) as client:
        deliverer = Deliverer(client, metrics, policy)
        app = create_app(targets, deliverer, renderer, metrics, registry, settings.shutdown_grace_seconds)
        config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, lifespan="on")
        await uvicorn.Server(config).serve()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = parse_cli(RelaySettings, argv)
    logging.getLogger().setLevel(settings.log_level.upper())
    disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series: no rule reads them
    targets = build_targets(settings)
    if not targets:
        logger.error(
            "no delivery target configured: set LLMWATCH_RELAY_DINGTALK_URL, LLMWATCH_RELAY_WECOM_URL or "
            "LLMWATCH_RELAY_FEISHU_URL (or pass --log-target for a demo); refusing to accept alerts no one gets"
        )
        return 2
    logger.info("relaying Alertmanager notifications to: %s", ", ".join(t.name for t in targets))
    asyncio.run(_serve(settings, targets))
    return 0
