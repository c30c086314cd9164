"""The ``llmwatch`` command: one console script, one subcommand per role (``vllm serve`` style)."""

from __future__ import annotations

import importlib
import sys

# subcommand -> module with a ``main(argv: list[str]) -> int``; imported lazily so that
# `llmwatch gateway` never pays for the simulator's imports and vice versa.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "gateway": ("llmwatch.gateway.main", "OpenAI-compatible proxy that logs and measures every request"),
    "sim": ("llmwatch.simulator.main", "vLLM-compatible simulator of DeepSeek-R1-Distill-Qwen-1.5B"),
    "relay": ("llmwatch.relay.main", "Alertmanager webhook -> DingTalk / WeCom / Feishu"),
    "demo": ("llmwatch.demo.main", "the local stack on 127.0.0.1 (no Docker, no GPU) with a burst of traffic"),
    "doctor": ("llmwatch.doctor.main", "walk the bottleneck path over live Prometheus metrics: ranked findings"),
}


def _usage() -> str:
    lines = ["usage: llmwatch <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `llmwatch <command> --help` for its flags; every flag has an LLMWATCH_* env twin."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        sys.stdout.write(_usage() + "\n")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"llmwatch: unknown command {name!r}\n\n{_usage()}\n")
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
