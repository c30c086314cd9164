"""The load test's own flags, beside Locust's (loadtest/locustfile.py adds them when Locust builds its parser)."""

from __future__ import annotations

from typing import Any

from loadtest import prompts, slo


def add(parser: Any) -> None:
    parser.add_argument("--model", default="", help="Model to ask for (default: the first of GET /v1/models).")
    parser.add_argument("--max-tokens", type=int, default=0, help="max_tokens of every request (0: not sent).")
    parser.add_argument("--prompts", default=str(prompts.DEFAULT_FILE), help="Prompt file (JSON lines).")
    parser.add_argument("--prompt-tags", default="", help="Only prompts with all these tags, e.g. math,en.")
    parser.add_argument("--rate", type=float, default=0.0, help="Open loop: Poisson arrivals, req/s in total.")
    parser.add_argument("--seed", type=int, default=-1, help="Seed of the Poisson gaps (-1: random).")
    parser.add_argument("--slo", default=str(slo.DEFAULT_FILE), help="SLO file the run is judged by.")
    parser.add_argument("--warmup-requests", type=int, default=-1, help="Not judged: first N (-1: slo file).")
    parser.add_argument("--warmup-seconds", type=float, default=-1, help="Not judged: first S s (-1: slo file).")
    parser.add_argument("--report-dir", default="run/loadtest", help="Where summary.json and report.html go.")
    parser.add_argument("--prometheus", default="", help="Prometheus base URL, for GPU memory during the run.")
    parser.add_argument("--max-num-seqs", type=int, default=0, help="The engine's batch size, to explain a miss.")
    parser.add_argument(
        "--no-itl-events", action="store_true", help="No ITL rows in Locust's stats (the report keeps exact ITL)."
    )
    parser.add_argument(
        "--accept-reasoning-only", action="store_true",
        help="Count thought-only answers (no text after </think>) as answers: for random weights, which never close "
        "</think>. The report says how many there were.",
    )  # fmt: skip
    parser.add_argument("--gpu", default="", help="GPU model (rtx3060, rtx4090, h100): per-stream decode ceiling.")
    parser.add_argument(
        "--api-key", default="", env_var="LOADTEST_API_KEY", is_secret=True,
        help="Bearer key (the gateway's `loadtest` key); env LOADTEST_API_KEY.",
    )  # fmt: skip
