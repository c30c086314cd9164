"""`llmwatch sim`: a vLLM-0.33-compatible stand-in for DeepSeek-R1-Distill-Qwen-1.5B (no GPU needed)."""

from __future__ import annotations

import logging

import uvloop
from aiohttp import web

from llmwatch.config import parse_cli
from llmwatch.simulator.app import build_app
from llmwatch.simulator.settings import SimSettings
from llmwatch.simulator.simulator import StartupError
from llmwatch.vllm.cache import BLOCK_SIZE

log = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    settings = parse_cli(SimSettings, argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        app, sim = build_app(settings)
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    log.info(
        "serving %s as %s on %s:%d: %d KV blocks (%d tokens), max_num_seqs=%d, reasoning_parser=%r",
        settings.served_model_name,
        settings.gpu_profile,
        settings.host,
        settings.port,
        sim.num_gpu_blocks,
        sim.num_gpu_blocks * BLOCK_SIZE,
        settings.max_num_seqs,
        settings.reasoning_parser,
    )
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None, loop=uvloop.new_event_loop())
    return 0
