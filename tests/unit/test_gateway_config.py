"""`GatewaySettings.load()`: each part of the gateway gets its own config, derived once; none gets the raw flags."""

from __future__ import annotations

import dataclasses

import pytest

from llmwatch.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit


def test_load_derives_what_each_part_needs() -> None:
    settings = GatewaySettings(
        upstream=["http://engine:8000/"], upstream_api_key="k", log_content=True, log_content_max_chars=50,
        forward_header=["X-Sim-Fault"], warmup=2, read_timeout=7.0,
    )  # fmt: skip
    config = settings.load()
    assert config.pool.upstreams == ("http://engine:8000",) and config.pool.read_timeout == 7.0
    assert config.proxy.upstream_auth == config.pool.upstream_auth == "Bearer k"
    assert config.proxy.keep_text and config.content_chars == 50
    assert config.proxy.forward_headers == frozenset({b"x-sim-fault"})
    assert (config.warmup_requests, config.proxy.keyring) == (2, None)
    parts = [config, config.proxy, config.pool, config.access_log]
    values = [getattr(part, f.name) for part in parts for f in dataclasses.fields(part)]
    assert not any(isinstance(value, GatewaySettings) for value in values)


def test_texts_are_kept_only_when_the_operator_opts_in() -> None:
    config = GatewaySettings(upstream=["http://engine:8000"]).load()
    assert (config.proxy.keep_text, config.content_chars, config.proxy.upstream_auth) == (False, None, None)
