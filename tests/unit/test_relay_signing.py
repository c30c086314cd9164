"""DingTalk and Feishu signatures against the documented formulas and against vectors computed with openssl."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from llmwatch.relay import dingtalk, feishu

pytestmark = pytest.mark.unit

# Computed outside Python:
#   printf '%s\n%s' 1700000000123 SEC0123456789abcdef | openssl dgst -sha256 -hmac SEC0123456789abcdef -binary | base64
DINGTALK_VECTOR = ("SEC0123456789abcdef", 1700000000123, "V9VP5gL2WDsEZvZQHnbd9k4n+p56ibcLMh+WKMZRQas=")
#   printf '' | openssl dgst -sha256 -hmac "$(printf '%s\n%s' 1700000000 feishu-secret-xyz)" -binary | base64
FEISHU_VECTOR = ("feishu-secret-xyz", 1700000000, "RpXbw7bncheMXKEHLeETmnhcqsBrZOUBOwyPTuLV4ic=")


def test_dingtalk_sign_matches_the_openssl_vector_url_encoded() -> None:
    secret, timestamp_ms, b64 = DINGTALK_VECTOR
    assert dingtalk.sign(secret, timestamp_ms) == urlencode({"s": b64})[2:]
    assert "%2B" in dingtalk.sign(secret, timestamp_ms)  # '+' must be escaped, or DingTalk reads a space


@pytest.mark.parametrize("secret", ["SECabc", "SEC" + "x" * 64, "SEC密钥"])
@pytest.mark.parametrize("timestamp_ms", [0, 1_700_000_000_000, 1_999_999_999_999])
def test_dingtalk_sign_matches_the_documented_formula(secret: str, timestamp_ms: int) -> None:
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    expected = base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()).decode()
    decoded = parse_qs(f"s={dingtalk.sign(secret, timestamp_ms)}")["s"][0]
    assert decoded == expected


@pytest.mark.parametrize(
    ("url", "joiner"),
    [("https://oapi.dingtalk.com/robot/send?access_token=abc", "&"), ("http://127.0.0.1:1/robot/send", "?")],
)
def test_dingtalk_signed_url_appends_timestamp_and_sign(url: str, joiner: str) -> None:
    secret, timestamp_ms, b64 = DINGTALK_VECTOR
    signed = dingtalk.signed_url(url, secret, timestamp_ms)
    assert signed.startswith(url + joiner)
    query = parse_qs(urlsplit(signed).query)
    assert query["timestamp"] == [str(timestamp_ms)]
    assert query["sign"] == [b64]


def test_feishu_sign_matches_the_openssl_vector() -> None:
    secret, timestamp_s, b64 = FEISHU_VECTOR
    assert feishu.sign(secret, timestamp_s) == b64


@pytest.mark.parametrize("secret", ["s", "feishu-secret-" + "y" * 40, "签名密钥"])
@pytest.mark.parametrize("timestamp_s", [0, 1_700_000_000, 1_999_999_999])
def test_feishu_sign_matches_the_documented_formula(secret: str, timestamp_s: int) -> None:
    key = f"{timestamp_s}\n{secret}".encode()
    expected = base64.b64encode(hmac.digest(key, b"", "sha256")).decode()
    assert feishu.sign(secret, timestamp_s) == expected


def test_the_two_schemes_differ() -> None:
    # Same inputs, different constructions (secret as key vs timestamp+secret as key): a mix-up would show here.
    assert parse_qs(f"s={dingtalk.sign('k', 1)}")["s"][0] != feishu.sign("k", 1)
