"""One mapping from the engine link's failures to error types (gateway/link_errors.py), for the proxy and the
warm-up."""

from __future__ import annotations

import pytest

from llmwatch.gateway.link_errors import (
    LinkClosed,
    LinkError,
    LinkTimeout,
    LinkUnreachable,
    link_error,
    link_error_type,
)

pytestmark = pytest.mark.unit

BASE = "http://engine:8000"


@pytest.mark.parametrize(
    ("exc", "started", "expected"),
    [
        (LinkTimeout("connect"), False, "upstream_timeout"),
        (LinkTimeout("read"), True, "upstream_timeout"),
        (LinkUnreachable("Connection refused"), False, "upstream_unreachable"),
        (LinkClosed("closed the connection before its answer was complete"), False, "upstream_disconnect"),
        (LinkClosed("closed the connection before its answer was complete"), True, "upstream_stream_broken"),
        (LinkClosed("sent an answer that is not valid HTTP/1.1"), True, "upstream_stream_broken"),
    ],
)
def test_link_failures_map_to_one_error_type(exc: LinkError, started: bool, expected: str) -> None:
    assert link_error_type(exc, started) == expected
    error = link_error(exc, BASE, started)
    assert error.error_type == expected
    assert BASE in error.log_message and BASE not in error.message


def test_the_messages_say_what_to_change() -> None:
    before = link_error(LinkTimeout("read"), None, False).message
    assert "did not answer within" in before and "--read-timeout" in before
    assert "sent nothing for" in link_error(LinkTimeout("read"), None, True).message
    unreachable = link_error(LinkUnreachable("Connection refused"), None, False).message
    assert "Connection refused" in unreachable and "--upstream" in unreachable
    broken = link_error(LinkClosed("sent an answer that is not valid HTTP/1.1"), None, True).message
    assert "not valid HTTP/1.1" in broken and "engine's log" in broken
