"""Delivery with retries against the fake IMs (in-process transport), and the relay's HTTP API over ASGI."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from llmwatch.relay.app import create_app
from llmwatch.relay.delivery import Deliverer, RetryPolicy
from llmwatch.relay.dingtalk import DingTalkTarget
from llmwatch.relay.feishu import FeishuTarget
from llmwatch.relay.metrics import RelayMetrics
from llmwatch.relay.render import Message, Renderer
from llmwatch.relay.target import Target
from llmwatch.relay.wecom import WeComTarget
from tests.fakes.im import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    SECRETS,
    FakeIM,
    dingtalk_url,
    feishu_url,
    wecom_url,
)
from tests.support.relay_payloads import parse, payload

pytestmark = pytest.mark.unit
BASE = "http://im.test"


class Stepper:
    """A clock that moves on by 1 s whenever read, and a sleep that only records how long it was asked to wait."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self.now += 1.0
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def targets(clock: Callable[[], float], dingtalk_secret: str = DINGTALK_SECRET) -> list[Target]:
    return [
        DingTalkTarget(dingtalk_url(BASE), dingtalk_secret, clock),
        WeComTarget(wecom_url(BASE)),
        FeishuTarget(feishu_url(BASE), FEISHU_SECRET, clock),
    ]


def message() -> Message:
    return Renderer().render(parse(payload()))


def count(registry: CollectorRegistry, target: str, outcome: str) -> float:
    value = registry.get_sample_value("llmwatch_relay_deliveries_total", {"target": target, "outcome": outcome})
    assert value is not None
    return value


@pytest.fixture
def fake() -> FakeIM:
    return FakeIM()


@pytest.fixture
def stepper() -> Stepper:
    return Stepper()


Run = Callable[[Target, Message], Awaitable[bool]]


@pytest.fixture
def deliver(fake: FakeIM, stepper: Stepper) -> Iterator[tuple[Run, CollectorRegistry]]:
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry, ["dingtalk", "wecom", "feishu"])
    policy = RetryPolicy(max_attempts=4, backoff_seconds=2.0, backoff_max_seconds=5.0)

    async def run(target: Target, msg: Message) -> bool:
        async with httpx.AsyncClient(transport=fake.transport()) as client:
            return await Deliverer(client, metrics, policy, stepper.sleep).deliver(target, msg)

    yield run, registry


@pytest.mark.parametrize("http", [False, True], ids=["im-errcode", "http-502"])
@pytest.mark.parametrize("index", [0, 1, 2], ids=["dingtalk", "wecom", "feishu"])
async def test_failed_attempts_are_retried_with_backoff_until_delivered(
    fake: FakeIM, stepper: Stepper, deliver: tuple[Run, CollectorRegistry], index: int, http: bool
) -> None:
    run, registry = deliver
    target = targets(stepper.clock)[index]
    fake.fail_first(target.name, 2, http=http)
    assert await run(target, message())
    assert stepper.sleeps == [2.0, 4.0]
    assert len(fake.delivered(target.name)) == 1
    assert (count(registry, target.name, "retry"), count(registry, target.name, "success")) == (2.0, 1.0)
    assert count(registry, target.name, "failure") == 0.0


async def test_each_attempt_is_signed_anew(
    fake: FakeIM, stepper: Stepper, deliver: tuple[Run, CollectorRegistry]
) -> None:
    run, _ = deliver
    ding, _, feishu = targets(stepper.clock)
    fake.fail_first("dingtalk", 2)
    assert await run(ding, message())
    fake.fail_first("feishu", 1)
    assert await run(feishu, message())
    ding_stamps = [a.query["timestamp"] for a in fake.attempts if a.target == "dingtalk"]
    feishu_stamps = [a.body["timestamp"] for a in fake.attempts if a.target == "feishu"]
    assert len(set(ding_stamps)) == 3
    assert len(set(feishu_stamps)) == 2


async def test_gives_up_after_max_attempts_counts_it_and_never_logs_secrets(
    fake: FakeIM, stepper: Stepper, deliver: tuple[Run, CollectorRegistry], caplog: pytest.LogCaptureFixture
) -> None:
    run, registry = deliver
    wrong_secret = "SECthis-is-the-wrong-secret"
    ding = targets(stepper.clock, dingtalk_secret=wrong_secret)[0]
    with caplog.at_level(logging.DEBUG):
        assert not await run(ding, message())
    assert stepper.sleeps == [2.0, 4.0, 5.0]  # doubling, capped at backoff_max_seconds
    assert (count(registry, "dingtalk", "retry"), count(registry, "dingtalk", "failure")) == (3.0, 1.0)
    assert not fake.delivered("dingtalk")
    assert "errcode 310000: sign not match" in caplog.text
    assert "gave up delivering" in caplog.text
    for secret in (*SECRETS, wrong_secret, BASE):
        assert secret not in caplog.text


async def test_network_errors_are_retried_and_logged_without_the_url(
    stepper: Stepper, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    registry = CollectorRegistry()
    metrics = RelayMetrics(registry, ["wecom"])
    target = WeComTarget(wecom_url(BASE))
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        deliverer = Deliverer(client, metrics, RetryPolicy(max_attempts=2), stepper.sleep)
        with caplog.at_level(logging.INFO):
            assert not await deliverer.deliver(target, message())
    assert "ConnectError: cannot connect to ***" in caplog.text
    assert wecom_url(BASE) not in caplog.text and "wecom-key" not in caplog.text
    assert count(registry, "wecom", "failure") == 1.0


async def test_drain_drops_and_counts_what_is_still_waiting_to_retry(fake: FakeIM) -> None:
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry, ["wecom"])
    fake.fail_first("wecom", 100)
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        deliverer = Deliverer(client, metrics, RetryPolicy(max_attempts=5, backoff_seconds=60.0))
        deliverer.submit(WeComTarget(wecom_url(BASE)), message())
        assert deliverer.pending == 1
        await wait_for(lambda: len(fake.attempts) >= 1, "the first attempt")
        assert await deliverer.drain(0.05) == 1
    assert count(registry, "wecom", "dropped") == 1.0
    assert registry.get_sample_value("llmwatch_relay_deliveries_pending") == 0.0


async def wait_for(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.01)


# --- the HTTP API, over ASGI ---


async def post(app: Any, path: str, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relay") as client:
        return await client.post(path, content=body, headers={"Content-Type": "application/json"})


async def test_api_accepts_a_notification_and_delivers_it_to_every_target(fake: FakeIM, stepper: Stepper) -> None:
    registry = CollectorRegistry()
    all_targets = targets(stepper.clock)
    metrics = RelayMetrics(registry, [t.name for t in all_targets])
    async with httpx.AsyncClient(transport=fake.transport()) as client:
        deliverer = Deliverer(client, metrics, RetryPolicy(), stepper.sleep)
        app = create_app(all_targets, deliverer, Renderer(), metrics, registry)
        response = await post(app, "/alertmanager", json.dumps(payload()).encode())
        assert response.status_code == 202
        assert response.json() == {"status": "accepted", "targets": ["dingtalk", "wecom", "feishu"]}
        await wait_for(lambda: len(fake.accepted) == 3, "one message per IM")
        one = await post(app, "/alertmanager/feishu", json.dumps(payload()).encode())
        assert one.status_code == 202 and one.json()["targets"] == ["feishu"]
        await wait_for(lambda: len(fake.delivered("feishu")) == 2, "the second Feishu message")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relay") as api:
            health = (await api.get("/healthz")).json()
            exposition = (await api.get("/metrics")).text
    assert health == {"status": "ok", "targets": ["dingtalk", "wecom", "feishu"], "pending": 0}
    assert 'llmwatch_relay_deliveries_total{outcome="success",target="feishu"} 2.0' in exposition
    assert 'llmwatch_relay_notifications_total{outcome="accepted"} 2.0' in exposition


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({**payload(), "version": "3"}).encode(),
        json.dumps({**payload(), "alerts": []}).encode(),
        json.dumps({"version": "4", "status": "firing"}).encode(),
    ],
    ids=["not-json", "array", "version-3", "no-alerts", "missing-alerts"],
)
async def test_api_answers_400_to_what_is_not_an_alertmanager_payload(body: bytes, stepper: Stepper) -> None:
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry, ["wecom"])
    async with httpx.AsyncClient(transport=FakeIM().transport()) as client:
        deliverer = Deliverer(client, metrics, RetryPolicy(), stepper.sleep)
        app = create_app([WeComTarget(wecom_url(BASE))], deliverer, Renderer(), metrics, registry)
        response = await post(app, "/alertmanager", body)
        assert deliverer.pending == 0
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_payload"
    assert error["message"].startswith("expected an Alertmanager webhook payload (version 4)")
    assert registry.get_sample_value("llmwatch_relay_notifications_total", {"outcome": "invalid"}) == 1.0


async def test_api_answers_404_for_a_target_that_is_not_configured(stepper: Stepper) -> None:
    registry = CollectorRegistry()
    metrics = RelayMetrics(registry, ["wecom"])
    async with httpx.AsyncClient(transport=FakeIM().transport()) as client:
        deliverer = Deliverer(client, metrics, RetryPolicy(), stepper.sleep)
        app = create_app([WeComTarget(wecom_url(BASE))], deliverer, Renderer(), metrics, registry)
        response = await post(app, "/alertmanager/dingtalk", json.dumps(payload()).encode())
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "target 'dingtalk' is not configured here; configured: wecom"
