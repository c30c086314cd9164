"""`llmwatch relay` flags; each has an LLMWATCH_RELAY_* env twin. Prefer env for URLs and secrets (argv is visible)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmwatch.config import settings_config


class RelaySettings(BaseSettings):
    # A mistyped webhook URL must not be echoed, token and all, in an error: the URLs are SecretStr, which
    # llmwatch.config.parse_cli never echoes (and neither does str() of the error).
    model_config = SettingsConfigDict(**settings_config("LLMWATCH_RELAY_", "llmwatch relay"), hide_input_in_errors=True)

    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(9099, description="Port to listen on.")
    dingtalk_url: SecretStr | None = Field(
        None, description="DingTalk robot webhook, https://oapi.dingtalk.com/robot/send?access_token=...; unset: off."
    )
    dingtalk_secret: SecretStr | None = Field(None, description="DingTalk 'sign' secret (SEC...); unset: unsigned.")
    wecom_url: SecretStr | None = Field(
        None, description="WeCom bot webhook, https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...; unset: off."
    )
    feishu_url: SecretStr | None = Field(
        None, description="Feishu custom bot webhook, https://open.feishu.cn/open-apis/bot/v2/hook/...; unset: off."
    )
    feishu_secret: SecretStr | None = Field(None, description="Feishu signature secret; unset: unsigned.")
    log_target: bool = Field(False, description="Also write each rendered message to the log (a demo without IMs).")
    max_attempts: int = Field(6, ge=1, description="Tries per message and target before giving up (counted).")
    backoff_seconds: float = Field(2.0, gt=0, description="Wait before the 2nd try; doubles each try.")
    backoff_max_seconds: float = Field(60.0, gt=0, description="Longest wait between tries.")
    timeout_seconds: float = Field(10.0, gt=0, description="HTTP timeout of one delivery attempt.")
    shutdown_grace_seconds: float = Field(10.0, ge=0, description="On stop, wait this long for pending deliveries.")
    runbook_base_url: str = Field(
        "", description="Prefix for relative runbook_url annotations, e.g. https://github.com/ORG/llmwatch/blob/main/."
    )
    timezone: str = Field("UTC", description="Time zone of the times in messages, e.g. Asia/Shanghai.")
    log_level: str = Field("INFO", description="Python log level.")

    @field_validator("dingtalk_url", "dingtalk_secret", "wecom_url", "feishu_url", "feishu_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose passes `VAR=` for an unset `${VAR:-}`: that means "off", not "an empty URL".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("dingtalk_url", "wecom_url", "feishu_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")  # the value itself is never echoed
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai") from exc
        return value
