"""`llmwatch gateway`: parse flags (or LLMWATCH_GATEWAY_* env), then serve with uvicorn on uvloop/httptools."""

from __future__ import annotations

import logging

import uvicorn
from prometheus_client import disable_created_metrics
from pydantic_settings import CliApp

from llmwatch.gateway.app import create_app
from llmwatch.gateway.settings import GatewaySettings


def main(argv: list[str]) -> int:
    settings = CliApp.run(GatewaySettings, cli_args=argv)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the exposition and no dashboard reads them
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,  # the gateway writes its own, richer access log
        log_level="info",
        lifespan="on",
        timeout_keep_alive=75,
        backlog=4096,
    )
    return 0
