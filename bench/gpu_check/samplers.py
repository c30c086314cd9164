"""Samplers in a thread: the card's used memory (NVML or nvidia-smi) and the engine's /metrics gauges."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Callable

import httpx

GB = 1e9


def gpu_name_and_used() -> tuple[str, Callable[[], int]] | None:
    """The first GPU's name and a function returning its used memory in bytes (NVML, else nvidia-smi); None: none."""
    with contextlib.suppress(Exception):
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        return f"{name} (NVML)", lambda: int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
    if shutil.which("nvidia-smi"):

        def smi(field: str) -> str:
            args = ["nvidia-smi", "-i", "0", f"--query-gpu={field}", "--format=csv,noheader,nounits"]
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()

        name = smi("name")
        if name:
            return f"{name} (nvidia-smi)", lambda: int(float(smi("memory.used"))) * 1024 * 1024
    return None


class Sampler:
    """Calls ``sample`` every ``interval`` seconds in a thread until ``stop``; a failed sample is skipped."""

    def __init__(self, sample: Callable[[], None], interval: float) -> None:
        self._sample, self.interval = sample, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self._sample()
            self._stop.wait(self.interval)

    def _join(self) -> None:
        self._stop.set()
        self._thread.join(10)


class MemorySampler(Sampler):
    """The card's used memory every ``interval`` seconds; ``peak`` since the last ``reset``."""

    def __init__(self, used: Callable[[], int], interval: float = 0.5) -> None:
        self.used, self.peak = used, 0
        super().__init__(self.sample, interval)

    def sample(self) -> None:
        self.peak = max(self.peak, self.used())

    def reset(self) -> None:
        self.peak = self.used()

    def stop(self) -> None:
        self._join()


class EngineSampler(Sampler):
    """Scrapes the engine's /metrics every second: the peaks of its queue, batch and KV-cache gauges."""

    GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
              "llamacpp:requests_processing", "llamacpp:requests_deferred")  # fmt: skip

    def __init__(self, url: str) -> None:
        self.url = url
        self.peaks: dict[str, float] = {}
        super().__init__(self.sample, 1.0)

    def sample(self) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(self.url + "/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name in self.GAUGES:
                value = sum(sample.value for sample in family.samples)
                self.peaks[family.name] = max(self.peaks.get(family.name, 0.0), value)

    def stop(self) -> dict[str, float]:
        self._join()
        return self.peaks
