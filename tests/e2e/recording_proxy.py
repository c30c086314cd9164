"""A transparent reverse proxy that keeps what its client sent, to check a real client's request bodies.

The gateway logs no request bodies beyond the prompt, and it rewrites `stream_options` before the engine sees it,
so what Open WebUI itself asked for is only visible on the wire in front of the gateway. This proxy sits there:
it forwards every request unchanged, streams every response back chunk by chunk (SSE keeps flowing), and records
method, path, headers and the JSON body of each request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

# Per-connection headers (RFC 9110 7.6.1) plus those this proxy sets itself.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
SET_HERE = {"host", "content-length", "date", "server"}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body; None when there was none or it was not JSON


class RecordingProxy:
    """``with RecordingProxy(upstream) as proxy``: a proxy on a free port of 127.0.0.1 at ``proxy.url``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._recorded: list[Recorded] = []
        self.client = httpx.Client(timeout=httpx.Timeout(120.0, connect=5.0))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="recording-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests(self, path: str | None = None) -> list[Recorded]:
        """What clients sent so far (to ``path`` only, if given), oldest first."""
        with self._lock:
            return [r for r in self._recorded if path is None or r.path.split("?")[0] == path]

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._recorded.append(request)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.client.close()


def _handler_for(proxy: RecordingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, chunked responses

        def do_GET(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def do_DELETE(self) -> None:
            self._forward()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no stderr noise in test output

        def _forward(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.send_error(501, "recording proxy: chunked request bodies are not supported")
                return
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            proxy.record(Recorded(self.command, self.path, headers, _json_or_none(raw)))
            sent = {k: v for k, v in headers.items() if k not in HOP_BY_HOP | SET_HERE}
            request = proxy.client.build_request(self.command, proxy.upstream + self.path, headers=sent, content=raw)
            try:
                upstream = proxy.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                self.send_error(502, f"recording proxy: {exc!r}")
                return
            try:
                self.send_response(upstream.status_code)
                for name, value in upstream.headers.multi_items():
                    if name.lower() not in HOP_BY_HOP | SET_HERE:
                        self.send_header(name, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for data in upstream.iter_raw():  # still content-encoded, as the header sent above says
                    if data:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            finally:
                upstream.close()

    return Handler


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
