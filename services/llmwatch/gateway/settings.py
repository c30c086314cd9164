"""`llmwatch gateway` flags; each has an LLMWATCH_GATEWAY_* env twin. `load()` derives, once, what each part needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from llmwatch.config import CommaList, settings_config
from llmwatch.gateway.access_log import MAX_QUEUED_BYTES
from llmwatch.gateway.auth import KeyRing, load_api_keys
from llmwatch.gateway.routes import RouteTable, parse_routes


class GatewaySettings(BaseSettings):
    model_config = settings_config("LLMWATCH_GATEWAY_", "llmwatch gateway")

    upstream: CommaList = Field(
        ["http://127.0.0.1:8000"],
        description="Engine base URL (vLLM, llama.cpp or `llmwatch sim`); repeat the flag, or comma-separate in env, "
        "for several.",
    )
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(4000, ge=1, le=65535, description="Port to listen on.")
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve GET /metrics and GET /readyz on this port instead of the API port "
        "(a NetworkPolicy can open it to Prometheus and the probes only).",
    )
    docs: bool = Field(False, description="Serve the OpenAPI page of the management routes (/docs, /openapi.json).")
    forwarded_allow_ips: CommaList = Field(
        [],
        description="Proxies (IPs or CIDRs, `*` for any) whose X-Forwarded-For/-Proto are trusted for client_ip; "
        "none by default.",
    )
    forward_header: CommaList = Field(
        [],
        description="Also forward this request header to the engine (e.g. X-Sim-Fault for drills against the "
        "simulator); repeat for several. The default allow-list sends only what the engine needs.",
    )
    log_file: Path | None = Field(None, description="Access-log file (JSON lines, size-rotated); stdout always.")
    log_max_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Rotate the access-log file at this size.")
    log_backup_count: int = Field(5, ge=0, description="Rotated access-log files to keep.")
    log_stdout: bool = Field(True, description="Also write access-log lines to stdout.")
    log_max_queued_bytes: int = Field(
        MAX_QUEUED_BYTES,
        gt=0,
        description="Access-log lines that may wait for a stalled destination (disk, stdout), in bytes; past it new "
        "lines are dropped and counted in llmwatch_access_log_lines_dropped_total.",
    )
    log_content: bool = Field(False, description="Opt in to logging prompt, reasoning and answer text (truncated).")
    log_content_max_chars: int = Field(2000, gt=0, description="Truncate logged texts to this many characters.")
    api_keys: Path | None = Field(
        None, description="File of `name=key` lines; when set, clients must send `Authorization: Bearer <key>`."
    )
    upstream_api_key: str | None = Field(None, description="Bearer key the engine expects (vLLM --api-key), if any.")
    always_return_usage: bool = Field(
        False, description="Forward the usage chunk of streams even when the client did not ask (Open WebUI shows it)."
    )
    allow_route: CommaList = Field(
        [],
        description="Open a route beyond the default chat/completions/models ones, as `METHOD /path` (e.g. "
        "`POST /v1/embeddings`; end the path with `?` if it takes a query string); repeat for several.",
    )
    connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to an upstream.")
    read_timeout: float = Field(600.0, gt=0, description="Seconds an upstream may stay silent (headers or next chunk).")
    body_timeout: float = Field(30.0, gt=0, description="Seconds a client may take to send its request body (408).")
    header_timeout: float = Field(
        30.0, gt=0, description="Seconds a client may take to send its request headers; the connection is closed."
    )
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="Largest request head (431 and close beyond).")
    max_stream_seconds: float = Field(
        1800.0, gt=0, description="Longest a request may take end to end, long R1 reasoning included (504)."
    )
    max_concurrency: int = Field(0, ge=0, description="Requests in flight per gateway replica (429 beyond); 0 = off.")
    max_concurrency_per_key: int = Field(
        0, ge=0, description="Requests in flight per API key per gateway replica (429 beyond); 0 = off."
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Largest request body accepted (413 beyond).")
    max_response_bytes: int = Field(
        32 * 1024 * 1024, gt=0, description="Largest non-streamed engine answer read (502 upstream_too_large beyond)."
    )
    max_sse_line_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Longest SSE line (or event) of an engine stream (502 upstream_too_large beyond).",
    )
    health_interval: float = Field(5.0, gt=0, description="Seconds between upstream /health probes.")
    max_connections: int = Field(1024, gt=0, description="Pooled connections per upstream.")
    warmup: int = Field(
        0, ge=0, description="Short generations sent to each upstream when it turns healthy, before it takes traffic."
    )
    warmup_batch: int = Field(
        0, ge=0, le=256, description="Then this many warm-up generations at once, sampled with top-p: vLLM compiles "
        "its batched sampling kernel the first time 8 or more sampled streams decode together, a stall of every "
        "stream (2.1 s on an H100); 17 meets both of its variants. 0: none (llama.cpp has no such compile).",
    )  # fmt: skip
    warmup_timeout: float = Field(
        300.0, gt=0, description="Seconds warm-up may take (with retries) before the upstream is used anyway."
    )

    @field_validator("upstream")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one upstream URL is required")
        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s) URL such as http://engine:8000")
            if parts.path.rstrip("/") or parts.query:
                raise ValueError(f"{url!r}: give the engine's base URL, without /v1 or another path")
        return value

    @field_validator("allow_route")
    @classmethod
    def _routes(cls, value: list[str]) -> list[str]:
        parse_routes(value)  # raises ValueError naming the bad one
        return value

    def load(self) -> GatewayConfig:
        """What the gateway's parts need, derived once from the flags (uvicorn's Config.load() does the same)."""
        auth = f"Bearer {self.upstream_api_key}" if self.upstream_api_key else None
        content_chars = self.log_content_max_chars if self.log_content else None
        return GatewayConfig(
            proxy=ProxyConfig(
                routes=RouteTable(parse_routes(self.allow_route)),
                keyring=KeyRing(load_api_keys(self.api_keys)) if self.api_keys else None,
                upstream_auth=auth,
                forward_headers=frozenset(name.strip().lower().encode("latin-1") for name in self.forward_header),
                keep_text=content_chars is not None,
                max_concurrency=self.max_concurrency,
                max_concurrency_per_key=self.max_concurrency_per_key,
                max_body_bytes=self.max_body_bytes,
                body_timeout=self.body_timeout,
                max_stream_seconds=self.max_stream_seconds,
                always_return_usage=self.always_return_usage,
            ),
            pool=PoolConfig(
                upstreams=tuple(u.rstrip("/") for u in self.upstream),
                upstream_auth=auth,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                max_connections=self.max_connections,
                health_interval=self.health_interval,
            ),
            access_log=AccessLogConfig(
                self.log_file, self.log_max_bytes, self.log_backup_count, self.log_stdout, self.log_max_queued_bytes
            ),
            max_response_bytes=self.max_response_bytes,
            max_sse_line_bytes=self.max_sse_line_bytes,
            content_chars=content_chars,
            warmup_requests=self.warmup,
            warmup_batch=self.warmup_batch,
            warmup_timeout=self.warmup_timeout,
            metrics_port=self.metrics_port,
            docs=self.docs,
        )


@dataclass(frozen=True)
class ProxyConfig:
    routes: RouteTable
    keyring: KeyRing | None  # None: no client keys required
    upstream_auth: str | None  # the Authorization value the engine expects, or None
    forward_headers: frozenset[bytes]  # --forward-header, lower-case
    keep_text: bool  # --log-content: prompts and answers are kept for the log line
    max_concurrency: int
    max_concurrency_per_key: int
    max_body_bytes: int
    body_timeout: float
    max_stream_seconds: float
    always_return_usage: bool


@dataclass(frozen=True)
class PoolConfig:
    upstreams: tuple[str, ...]  # base URLs, without a trailing slash
    upstream_auth: str | None
    connect_timeout: float
    read_timeout: float
    max_connections: int
    health_interval: float


@dataclass(frozen=True)
class AccessLogConfig:
    file: Path | None
    max_bytes: int
    backup_count: int
    stdout: bool
    max_queued_bytes: int


@dataclass(frozen=True)
class GatewayConfig:
    proxy: ProxyConfig
    pool: PoolConfig
    access_log: AccessLogConfig
    max_response_bytes: int  # the relay's limits
    max_sse_line_bytes: int
    content_chars: int | None  # None: texts are not logged
    warmup_requests: int  # 0: no warm-up
    warmup_batch: int  # 0: no concurrent round
    warmup_timeout: float
    metrics_port: int | None
    docs: bool
