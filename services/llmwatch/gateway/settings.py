"""`llmwatch gateway` flags; each has an LLMWATCH_GATEWAY_* env twin."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from llmwatch.config import CommaList, settings_config


class GatewaySettings(BaseSettings):
    model_config = settings_config("LLMWATCH_GATEWAY_", "llmwatch gateway")

    upstream: CommaList = Field(
        default_factory=lambda: ["http://127.0.0.1:8000"],
        description="Engine base URL (vLLM or `llmwatch sim`); repeat the flag, or comma-separate in env, for several.",
    )
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(4000, description="Port to listen on.")
    log_file: Path | None = Field(None, description="Access-log file (JSON lines, size-rotated); stdout always.")
    log_max_bytes: int = Field(100 * 1024 * 1024, description="Rotate the access-log file at this size.")
    log_backup_count: int = Field(5, description="Rotated access-log files to keep.")
    log_stdout: bool = Field(True, description="Also write access-log lines to stdout.")
    log_content: bool = Field(False, description="Opt in to logging prompt, reasoning and answer text (truncated).")
    log_content_max_chars: int = Field(2000, description="Truncate logged texts to this many characters.")
    api_keys: Path | None = Field(
        None, description="File of `name=key` lines; when set, clients must send `Authorization: Bearer <key>`."
    )
    upstream_api_key: str | None = Field(None, description="Bearer key the engine expects (vLLM --api-key), if any.")
    always_return_usage: bool = Field(
        False, description="Forward the usage chunk of streams even when the client did not ask (Open WebUI shows it)."
    )
    connect_timeout: float = Field(5.0, description="Seconds to connect to an upstream.")
    read_timeout: float = Field(600.0, description="Seconds an upstream may stay silent (headers or next chunk).")
    max_body_bytes: int = Field(4 * 1024 * 1024, description="Largest request body accepted (413 beyond).")
    health_interval: float = Field(5.0, description="Seconds between upstream /health probes.")
    max_connections: int = Field(1024, description="Pooled connections per upstream.")
