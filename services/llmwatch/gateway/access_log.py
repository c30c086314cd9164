"""The access log: one JSON line per request, written by a background thread so disk I/O never blocks the loop.

Lines go to stdout and, optionally, to a size-rotated file (which Filebeat tails). The logger is its own
(`llmwatch.access`), does not propagate, and is formatted by python-json-logger's orjson formatter.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
from pathlib import Path
from typing import Any, TextIO

from pythonjsonlogger.orjson import OrjsonFormatter

LOGGER_NAME = "llmwatch.access"


class _RecordAsIs(logging.handlers.QueueHandler):
    # The stock QueueHandler formats on the caller's thread; the JSON work belongs on the listener's.
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class AccessLog:
    """Owns the access logger's handlers and the listener thread; ``write`` is cheap and never blocks."""

    def __init__(
        self,
        path: Path | None,
        max_bytes: int = 100 * 1024 * 1024,
        backup_count: int = 5,
        stream: TextIO | None = sys.stdout,
    ) -> None:
        formatter = OrjsonFormatter(fmt=[])
        handlers: list[logging.Handler] = []
        if stream is not None:
            handlers.append(logging.StreamHandler(stream))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(
                logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backup_count, delay=True)
            )
        for handler in handlers:
            handler.setFormatter(formatter)
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._listener = logging.handlers.QueueListener(self._queue, *handlers, respect_handler_level=False)
        self._handlers = handlers
        self.logger = logging.getLogger(LOGGER_NAME)
        self.logger.handlers = [_RecordAsIs(self._queue)]
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        """Drain the queue and close the files: every line accepted so far is on disk when this returns."""
        self._listener.stop()
        for handler in self._handlers:
            handler.close()

    def write(self, line: dict[str, Any]) -> None:
        # makeRecord directly: skips findCaller's stack walk, the costliest part of logger.info.
        record = self.logger.makeRecord(LOGGER_NAME, logging.INFO, "", 0, line, (), None)
        self._queue.put_nowait(record)
