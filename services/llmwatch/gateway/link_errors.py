"""Failures of the link to an engine, in one place: what the engine link (engine_link.py, engine_answer.py) raises
while the gateway talks to an engine, and the error type each becomes. The proxy and the warm-up both relay through
relay.py, which maps with this."""

from __future__ import annotations

from llmwatch.gateway.errors import ErrorTypeName, GatewayError


class LinkError(Exception):
    """The link to an engine failed (link_error_type below says what each kind becomes)."""


class LinkUnreachable(LinkError):
    """No connection could be opened; the message is the operating system's reason."""


class LinkTimeout(LinkError):
    """Connecting took longer than the connect timeout, or the engine sent nothing for the read timeout."""


class LinkClosed(LinkError):
    """The engine closed the connection before its answer was complete, or broke HTTP's framing."""


# What the engine link raises while connecting, sending or reading (an end-to-end limit arrives as a cancellation).
LINK_ERRORS = (LinkError,)


def engine_error(error_type: ErrorTypeName, base: str | None, what: str) -> GatewayError:
    """An engine failure: the client is told what happened, the access log also which engine (its URL)."""
    return GatewayError(error_type, f"The engine {what}", log_message=f"The engine at {base} {what}")


def link_error_type(exc: LinkError, started: bool) -> ErrorTypeName:
    """The error type of a link failure; ``started``: the answer's head had reached the client."""
    if isinstance(exc, LinkTimeout):
        return "upstream_timeout"
    if isinstance(exc, LinkUnreachable):
        return "upstream_unreachable"
    return "upstream_stream_broken" if started else "upstream_disconnect"


def link_error(exc: LinkError, base: str | None, started: bool) -> GatewayError:
    """The gateway's answer to a failed link: its type (link_error_type) and a message that says what to check."""
    error_type = link_error_type(exc, started)
    if error_type == "upstream_timeout":
        what = "sent nothing for" if started else "did not answer within"
        return engine_error(
            error_type, base, f"{what} the gateway's timeout; raise --read-timeout/--connect-timeout or check the "
            "engine's queue.",
        )  # fmt: skip
    if error_type == "upstream_unreachable":
        return engine_error(error_type, base, f"cannot be reached: {exc}; check --upstream and that the engine runs.")
    if isinstance(exc, LinkClosed):
        return engine_error(error_type, base, f"{exc}; check the engine's log.")
    return engine_error(error_type, base, f"failed: {exc}; check the engine's log.")
