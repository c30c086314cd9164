"""Alertmanager notification -> one chat message: a title and a markdown body every target can show.

The body keeps to what DingTalk, WeCom and Feishu markdown all render: bold, links and plain lines (no tables,
no code blocks). Each target joins the lines its own way and caps the size (WeCom allows 4096 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from urllib.parse import urljoin

from llmwatch.relay.payload import Alert, Notification

MAX_MESSAGE_BYTES = 4000
# Labels every llmwatch alert carries that the first line already shows, or that add nothing in a chat.
_SHOWN_ELSEWHERE = frozenset({"alertname", "severity", "component", "stack"})
_EMOJI = {"firing": "🔥", "resolved": "✅"}


@dataclass(frozen=True)
class Message:
    title: str
    status: str
    severity: str
    blocks: tuple[tuple[str, ...], ...]  # one block of lines per alert
    footer: tuple[str, ...]

    def text(self, line_sep: str = "\n", max_bytes: int = MAX_MESSAGE_BYTES, heading: str = "") -> str:
        """The body joined with ``line_sep``; alerts that do not fit in ``max_bytes`` are counted, not cut."""
        blocks = [line_sep.join(block) for block in self.blocks]
        head = [heading] if heading else []
        text = (line_sep * 2).join([*head, *self.footer])
        for keep in range(len(blocks), 0, -1):
            left_out = len(blocks) - keep
            more = [f"… and {left_out} more alert(s), see Alertmanager"] if left_out else []
            text = (line_sep * 2).join([*head, *blocks[:keep], *more, *self.footer])
            if len(text.encode()) <= max_bytes:
                return text
        return _cut(text, max_bytes)


class Renderer:
    def __init__(self, runbook_base_url: str = "", zone: tzinfo | None = None) -> None:
        self._runbook_base = runbook_base_url
        self._zone = zone

    def render(self, notification: Notification) -> Message:
        alerts = notification.alerts
        status = notification.status
        count = sum(1 for a in alerts if a.status == status)
        common = notification.common_labels
        name = common.get("alertname") or notification.group_labels.get("alertname") or f"{len(alerts)} alerts"
        severity = common.get("severity", "")
        title = f"[llmwatch] {status.upper()}{f':{count}' if count > 1 else ''} {name}"
        if severity:
            title += f" ({severity})"
        footer: list[str] = []
        if notification.truncated_alerts:
            footer.append(f"Alertmanager left out {notification.truncated_alerts} more alert(s).")
        if notification.external_url:
            footer.append(f"[Alertmanager]({notification.external_url})")
        # Firing first: that is what needs action.
        ordered = sorted(alerts, key=lambda a: a.status != "firing")
        return Message(title, status, severity, tuple(self._block(a) for a in ordered), tuple(footer))

    def _block(self, alert: Alert) -> tuple[str, ...]:
        labels = alert.labels
        first = f"**{_EMOJI[alert.status]} {alert.status.upper()}** {labels.get('alertname', '')}"
        if labels.get("severity"):
            first += f" · {labels['severity']}"
        lines = [first]
        if summary := alert.annotations.get("summary"):
            lines.append(f"**{summary}**")
        if description := alert.annotations.get("description"):
            lines.append(description)
        shown = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _SHOWN_ELSEWHERE]
        if shown:
            lines.append("Labels: " + ", ".join(shown))
        when = f"Since {self._time(alert.starts_at)}"
        if alert.status == "resolved" and alert.ends_at is not None:
            when += f", resolved {self._time(alert.ends_at)}"
        lines.append(when)
        links = []
        if runbook := alert.annotations.get("runbook_url"):
            links.append(self._runbook(runbook))
        if alert.generator_url:
            links.append(f"[Graph]({alert.generator_url})")
        if links:
            lines.append(" · ".join(links))
        return tuple(lines)

    def _runbook(self, url: str) -> str:
        if "://" not in url and self._runbook_base:
            url = urljoin(self._runbook_base, url)
        return f"[Runbook]({url})" if "://" in url else f"Runbook: {url}"

    def _time(self, moment: datetime) -> str:
        local = moment.astimezone(self._zone) if self._zone is not None else moment
        return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def _cut(text: str, max_bytes: int) -> str:
    ellipsis = "…"
    room = max_bytes - len(ellipsis.encode())
    return text.encode()[:room].decode(errors="ignore") + ellipsis
