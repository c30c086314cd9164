"""One mapping from aiohttp's exceptions to error types (gateway/link_errors.py), for the proxy and the warm-up."""

from __future__ import annotations

import aiohttp
import pytest

from llmwatch.gateway.link_errors import link_error, link_error_type

pytestmark = pytest.mark.unit


def _connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("127.0.0.1", 9, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


@pytest.mark.parametrize(
    ("exc", "started", "expected"),
    [
        (TimeoutError(), False, "upstream_timeout"),
        (TimeoutError(), True, "upstream_timeout"),
        (aiohttp.ServerTimeoutError("sock_read"), True, "upstream_timeout"),
        (aiohttp.ConnectionTimeoutError("connect"), False, "upstream_timeout"),
        (_connector_error(), False, "upstream_unreachable"),
        (aiohttp.ServerDisconnectedError(), False, "upstream_disconnect"),
        (aiohttp.ClientPayloadError("cut"), True, "upstream_stream_broken"),
    ],
)
def test_client_library_exceptions_map_to_one_error_type(
    exc: TimeoutError | aiohttp.ClientError, started: bool, expected: str
) -> None:
    assert link_error_type(exc, started) == expected
    error = link_error(exc, "http://engine:8000", started)
    assert error.error_type == expected
    assert "http://engine:8000" in error.log_message and "http://engine:8000" not in error.message


def test_the_messages_say_what_to_change() -> None:
    assert "--read-timeout" in link_error(TimeoutError(), None, False).message
    assert "Connection refused" in link_error(_connector_error(), None, False).message
