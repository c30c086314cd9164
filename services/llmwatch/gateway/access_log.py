"""The access log: one JSON line per request, written by a background thread so disk I/O never blocks the loop.

Lines go to stdout and, optionally, to a size-rotated file (which Filebeat tails). A line is serialised on the
caller's thread (orjson: a few microseconds, cheaper than building a logging record) and appended to a deque, which
wakes nobody. The writer thread wakes every ``FLUSH_SECONDS``, takes whatever is queued and writes it with one call
per destination: a busy gateway pays one wake-up and one write per interval, not a thread switch per line (that
switch was a tenth of a non-streamed request's CPU). A line reaches the file at most ``FLUSH_SECONDS`` after its
request ended; ``stop`` writes everything accepted before it returns.

The queue has a limit in bytes: a destination that blocks (a stalled disk, a stdout nobody reads) holds the writer,
and lines would pile up in memory for as long as it does. Past the limit a new line is dropped and counted
(``on_drop("queue_full", 1)``), as are the lines of a batch a destination refused (``"write_error"``: a full disk),
so a lost line is never a silent one.

Rotation is the standard library's RotatingFileHandler's, on the same file names (Filebeat's config and the
operators' habits know them): before a line that would take the file to ``max_bytes`` or more, the file becomes
`.1`, `.1` becomes `.2` ..., the oldest beyond ``backup_count`` is deleted; with either number 0 the file is never
rotated. A line is never split across files.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import orjson

FLUSH_SECONDS = 0.05
MAX_QUEUED_BYTES = 64 * 1024 * 1024  # at 1 KB a line, a minute of 1,000 requests/s waiting on a stalled destination
DROP_REASONS = ("queue_full", "write_error")
OnDrop = Callable[[str, int], None]  # (a DROP_REASONS reason, lines)


def _ignore(reason: str, lines: int) -> None:
    pass


class _RotatingFile:
    """An append-only file rotated as logging.handlers.RotatingFileHandler does, opened on the first line."""

    def __init__(self, path: Path, max_bytes: int, backup_count: int) -> None:
        self._path = path
        self._max = max_bytes if max_bytes > 0 and backup_count > 0 else 0
        self._backups = backup_count
        self._file: BinaryIO | None = None
        self._size = 0

    def write(self, lines: list[bytes]) -> None:
        if self._file is None:
            self._file = self._open()
        if not self._max:
            self._file.write(b"".join(lines))
            self._file.flush()
            return
        start = 0
        for i, line in enumerate(lines):
            if self._size and self._size + len(line) >= self._max:
                self._file.write(b"".join(lines[start:i]))
                self._rotate()
                start = i
            self._size += len(line)
        self._file.write(b"".join(lines[start:]))
        self._file.flush()

    def _open(self) -> BinaryIO:
        file = self._path.open("ab")
        self._size = file.tell()
        if self._max and not self._path.is_file():
            self._max = 0  # a pipe or a device (/dev/stdout): nothing to rotate, as the stdlib handler decides
        return file

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        base = str(self._path)
        for i in range(self._backups - 1, 0, -1):
            if os.path.exists(f"{base}.{i}"):
                os.replace(f"{base}.{i}", f"{base}.{i + 1}")
        os.replace(base, f"{base}.1")
        self._file = self._open()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Stream:
    """stdout (or any text stream a test passes): bytes go to its binary buffer when it has one."""

    def __init__(self, stream: TextIO) -> None:
        self._text = stream
        self._binary: BinaryIO | None = getattr(stream, "buffer", None)

    def write(self, lines: list[bytes]) -> None:
        if self._binary is not None:
            self._text.flush()  # anything printed as text first stays in order
            self._binary.write(b"".join(lines))
            self._binary.flush()
        else:
            self._text.write(b"".join(lines).decode("utf-8"))
            self._text.flush()

    def close(self) -> None:
        pass


class AccessLog:
    """Owns the destinations and the writer thread; ``write`` is cheap and never blocks."""

    def __init__(
        self,
        path: Path | None,
        max_bytes: int = 100 * 1024 * 1024,
        backup_count: int = 5,
        stream: TextIO | None = sys.stdout,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
        on_drop: OnDrop = _ignore,
    ) -> None:
        self._sinks: list[_RotatingFile | _Stream] = []
        if stream is not None:
            self._sinks.append(_Stream(stream))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sinks.append(_RotatingFile(path, max_bytes, backup_count))
        self._queue: collections.deque[bytes] = collections.deque()  # append and popleft are atomic
        self._max_queued = max_queued_bytes
        self._on_drop = on_drop
        # Bytes queued so far, and bytes taken by the writer: each written by one thread only, so no lock.
        self._queued_bytes = 0
        self._taken_bytes = 0
        self._dropped = 0  # lines refused for a full queue (the caller's thread), and how many of them the writer
        self._dropped_reported = 0  # has reported on stderr (the writer's thread)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Drain the queue and close the files: every line accepted so far is on disk when this returns."""
        if self._thread is not None:
            self._stopping.set()
            self._thread.join()
            self._thread = None
        for sink in self._sinks:
            sink.close()

    def write(self, line: dict[str, Any]) -> None:
        # default=str: a value of an unexpected type is logged as text rather than losing the line
        data = orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE)
        if self._queued_bytes - self._taken_bytes + len(data) > self._max_queued:
            self._dropped += 1
            self._on_drop("queue_full", 1)
            return
        self._queued_bytes += len(data)
        self._queue.append(data)

    def _run(self) -> None:
        while True:
            stop = self._stopping.wait(FLUSH_SECONDS)
            self._flush()
            if stop:
                return

    def _flush(self) -> None:
        queued, take = self._queue, self._queue.popleft
        while queued:
            lines = [take() for _ in range(min(len(queued), 4096))]
            self._taken_bytes += sum(map(len, lines))
            for sink in self._sinks:
                try:
                    sink.write(lines)
                except (OSError, ValueError) as exc:  # a full disk or a closed stdout must not end the writer
                    self._on_drop("write_error", len(lines))
                    sys.stderr.write(f"llmwatch gateway: access log: {len(lines)} line(s) not written: {exc}\n")
        dropped = self._dropped - self._dropped_reported
        if dropped:
            self._dropped_reported += dropped
            sys.stderr.write(
                f"llmwatch gateway: access log: {dropped} line(s) dropped while the destination was stalled "
                f"({self._max_queued} bytes of lines were waiting)\n"
            )
