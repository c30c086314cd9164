"""`llmwatch gateway` freezes what start-up built before it serves, so the collector's full passes skip it (main.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import uvicorn

from llmwatch.gateway import main as gateway_main

pytestmark = pytest.mark.unit


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # this test process's objects go back to the collector


def test_start_up_objects_are_frozen_before_serving(monkeypatch: pytest.MonkeyPatch, unfrozen: None) -> None:
    frozen_when_serving: list[int] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: frozen_when_serving.append(gc.get_freeze_count()))
    monkeypatch.setattr(gateway_main, "disable_created_metrics", lambda: None)  # process-wide: other tests need them
    assert gateway_main.main(["--upstream", "http://127.0.0.1:9"]) == 0
    assert frozen_when_serving and frozen_when_serving[0] > 10_000, frozen_when_serving
