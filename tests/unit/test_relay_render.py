"""Alertmanager payload parsing and rendering: firing and resolved alerts, links, time zones, size caps per IM."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from llmwatch.relay import dingtalk, feishu, wecom
from llmwatch.relay.render import Renderer
from tests.support.relay_payloads import alert, parse, payload

pytestmark = pytest.mark.unit


def test_firing_alert_renders_summary_description_labels_and_links() -> None:
    message = Renderer("https://github.com/acme/llmwatch/blob/main/").render(parse(payload()))
    assert message.title == "[llmwatch] FIRING GatewayErrorRatioHigh (critical)"
    text = message.text()
    assert "**🔥 FIRING** GatewayErrorRatioHigh · critical" in text
    assert "**Gateway 5xx ratio 10% over 5m (threshold 5%)**" in text
    assert "Check first: the status split." in text
    assert "Labels: job=gateway" in text  # alertname/severity/component are on the first line or implied
    assert "component=" not in text
    assert "Since 2025-03-01 08:00:00 UTC" in text
    assert "[Runbook](https://github.com/acme/llmwatch/blob/main/docs/alerting.md#gatewayerrorratiohigh)" in text
    assert "[Graph](http://prometheus:9090/graph?g0.expr=x)" in text
    assert "[Alertmanager](http://alertmanager:9093)" in text


def test_resolved_alert_says_when_it_resolved_in_the_configured_zone() -> None:
    data = payload(alert(status="resolved"), status="resolved")
    message = Renderer(zone=ZoneInfo("Asia/Shanghai")).render(parse(data))
    assert message.title == "[llmwatch] RESOLVED GatewayErrorRatioHigh (critical)"
    assert message.status == "resolved"
    text = message.text()
    assert "**✅ RESOLVED**" in text
    assert "Since 2025-03-01 16:00:00 CST, resolved 2025-03-01 16:30:00 CST" in text
    # no base URL: the relative runbook path is shown as text, not as a broken link
    assert "Runbook: docs/alerting.md#gatewayerrorratiohigh" in text


def test_group_counts_alerts_and_lists_firing_before_resolved() -> None:
    data = payload(alert(status="resolved", instance="a"), alert(instance="b"), alert(instance="c"))
    message = Renderer().render(parse(data))
    assert message.title == "[llmwatch] FIRING:2 GatewayErrorRatioHigh (critical)"
    firsts = [block[0] for block in message.blocks]
    assert firsts[0].startswith("**🔥") and firsts[1].startswith("**🔥") and firsts[2].startswith("**✅")


def test_mixed_group_without_common_alertname_is_named_by_count() -> None:
    data = payload(alert("GPUHot"), alert("GPUThrottling"))
    data["commonLabels"] = {"severity": "warning"}
    data["groupLabels"] = {}
    assert Renderer().render(parse(data)).title == "[llmwatch] FIRING:2 2 alerts (warning)"


def test_too_many_alerts_are_counted_not_cut_mid_line() -> None:
    data = payload(*(alert(instance=f"engine-{i}:8000") for i in range(200)), truncatedAlerts=7)
    message = Renderer().render(parse(data))
    text = message.text(max_bytes=4000)
    assert len(text.encode()) <= 4000
    shown = text.count("**🔥 FIRING**")
    assert 0 < shown < 200
    assert f"… and {200 - shown} more alert(s), see Alertmanager" in text
    assert "Alertmanager left out 7 more alert(s)." in text


def test_one_huge_alert_is_cut_to_the_limit_on_a_character_boundary() -> None:
    big = alert()
    big["annotations"]["description"] = "告警" * 5000
    text = Renderer().render(parse(payload(big))).text(max_bytes=4000)
    assert len(text.encode()) <= 4000
    assert text.endswith("…")


def test_im_bodies_have_each_services_shape_and_fit_its_limits() -> None:
    data = payload(*(alert(instance=f"engine-{i}:8000") for i in range(100)))
    message = Renderer().render(parse(data))

    ding = dingtalk.body(message)
    assert ding["msgtype"] == "markdown"
    assert ding["markdown"]["title"] == message.title
    assert ding["markdown"]["text"].startswith(f"#### {message.title}\n\n")

    wc = wecom.body(message)
    assert wc["msgtype"] == "markdown"
    assert wc["markdown"]["content"].startswith('### <font color="warning">[llmwatch] FIRING:100')
    assert len(wc["markdown"]["content"].encode()) <= 4096

    card = feishu.card(message)
    assert card["header"]["title"] == {"tag": "plain_text", "content": message.title}
    assert card["header"]["template"] == "red"
    assert card["elements"][0]["text"]["tag"] == "lark_md"
    assert len(json.dumps({"msg_type": "interactive", "card": card}).encode()) <= 20 * 1024


def test_feishu_colours_follow_status_and_severity() -> None:
    warning = alert(severity="warning")
    data = payload(warning)
    data["commonLabels"]["severity"] = "warning"
    assert feishu.card(Renderer().render(parse(data)))["header"]["template"] == "orange"
    resolved = payload(alert(status="resolved"), status="resolved")
    assert feishu.card(Renderer().render(parse(resolved)))["header"]["template"] == "green"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": "3"}, "version"),
        ({"alerts": []}, "alerts"),
        ({"status": "pending"}, "status"),
    ],
)
def test_payloads_that_are_not_version_4_webhooks_are_rejected(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse({**payload(), **change})
    assert field in {str(e["loc"][0]) for e in info.value.errors()}


def test_alert_without_starts_at_is_rejected() -> None:
    broken = alert()
    del broken["startsAt"]
    with pytest.raises(ValidationError):
        parse(payload(broken))
