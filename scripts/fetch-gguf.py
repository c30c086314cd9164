#!/usr/bin/env python3
"""Make sure the GGUF that llama-server loads is in place: download it once from a URL and check its SHA-256.

    scripts/fetch-gguf.py MODEL_DIR        (settings from the environment, as compose passes them from .env)

LLAMA_MODEL_FILE   the file name inside MODEL_DIR (required)
LLAMA_MODEL_URL    where to download it from (http or https); empty: the operator put the file there
LLAMA_MODEL_SHA256 its SHA-256; required with LLAMA_MODEL_URL, and checks a file put there by hand when given alone

The `llama-model` one-shot service of docker-compose.yml runs this before the engine starts. A file that is already
there with the right hash is not downloaded again. A download goes to a hidden `.partial` file next to the target
and replaces it only once its hash matches, so a failed or interrupted download never leaves a bad model behind.
Standard library only: it runs in the llmwatch image without installing anything. Every error is one line that
says what to change; exit 2 for a setting to fix, 1 for a download or a file that failed its check.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

CHUNK = 1 << 20
# Far above any GGUF of a 1.5B model (F16 is 3.6 GB): a wrong URL must not fill the disk before the hash check.
MAX_BYTES = 16 << 30
READ_TIMEOUT_S = 60.0
GGUF_MAGIC = b"GGUF"
SHA256 = re.compile(r"[0-9a-f]{64}")
PROGRESS_STEPS = 10


class Failed(Exception):
    """One line for the operator, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def shown(url: str) -> str:
    """The URL without credentials or query string (signed download links carry tokens there)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def check_gguf(path: Path, what: str) -> None:
    with path.open("rb") as f:
        head = f.read(len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise Failed(f"{what} {path} is not a GGUF file (it starts with {head!r}, not {GGUF_MAGIC!r})")


def settings(env: dict[str, str]) -> tuple[str, str, str]:
    """LLAMA_MODEL_FILE, LLAMA_MODEL_URL, LLAMA_MODEL_SHA256, validated; a bad one is a setting to fix (exit 2)."""
    name = env.get("LLAMA_MODEL_FILE", "").strip()
    url = env.get("LLAMA_MODEL_URL", "").strip()
    sha = env.get("LLAMA_MODEL_SHA256", "").strip().lower()
    if not name:
        raise Failed("LLAMA_MODEL_FILE is empty: set it in .env to the GGUF's file name", 2)
    if name != Path(name).name or name in {".", ".."}:
        raise Failed(f"LLAMA_MODEL_FILE={name!r} must be a file name inside LLAMA_MODEL_DIR, not a path", 2)
    if url and not sha:
        raise Failed("LLAMA_MODEL_URL is set but LLAMA_MODEL_SHA256 is empty: set both in .env (the file's SHA-256 "
                     "is on its download page, or run `sha256sum` on a copy you trust)", 2)  # fmt: skip
    if sha and not SHA256.fullmatch(sha):
        raise Failed(f"LLAMA_MODEL_SHA256={sha!r} is not a SHA-256 (64 hex digits)", 2)
    if url and urllib.parse.urlsplit(url).scheme not in {"http", "https"}:
        raise Failed(f"LLAMA_MODEL_URL={shown(url)!r} must be an http:// or https:// URL", 2)
    return name, url, sha


def download(url: str, sha: str, target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as response, partial.open("wb") as out:
            length = int(response.headers.get("Content-Length") or 0)
            if length > MAX_BYTES:
                raise Failed(f"{shown(url)} is {length} bytes, more than the {MAX_BYTES} a GGUF of this model needs")
            print(f"llama-model: downloading {shown(url)} ({length or 'unknown'} bytes) to {target}", flush=True)
            step = 1
            while block := response.read(CHUNK):
                size += len(block)
                if size > MAX_BYTES:
                    raise Failed(f"{shown(url)} sent more than {MAX_BYTES} bytes: not a GGUF of this model")
                digest.update(block)
                out.write(block)
                if length and size * PROGRESS_STEPS >= step * length and step < PROGRESS_STEPS:
                    print(f"llama-model: {size * 100 // length}%", flush=True)
                    step = size * PROGRESS_STEPS // length + 1
        if length and size != length:
            raise Failed(f"{shown(url)} ended after {size} of {length} bytes: run `docker compose up` again")
        got = digest.hexdigest()
        if got != sha:
            raise Failed(f"the file from {shown(url)} has SHA-256 {got}, but LLAMA_MODEL_SHA256 is {sha}: "
                         "check both in .env")  # fmt: skip
        check_gguf(partial, "the download")
        partial.chmod(0o644)
        os.replace(partial, target)
    except urllib.error.HTTPError as exc:
        raise Failed(f"downloading {shown(url)} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise Failed(f"downloading {shown(url)} failed: {reason!r}") from exc
    finally:
        partial.unlink(missing_ok=True)


def ensure(model_dir: Path, env: dict[str, str]) -> str:
    """Put the model in place if needed; returns what was done, for the log."""
    name, url, sha = settings(env)
    if not model_dir.is_dir():
        raise Failed(f"{model_dir} is not a folder: check LLAMA_MODEL_DIR in .env", 2)
    target = model_dir / name
    if target.is_file():
        if not sha:
            check_gguf(target, "LLAMA_MODEL_FILE")
            return f"using {target} (no LLAMA_MODEL_SHA256 given, so not checked)"
        got = file_sha256(target)
        if got == sha:
            check_gguf(target, "LLAMA_MODEL_FILE")
            return f"using {target} (SHA-256 checked)"
        if not url:
            raise Failed(f"{target} has SHA-256 {got}, but LLAMA_MODEL_SHA256 is {sha}: replace the file or fix the "
                         "hash in .env")  # fmt: skip
        print(f"llama-model: {target} has SHA-256 {got}, not {sha}: downloading it again", flush=True)
    elif not url:
        raise Failed(f"no model file {target}: put the GGUF into LLAMA_MODEL_DIR as LLAMA_MODEL_FILE, or set "
                     "LLAMA_MODEL_URL and LLAMA_MODEL_SHA256 in .env (docs/edge.md)", 2)  # fmt: skip
    download(url, sha, target)
    return f"downloaded {target} (SHA-256 checked)"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: fetch-gguf.py MODEL_DIR (settings in LLAMA_MODEL_FILE, _URL, _SHA256)", file=sys.stderr)
        return 2
    try:
        print(f"llama-model: {ensure(Path(argv[0]), dict(os.environ))}", flush=True)
    except Failed as exc:
        print(f"llama-model: {exc}", file=sys.stderr, flush=True)
        return exc.status
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
