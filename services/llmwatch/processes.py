"""Child processes, the one way: a free port, start with output to a log file, wait for an HTTP 200, stop.

Used by `llmwatch demo`, the benchmark and the tests. A child leads its own process group, so stopping it also stops
what it started (nginx workers, uvicorn reloaders): SIGTERM first, SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class NotReady(RuntimeError):
    """A child exited, or what was awaited did not happen in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns a truthy value; NotReady names ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except NotReady:
            raise
        except Exception as exc:  # what we wait for may not be up yet
            last_error = exc
        if time.monotonic() >= deadline:
            raise NotReady(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Child:
    """A background process with its combined output in ``log_path`` (named after the file's stem)."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.args = list(args)
        self.name = log_path.stem
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.popen = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]

    def wait_http(self, url: str, timeout: float = 20.0) -> None:
        """Until ``url`` answers 200; NotReady with the log's tail if the process exits or time runs out."""

        def up() -> bool:
            if self.popen.poll() is not None:
                raise NotReady(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            return http_ok(url)

        try:
            wait_until(up, timeout, f"{url} from {self.name}", interval=0.1)
        except NotReady as exc:
            if self.popen.poll() is not None:
                raise
            raise NotReady(f"{exc}\n--- {self.log_path} ---\n{self.tail()}") from None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the process group, SIGKILL it after ``timeout``; the exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        self._log.close()
        return self.popen.returncode


@contextlib.contextmanager
def running(
    args: Sequence[str],
    log_path: Path,
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    cwd: Path | None = None,
) -> Iterator[Child]:
    """Start a child, wait for ``ready_url`` to answer 200, and always stop it afterwards."""
    child = Child(args, log_path, env, cwd)
    try:
        child.wait_http(ready_url, timeout)
        yield child
    finally:
        child.stop()
