"""The access log's writer (gateway/access_log.py): the standard library's rotation to the byte, every line once and
in order, a failing destination that costs its lines a message on stderr (and a count), never the writer, and a
stalled one that holds at most the queue's limit in memory."""

from __future__ import annotations

import io
import logging
import logging.handlers
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmwatch.gateway.access_log import FLUSH_SECONDS, AccessLog

pytestmark = pytest.mark.unit

LINES = [{"request_id": f"r{i:04d}", "pad": "x" * (i % 37), "n": None, "ok": True, "ms": 1.5, "tools": []}
         for i in range(500)]  # fmt: skip


class _OneJsonLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(record.msg).decode()


@pytest.mark.parametrize(("max_bytes", "backups"), [(2000, 3), (2000, 0), (0, 3), (150, 2)])
def test_rotation_is_the_standard_librarys_to_the_byte(tmp_path: Path, max_bytes: int, backups: int) -> None:
    """Filebeat and operators know RotatingFileHandler's files: the same names, the same lines in each."""
    stdlib = logging.handlers.RotatingFileHandler(tmp_path / "std.log", maxBytes=max_bytes, backupCount=backups)
    stdlib.setFormatter(_OneJsonLine())
    for line in LINES:
        stdlib.emit(logging.makeLogRecord({"msg": line}))
    stdlib.close()
    log = AccessLog(tmp_path / "ours.log", max_bytes, backups, stream=None)
    log.start()
    for line in LINES:
        log.write(line)
    log.stop()
    for suffix in ["", *(f".{i}" for i in range(1, backups + 2))]:
        std, ours = tmp_path / f"std.log{suffix}", tmp_path / f"ours.log{suffix}"
        assert std.exists() == ours.exists(), suffix
        if std.exists():
            assert std.read_bytes() == ours.read_bytes(), suffix


def test_every_line_once_in_order_from_many_threads(tmp_path: Path) -> None:
    out = io.StringIO()
    log = AccessLog(tmp_path / "a.log", stream=out)
    log.start()

    def writer(k: int) -> None:
        for i in range(2000):
            log.write({"writer": k, "i": i})

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.stop()  # drains: every accepted line is written when stop returns
    for text in (out.getvalue(), (tmp_path / "a.log").read_text()):
        lines = [orjson.loads(x) for x in text.splitlines()]
        assert len(lines) == 8000
        for k in range(4):
            assert [x["i"] for x in lines if x["writer"] == k] == list(range(2000))


def test_a_line_is_written_within_the_flush_interval_not_only_at_stop(tmp_path: Path) -> None:
    """Filebeat ships what is on disk: a line must not wait for the next request or for shutdown."""
    log = AccessLog(tmp_path / "a.log", stream=None)
    log.start()
    try:
        log.write({"i": 1})
        deadline = time.monotonic() + 20 * FLUSH_SECONDS
        while time.monotonic() < deadline and not (tmp_path / "a.log").exists():
            time.sleep(FLUSH_SECONDS / 5)
        assert (tmp_path / "a.log").read_bytes() == b'{"i":1}\n'
    finally:
        log.stop()


def test_a_value_of_an_unexpected_type_is_text_not_a_lost_line(tmp_path: Path) -> None:
    log = AccessLog(tmp_path / "a.log", stream=None)
    log.start()
    log.write({"path": tmp_path, "n": 1})
    log.stop()
    assert orjson.loads((tmp_path / "a.log").read_text()) == {"path": str(tmp_path), "n": 1}


class _Broken(io.StringIO):
    def write(self, text: str) -> Any:
        raise OSError(28, "No space left on device")


def test_a_failing_destination_costs_a_message_not_the_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AccessLog(tmp_path / "a.log", stream=_Broken())
    log.start()
    log.write({"i": 1})
    log.write({"i": 2})
    log.stop()
    assert [orjson.loads(x)["i"] for x in (tmp_path / "a.log").read_text().splitlines()] == [1, 2]
    err = capsys.readouterr().err
    assert "access log" in err and "No space left on device" in err


class _Stalled(io.StringIO):
    """A destination that blocks until released, as a stalled disk or an unread stdout does."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(10)
        return super().write(text)


def test_a_stalled_destination_holds_at_most_the_limit_and_the_rest_is_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Memory stays bounded while the writer is stuck: lines past --log-max-queued-bytes are dropped, each counted,
    and every line accepted is written, in order, once the destination moves again."""
    out = _Stalled()
    drops: list[tuple[str, int]] = []
    entries = [{"i": f"{i:03d}", "pad": "x" * 80} for i in range(31)]  # lines of one length
    line = orjson.dumps(entries[0], option=orjson.OPT_APPEND_NEWLINE)
    log = AccessLog(None, stream=out, max_queued_bytes=10 * len(line), on_drop=lambda r, n: drops.append((r, n)))
    log.start()
    log.write(entries[0])
    assert out.entered.wait(5), "the writer took the first line and blocked on it"
    for entry in entries[1:]:
        log.write(entry)
    assert drops == [("queue_full", 1)] * 20  # 10 lines' worth waited; the other 20 were refused at once
    out.release.set()
    log.stop()
    assert [int(orjson.loads(x)["i"]) for x in out.getvalue().splitlines()] == list(range(11))
    assert "20 line(s) dropped while the destination was stalled" in capsys.readouterr().err


def test_the_limit_counts_what_waits_not_what_was_ever_written(tmp_path: Path) -> None:
    """Lines the writer has taken free their room: far more than the limit passes through a healthy destination."""
    drops: list[tuple[str, int]] = []
    line = orjson.dumps(LINES[0], option=orjson.OPT_APPEND_NEWLINE)
    log = AccessLog(
        tmp_path / "a.log", stream=None, max_queued_bytes=50 * len(line), on_drop=lambda r, n: drops.append((r, n))
    )
    log.start()
    for start in range(0, len(LINES), 25):
        for entry in LINES[start : start + 25]:
            log.write(entry)
        time.sleep(3 * FLUSH_SECONDS)  # the writer drains between bursts
    log.stop()
    assert drops == []
    assert len((tmp_path / "a.log").read_text().splitlines()) == len(LINES)


def test_a_refused_write_is_counted_per_destination(tmp_path: Path) -> None:
    drops: list[tuple[str, int]] = []
    log = AccessLog(tmp_path / "a.log", stream=_Broken(), on_drop=lambda r, n: drops.append((r, n)))
    log.start()
    log.write({"i": 1})
    log.write({"i": 2})
    log.stop()
    assert {r for r, _ in drops} == {"write_error"} and sum(n for _, n in drops) == 2  # stdout's; the file has both
    assert len((tmp_path / "a.log").read_text().splitlines()) == 2
