"""Helpers every test layer shares: free ports, bounded waits, real `llmwatch` processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

# The child-process helpers are the package's own, shared with the demo and the benchmark.
from llmwatch.processes import Child, NotReady, http_ok, running, wait_until

__all__ = ["Child", "NotReady", "free_port", "http_ok", "running", "wait_until"]

REPO = Path(__file__).resolve().parents[2]

# Ports for the tests' children come from below Linux's default ephemeral range (32768-60999), where the OS's own
# bind(0) and outgoing connections never land, split into one block per parallel worker (pytest-xdist).
TEST_PORTS = range(20000, 32768)
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, for a child to bind; never one this process handed out before.

    Between this call and the child's bind, another worker could be handed the same port, and its process would
    then answer this test's readiness check: each worker draws from its own block of TEST_PORTS.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    block = len(TEST_PORTS) // workers
    ports = range(TEST_PORTS.start + worker * block, TEST_PORTS.start + (worker + 1) * block)
    for port in random.sample(ports, len(ports)):
        if port in _HANDED_OUT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free port left in {ports} on 127.0.0.1")


def llmwatch_cmd(*args: str) -> list[str]:
    """`llmwatch ARGS` run with this interpreter, so the venv under test is the one used."""
    return [sys.executable, "-m", "llmwatch.cli", *args]


def sim_cmd(port: int, *flags: str) -> list[str]:
    """`llmwatch sim` on 127.0.0.1:``port`` with no cold start; ``flags`` add to or override that."""
    return llmwatch_cmd("sim", "--host", "127.0.0.1", "--port", str(port), "--startup-seconds", "0", *flags)


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


class Gateway:
    """A running `llmwatch gateway`: its URL, its access-log file, and helpers to read both."""

    def __init__(self, url: str, log_path: Path, proc: Child) -> None:
        self.url = url
        self.log_path = log_path
        self.proc = proc

    def lines(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def wait_lines(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The access-log lines once ``count`` have been written (the writer is a background thread)."""
        return wait_until(lambda: len(self.lines()) >= count and self.lines(), timeout, f"{count} access-log lines")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return scrape(self.url + "/metrics")


GatewayFactory = Callable[..., Gateway]


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
