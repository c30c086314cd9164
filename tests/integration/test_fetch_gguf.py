"""scripts/fetch-gguf.py, the gpu-q4 profile's `llama-model` job, run as compose runs it (environment from .env, the
models folder as its argument) against a real HTTP server on 127.0.0.1: download once, SHA-256 checked, and every
failure one line that names the setting to change."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support import REPO, serving

pytestmark = pytest.mark.integration

SCRIPT = REPO / "scripts" / "fetch-gguf.py"
NAME = "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"
# A GGUF header and filler: the script checks the magic, never parses further.
PAYLOAD = b"GGUF" + os.urandom(3 * 1024 * 1024 + 17)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Upstream:
    url: str
    requests: list[str] = field(default_factory=list)


class _Files(BaseHTTPRequestHandler):
    """/model.gguf: the payload; /html.gguf: an error page served with 200; /short.gguf: the connection drops
    before Content-Length bytes; anything else 404."""

    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        path = self.path.split("?")[0]
        body = {"/model.gguf": PAYLOAD, "/html.gguf": b"<html>rate limited</html>"}.get(path)
        if path == "/short.gguf":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:1000])
            self.close_connection = True
            return
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    seen: list[str] = []
    handler = type("Files", (_Files,), {"requests": seen})
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), handler)) as url:
        yield Upstream(url, seen)


def fetch(models: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LLAMA_MODEL_FILE": NAME, **env}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(models)], env=environment, capture_output=True, text=True, timeout=60
    )


def one_line_error(done: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    assert done.returncode == status, done.stdout + done.stderr
    message = done.stderr.strip()
    assert "\n" not in message and "Traceback" not in message, message
    for word in words:
        assert word in message, message
    return message


def nothing_left_behind(models: Path) -> None:
    assert sorted(p.name for p in models.iterdir()) == [], "no model and no partial download"


def test_downloads_once_and_checks_the_hash(tmp_path: Path, upstream: Upstream) -> None:
    done = fetch(tmp_path, LLAMA_MODEL_URL=upstream.url + "/model.gguf", LLAMA_MODEL_SHA256=SHA.upper())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / NAME).read_bytes() == PAYLOAD and "downloaded" in done.stdout and "100%" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME], "the partial file is gone"
    assert (tmp_path / NAME).stat().st_mode & 0o777 == 0o644, "readable by the engine, whatever its user"
    again = fetch(tmp_path, LLAMA_MODEL_URL=upstream.url + "/model.gguf", LLAMA_MODEL_SHA256=SHA)
    assert again.returncode == 0 and "SHA-256 checked" in again.stdout, again.stderr
    assert upstream.requests == ["/model.gguf"], "a file with the right hash is not downloaded again"


def test_a_bad_hash_fails_and_leaves_nothing(tmp_path: Path, upstream: Upstream) -> None:
    wrong = "0" * 64
    done = fetch(tmp_path, LLAMA_MODEL_URL=upstream.url + "/model.gguf", LLAMA_MODEL_SHA256=wrong)
    one_line_error(done, 1, "LLAMA_MODEL_SHA256", SHA, wrong)
    nothing_left_behind(tmp_path)


def test_a_file_with_another_hash_is_replaced(tmp_path: Path, upstream: Upstream) -> None:
    (tmp_path / NAME).write_bytes(b"GGUF an older quantization")
    done = fetch(tmp_path, LLAMA_MODEL_URL=upstream.url + "/model.gguf", LLAMA_MODEL_SHA256=SHA)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / NAME).read_bytes() == PAYLOAD


def test_no_url_and_the_file_present_is_used_as_it_is(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(PAYLOAD)
    done = fetch(tmp_path)
    assert done.returncode == 0 and "using" in done.stdout and "not checked" in done.stdout, done.stderr
    checked = fetch(tmp_path, LLAMA_MODEL_SHA256=SHA)
    assert checked.returncode == 0 and "SHA-256 checked" in checked.stdout, checked.stderr


def test_no_url_and_no_file_says_what_to_do(tmp_path: Path) -> None:
    done = fetch(tmp_path)
    one_line_error(done, 2, f"no model file {tmp_path / NAME}", "LLAMA_MODEL_DIR", "LLAMA_MODEL_URL")


def test_a_file_put_there_by_hand_fails_a_given_hash(tmp_path: Path) -> None:
    (tmp_path / NAME).write_bytes(PAYLOAD)
    one_line_error(fetch(tmp_path, LLAMA_MODEL_SHA256="1" * 64), 1, "LLAMA_MODEL_SHA256", SHA)


def test_url_without_hash_fails_before_any_download(tmp_path: Path, upstream: Upstream) -> None:
    done = fetch(tmp_path, LLAMA_MODEL_URL=upstream.url + "/model.gguf")
    one_line_error(done, 2, "LLAMA_MODEL_URL", "LLAMA_MODEL_SHA256")
    assert upstream.requests == []
    nothing_left_behind(tmp_path)


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("LLAMA_MODEL_SHA256", "abc123", ["LLAMA_MODEL_SHA256", "64 hex"]),
        ("LLAMA_MODEL_URL", "file:///etc/passwd", ["LLAMA_MODEL_URL", "http"]),
        ("LLAMA_MODEL_FILE", "../escape.gguf", ["LLAMA_MODEL_FILE", "file name"]),
        ("LLAMA_MODEL_FILE", "", ["LLAMA_MODEL_FILE"]),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, setting: str, value: str, words: list[str]) -> None:
    env = {"LLAMA_MODEL_URL": "http://127.0.0.1:9/model.gguf", "LLAMA_MODEL_SHA256": SHA, setting: value}
    one_line_error(fetch(tmp_path, **env), 2, *words)
    nothing_left_behind(tmp_path)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/missing.gguf", ["downloading", "/missing.gguf", "HTTP 404"]),
        ("/html.gguf", ["SHA-256", "LLAMA_MODEL_SHA256"]),
        ("/short.gguf", ["/short.gguf", f"ended after 1000 of {len(PAYLOAD)} bytes"]),
    ],
)
def test_download_failures_are_one_line_and_leave_nothing(
    tmp_path: Path, upstream: Upstream, path: str, words: list[str]
) -> None:
    done = fetch(tmp_path, LLAMA_MODEL_URL=upstream.url + path, LLAMA_MODEL_SHA256=SHA)
    one_line_error(done, 1, *words)
    nothing_left_behind(tmp_path)


def test_an_error_page_with_its_own_hash_is_still_not_a_model(tmp_path: Path, upstream: Upstream) -> None:
    page = hashlib.sha256(b"<html>rate limited</html>").hexdigest()
    done = fetch(tmp_path, LLAMA_MODEL_URL=upstream.url + "/html.gguf", LLAMA_MODEL_SHA256=page)
    one_line_error(done, 1, "not a GGUF")
    nothing_left_behind(tmp_path)


def test_the_url_query_is_never_printed(tmp_path: Path, upstream: Upstream) -> None:
    """Signed download links carry their token in the query string (or userinfo): it stays out of the job's log."""
    port = upstream.url.rsplit(":", 1)[1]
    url = f"http://user:pw-secret@127.0.0.1:{port}/model.gguf?token=tok-secret"
    done = fetch(tmp_path, LLAMA_MODEL_URL=url, LLAMA_MODEL_SHA256="0" * 64)
    assert done.returncode == 1 and "/model.gguf" in done.stderr
    assert "secret" not in done.stdout + done.stderr
