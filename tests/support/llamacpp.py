"""A real llama.cpp `llama-server` for tests: the binaries scripts/install-llama-cpp.sh builds, a `tiny` GGUF from
scripts/make-gguf.py (the distill's tokenizer and chat template, random weights), and the committed /metrics capture."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support import REPO, free_port, running
from tests.support.promql import series_names

CACHE = Path(os.environ.get("LLMWATCH_CACHE", Path.home() / ".cache" / "llmwatch"))
LLAMA_BIN = CACHE / "llama.cpp" / "bin"
METRICS_CAPTURE = REPO / "tests" / "fixtures" / "llamacpp-metrics.txt"
MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
# The distill's token ids (scripts/make-gguf.py cites where they are published).
THINK_CLOSE_ID = 151649


def llama_binary(name: str) -> Path:
    """A binary scripts/install-llama-cpp.sh built; a missing one is an install bug, so this fails, not skips."""
    path = LLAMA_BIN / name
    if not path.is_file():
        raise AssertionError(f"{path} not found: run `scripts/install-llama-cpp.sh` (make test does)")
    return path


def tiny_model() -> Path:
    """The `tiny` f16 GGUF, made once per version of scripts/make-gguf.py and kept next to the binaries."""
    maker = REPO / "scripts" / "make-gguf.py"
    digest = hashlib.sha256(maker.read_bytes()).hexdigest()[:12]
    path = CACHE / "llama.cpp" / "models" / f"tiny-f16-{digest}.gguf"
    if not path.is_file():
        llama_binary("llama-server")
        path.parent.mkdir(parents=True, exist_ok=True)
        # One partial file per process: parallel test workers may all find the model missing on a fresh cache.
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial")
        args = [sys.executable, str(maker), "--arch", "tiny", "--type", "f16", "--out", str(partial)]
        subprocess.run(args, check=True, timeout=300)
        os.replace(partial, path)
    return path


def server_cmd(model: Path, port: int, *flags: str) -> list[str]:
    """`llama-server` as the `cpu` profile runs it (--jinja, DeepSeek reasoning, --metrics), small and on 127.0.0.1."""
    return [
        str(llama_binary("llama-server")), "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--alias", MODEL, "--jinja", "--reasoning-format", "deepseek", "--metrics",
        "--ctx-size", "512", "--parallel", "2", "--threads", "2", "--cache-ram", "0", "--seed", "1", *flags,
    ]  # fmt: skip


@contextlib.contextmanager
def llama_server(log_path: Path, *flags: str, timeout: float = 120.0) -> Iterator[str]:
    """A running llama-server on the tiny model: its base URL without /v1."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(server_cmd(tiny_model(), port, *flags), log_path, url + "/health", timeout=timeout):
        yield url


def capture_names() -> set[str]:
    """Series names in the committed /metrics capture of the built llama-server."""
    return series_names(METRICS_CAPTURE.read_text())
