"""The fake IM server (tests/fakes/im.py) must refuse what the real DingTalk, WeCom and Feishu refuse."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.fakes.im import (
    DINGTALK_SECRET,
    FEISHU_SECRET,
    FakeIM,
    dingtalk_url,
    expected_dingtalk_sign,
    expected_feishu_sign,
    feishu_url,
    wecom_url,
)

pytestmark = pytest.mark.unit


def _post(fake: FakeIM, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(url)
    return fake.handle(f"{parts.path}?{parts.query}", json.dumps(body).encode())


def test_fake_dingtalk_refuses_a_wrong_signature_and_a_stale_timestamp() -> None:
    fake = FakeIM(clock=lambda: 1_700_000_000.0)
    body = {"msgtype": "markdown", "markdown": {"title": "t", "text": "x"}}
    now_ms = "1700000000000"
    good = expected_dingtalk_sign(DINGTALK_SECRET, now_ms)
    wrong = expected_dingtalk_sign("SECnot-the-secret", now_ms)
    old_ms = "1699990000000"  # 10,000 s earlier
    old = expected_dingtalk_sign(DINGTALK_SECRET, old_ms)
    base = dingtalk_url("http://im")
    assert _post(fake, f"{base}&timestamp={now_ms}&sign={wrong}", body)[1]["errcode"] == 310000
    assert _post(fake, f"{base}&timestamp={old_ms}&sign={old}", body)[1]["errcode"] == 310000
    assert _post(fake, "http://im/robot/send?access_token=nope", body)[1]["errcode"] == 300001
    # the signature travels URL-encoded ('+', '/', '=' escaped); parse_qs decodes it back
    encoded = httpx.QueryParams({"sign": good})
    assert _post(fake, f"{base}&timestamp={now_ms}&{encoded}", body)[1] == {"errcode": 0, "errmsg": "ok"}


def test_fake_feishu_refuses_a_wrong_signature_and_wecom_a_wrong_key() -> None:
    fake = FakeIM(clock=lambda: 1_700_000_000.0)
    card = {"msg_type": "interactive", "card": {"elements": [{"tag": "div"}]}}
    ok = {**card, "timestamp": "1700000000", "sign": expected_feishu_sign(FEISHU_SECRET, "1700000000")}
    bad = {**card, "timestamp": "1700000000", "sign": expected_feishu_sign("other", "1700000000")}
    assert _post(fake, feishu_url("http://im"), bad)[1]["code"] == 19021
    assert _post(fake, feishu_url("http://im"), ok)[1]["code"] == 0
    markdown = {"msgtype": "markdown", "markdown": {"content": "x"}}
    assert _post(fake, "http://im/cgi-bin/webhook/send?key=nope", markdown)[1]["errcode"] == 93000
    too_long = {"msgtype": "markdown", "markdown": {"content": "x" * 5000}}
    assert _post(fake, wecom_url("http://im"), too_long)[1]["errcode"] == 40058


def test_fake_fails_the_first_requests_when_told() -> None:
    fake = FakeIM()
    fake.fail_first("wecom", 2)
    markdown = {"msgtype": "markdown", "markdown": {"content": "x"}}
    codes = [_post(fake, wecom_url("http://im"), markdown)[1]["errcode"] for _ in range(3)]
    assert codes == [45009, 45009, 0]
    assert len(fake.attempts) == 3
    assert len(fake.delivered("wecom")) == 1
