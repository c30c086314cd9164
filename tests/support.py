"""Helpers every test layer shares: free ports, bounded waits, real `llmwatch` processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns a truthy value; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the thing we wait for may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


class Proc:
    """A child process with its combined output kept in a file, for messages when a test fails."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=REPO)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        def up() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"{self.args[0]} exited with {self.popen.returncode}:\n{self.output()[-3000:]}")
            return http_ok(url)

        wait_until(up, timeout, f"{url} from {' '.join(self.args[:3])}")

    def stop(self, timeout: float = 10.0) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._log.close()
        return self.popen.returncode


def llmwatch_cmd(*args: str) -> list[str]:
    """`llmwatch ARGS` run with this interpreter, so the venv under test is the one used."""
    return [sys.executable, "-m", "llmwatch.cli", *args]


def sim_cmd(port: int, *flags: str) -> list[str]:
    """`llmwatch sim` on 127.0.0.1:``port`` with no cold start; ``flags`` add to or override that."""
    return llmwatch_cmd("sim", "--host", "127.0.0.1", "--port", str(port), "--startup-seconds", "0", *flags)


@contextlib.contextmanager
def running(
    args: list[str], log_path: Path, ready_url: str, env: dict[str, str] | None = None, timeout: float = 20.0
) -> Iterator[Proc]:
    """Start a process, wait for ``ready_url`` to answer 200, and always stop it afterwards."""
    proc = Proc(args, log_path, env)
    try:
        proc.wait_http(ready_url, timeout)
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve ``server`` (bound to 127.0.0.1) from a thread; yields its base URL; shuts it down afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def need_binary(name: str) -> str:
    """Path of a binary that `make test` installs; a missing one is an install bug, so this fails, not skips."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} not found on PATH: run `scripts/install.sh test` (make test does)")
    return path


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Scrape a Prometheus endpoint: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=5.0).text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


class Traffic:
    """A few clients sending ``bodies`` in turn to /v1/chat/completions until stopped, or ``max_s`` at the latest."""

    def __init__(
        self, base_url: str, bodies: list[dict[str, Any]], workers: int = 2, pause_s: float = 0.5, max_s: float = 240.0
    ) -> None:
        self.base_url, self.bodies, self.pause_s = base_url, bodies, pause_s
        self.deadline = time.monotonic() + max_s
        self.statuses: Counter[int | str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(workers)]

    def _send(self, client: httpx.Client, body: dict[str, Any]) -> int:
        if body.get("stream"):
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                response.read()
                return response.status_code
        return client.post("/v1/chat/completions", json=body).status_code

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            n = worker
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                try:
                    status: int | str = self._send(client, self.bodies[n % len(self.bodies)])
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self._lock:
                    self.statuses[status] += 1
                n += 1
                self._stop.wait(self.pause_s)  # pacing, and the way out

    @contextlib.contextmanager
    def running(self) -> Iterator[Traffic]:
        for thread in self._threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in self._threads:
                thread.join(35)
