"""The engine's command line: docker-compose.yml's `command:` for its service, rendered as `docker compose` does."""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from bench.paths import REPO

COMPOSE = REPO / "docker-compose.yml"
ENGINE_SERVICE = {"vllm": "vllm", "llamacpp": "llama", "sim": "sim"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alternative}; innermost first, so an alternative may
# hold another ${...}.
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?)([-?+])([^{}]*))?\}")


def compose_command(service: str, env: dict[str, str]) -> list[str]:
    """The service's `command:` with ${...} filled from ``env`` (the .env stand-in) as compose does, split on spaces."""
    text = str(yaml.safe_load(COMPOSE.read_text())["services"][service]["command"])

    def fill(match: re.Match[str]) -> str:
        name, colon, op, word = match.group(1), match.group(2), match.group(3), match.group(4) or ""
        value = env.get(name)
        present = bool(value) if colon else value is not None
        if op == "+":
            return word if present else ""
        if present:
            return value or ""
        if op == "?":
            raise SystemExit(f"gpu_check: --set {name}=... is required ({word})")
        return word if op == "-" else ""

    while _VAR.search(text):
        text = _VAR.sub(fill, text)
    return text.split()


def replace_flag(args: list[str], flag: str, value: str) -> list[str]:
    """``args`` with ``flag``'s value replaced (the flag must be there: compose's flags are the point)."""
    if flag not in args:
        raise SystemExit(f"gpu_check: compose's command has no {flag}: {' '.join(args)}")
    i = args.index(flag)
    return [*args[: i + 1], value, *args[i + 2 :]]


def engine_command(args: argparse.Namespace, port: int, model_dir: Path) -> tuple[list[str], int, str]:
    """The engine's command line (compose's flags), its batch size and the model's format."""
    env = dict(args.env)
    if args.engine == "vllm":
        cmd = compose_command("vllm", env)
        cmd = [str(model_dir), *cmd[1:]]  # `vllm serve MODEL`: the model comes first
        cmd = replace_flag(replace_flag(cmd, "--host", "127.0.0.1"), "--port", str(port))
        cmd = [*shlex.split(args.vllm), "serve", *cmd, "--load-format", "dummy"]
        return cmd, int(cmd[cmd.index("--max-num-seqs") + 1]), "FP16 (`--load-format dummy`)"
    if args.engine == "llamacpp":
        env.setdefault("LLAMA_MODEL_FILE", args.gguf.name)
        cmd = compose_command("llama", env)
        cmd = replace_flag(cmd, "--model", str(args.gguf.resolve()))
        cmd = replace_flag(replace_flag(cmd, "--host", "127.0.0.1"), "--port", str(port))
        cmd = [str(args.llama_server), "--n-gpu-layers", "all", *cmd]  # the gpu-q4 profile's entrypoint
        return cmd, int(cmd[cmd.index("--parallel") + 1]), f"GGUF {args.gguf.name}"
    cmd = compose_command("sim", env)
    cmd = replace_flag(replace_flag(cmd, "--host", "127.0.0.1"), "--port", str(port))
    cmd = [sys.executable, "-m", "llmwatch.cli", *cmd[1:]]
    return cmd, int(cmd[cmd.index("--max-num-seqs") + 1]), "simulated (`llmwatch sim`)"


def engine_version(args: argparse.Namespace) -> str:
    if args.engine == "vllm":  # the installed distribution's version, without vLLM's slow CLI import when possible
        with contextlib.suppress(Exception):
            import importlib.metadata

            return f"vLLM {importlib.metadata.version('vllm')}"
    probe = {
        "vllm": [*shlex.split(args.vllm), "--version"],
        "llamacpp": [str(args.llama_server), "--version"],
        "sim": [sys.executable, "-c", "import llmwatch; print('llmwatch sim', getattr(llmwatch, '__version__', ''))"],
    }[args.engine]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout + done.stderr).strip().splitlines()
    version = next((t for t in text if re.search(r"\d+\.\d+|version", t)), text[-1] if text else "unknown")
    return f"vLLM {version.strip()}" if args.engine == "vllm" else version.strip()
