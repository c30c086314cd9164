"""The measuring loop of the GPU check (bench/closed_loop.py): a failed request is counted in its cell and the loop
goes on, as the first run on the lent GPU needed (one engine hiccup at 256 streams ended the whole sweep there)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from bench.closed_loop import RequestFailed, measure

pytestmark = pytest.mark.integration


def _faults(sim_url: str, **faults: object) -> None:
    assert httpx.post(f"{sim_url}/admin/faults", json=faults).status_code == 200


def test_failed_requests_are_counted_and_the_cell_goes_on(sim_url: str) -> None:
    _faults(sim_url, error_rate=0.3)
    cell = asyncio.run(measure(sim_url, 4, 60, 8))
    assert cell["errors"] > 0 and cell["requests"] > 0
    assert cell["requests"] + cell["errors"] == 60
    assert cell["first_error"].startswith("RequestFailed: HTTP 500")
    assert cell["aggregate_tok_s"] > 0  # of the requests that succeeded


def test_a_cell_where_every_request_failed_is_an_error(sim_url: str) -> None:
    _faults(sim_url, error_rate=1.0)
    with pytest.raises(RequestFailed, match="all 8 requests failed"):
        asyncio.run(measure(sim_url, 2, 8, 8))
