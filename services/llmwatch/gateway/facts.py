"""What the gateway learns about one request on its way through; `outcome.py` turns it into results at the end."""

from __future__ import annotations

from llmwatch.gateway.accounting import CompletionAccounting
from llmwatch.gateway.errors import ERRORS, ErrorTypeName


class RequestFacts:
    __slots__ = (
        "acct",
        "client_ip",
        "client_request_id",
        "error_message",
        "error_type",
        "kind",
        "method",
        "model",
        "path",
        "prompt_text",
        "request_id",
        "response_format",
        "started",
        "started_wall",
        "status",
        "stream",
        "tools_offered",
        "upstream",
        "user",
        "user_agent",
    )

    def __init__(self, method: str, path: str, started: float, started_wall: float) -> None:
        self.method = method
        self.path = path
        self.started = started  # perf_counter seconds
        self.started_wall = started_wall  # epoch seconds
        self.request_id = ""
        self.client_request_id: str | None = None  # a refused X-Request-Id, kept for the log only
        self.model: str | None = None
        self.kind = "other"
        self.stream = False
        self.status = 500
        self.error_type: ErrorTypeName | None = None
        self.error_message: str | None = None
        self.upstream: str | None = None
        self.client_ip: str | None = None
        self.user: str | None = None
        self.user_agent: str | None = None
        self.acct: CompletionAccounting | None = None
        self.prompt_text: str | None = None
        self.tools_offered = False
        self.response_format: str | None = None  # json_object / json_schema when the client asked for JSON

    def fail(self, error_type: ErrorTypeName, message: str | None) -> None:
        """The request ended in this error: the status is the one ERRORS gives it."""
        self.error_type, self.status, self.error_message = error_type, ERRORS[error_type].status, message
