"""The real engine in the loop: correctness, the KPI sweep direct and through the gateway, the load-test gate.

    python bench/gpu_check.py --out DIR [--engine vllm|llamacpp|sim] [--set VLLM_MAX_NUM_SEQS=256] ...
    make gpu-check GPU_CHECK_ARGS="--set VLLM_MAX_NUM_SEQS=256"

On any CUDA host where `pip install vllm` works (plus this project's `pip install -e '.[test]'`):
1. writes a model folder for DeepSeek-R1-Distill-Qwen-1.5B's exact architecture (config, generation config, the
   tokenizer with the distill's added tokens and chat template: bench/distill.py, from llama.cpp's Qwen2 vocabulary
   file, no download); vLLM loads it with `--load-format dummy`: random weights, so the text is noise and the model
   never writes `</think>` (every answer is reasoning only), but every cost is the real model's;
2. starts the engine with docker-compose.yml's flags for it (the `vllm` service; `--set VAR=VALUE` stands for .env),
   and `llmwatch gateway` in front as compose runs it (a keys file, `--warmup`, a metrics listener);
3. then, in order: correctness through the official `openai` SDK; the KPI sweep (bench/engine_kpis.py's `measure`)
   direct and through the gateway, cells alternated direct, gateway, gateway, direct; the load test's gate
   (loadtest/, as `make load` runs it) with the card's memory sampled through NVML or nvidia-smi; the engine's
   /metrics idle and after load;
4. writes DIR/REPORT.md (markdown tables, each step's duration), DIR/gpu-check.json and the load test's report.html,
   and stops everything it started. Exit 0 when every correctness check passed (the gate's verdict is a finding,
   not a failure of the check).

`--engine llamacpp` runs llama-server (the compose `llama` service's flags plus `--n-gpu-layers all`) on a GGUF,
e.g. scripts/make-gguf.py's Q4_K_M; `--engine sim` runs `llmwatch sim` instead of a GPU engine (tests use it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench.*` and `loadtest.*` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import yaml
from loadtest import prompts as load_prompts
from loadtest import slo

from bench import distill
from bench.engine_kpis import measure
from llmwatch.processes import Child, free_port, wait_until

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
ENGINE_SERVICE = {"vllm": "vllm", "llamacpp": "llama", "sim": "sim"}
GB = 1e9


# ---- compose's command for a service, as `docker compose` renders it ------------------------------------------------

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR:+alternative}; innermost first, so an alternative may
# hold another ${...}.
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?)([-?+])([^{}]*))?\}")


def compose_command(service: str, env: dict[str, str]) -> list[str]:
    """The service's `command:` with ${...} filled from ``env`` (the .env stand-in) as compose does, split on spaces."""
    text = yaml.safe_load(COMPOSE.read_text())["services"][service]["command"]

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


# ---- GPU memory -----------------------------------------------------------------------------------------------------


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

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        raise NotImplementedError  # each subclass says what it samples

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.sample()
            self._stop.wait(self.interval)

    def _join(self) -> None:
        self._stop.set()
        self._thread.join(10)


class MemorySampler(Sampler):
    """The card's used memory every ``interval`` seconds; ``peak`` since the last ``reset``."""

    def __init__(self, used: Callable[[], int], interval: float = 0.5) -> None:
        self.used, self.peak = used, 0
        super().__init__(interval)

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
        super().__init__(1.0)

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


# ---- the run's record -----------------------------------------------------------------------------------------------


class Record:
    """Steps with their durations, correctness checks, tables; written as JSON and markdown at the end."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.data: dict[str, Any] = {"steps": [], "checks": [], "sweep": [], "gate": None, "facts": {}}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        entry: dict[str, Any] = {"step": name, "seconds": None, "ok": False, "note": ""}
        self.data["steps"].append(entry)
        say(f"-- {name} ...")
        started = time.monotonic()
        try:
            yield entry
            entry["ok"] = True
        except Exception as exc:
            entry["note"] = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        finally:
            entry["seconds"] = round(time.monotonic() - started, 1)
            say(f"-- {name}: {entry['seconds']} s {'ok' if entry['ok'] else 'FAILED ' + entry['note'][:300]}")

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.data["checks"].append({"check": name, "ok": bool(ok), "detail": detail})
        say(f"   {'PASS' if ok else 'FAIL'} {name}: {detail}")

    def save(self) -> None:
        (self.out / "gpu-check.json").write_text(json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")
        (self.out / "REPORT.md").write_text(report_markdown(self.data), encoding="utf-8")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ---- correctness through the openai SDK -----------------------------------------------------------------------------


def access_line(log: Path, request_id: str) -> dict[str, Any]:
    """The gateway's access-log line of ``request_id`` (a background thread writes it)."""

    def find() -> dict[str, Any] | None:
        for line in reversed(log.read_text().splitlines() if log.exists() else []):
            entry: dict[str, Any] = json.loads(line)
            if entry.get("request_id") == request_id:
                return entry
        return None

    return wait_until(find, 30, f"the access-log line of {request_id}", interval=0.1)


def correctness(
    rec: Record, gateway: str, engine: str, key: str, log: Path, model: str, max_len: int, kind: str
) -> None:
    """usage equals the engine's, TTFT, the reasoning split, empty answers, the error types, streamed and not."""
    import openai

    gw = openai.OpenAI(base_url=gateway + "/v1", api_key=key, max_retries=0, timeout=120)
    direct = openai.OpenAI(base_url=engine + "/v1", api_key="none", max_retries=0, timeout=120)
    ask = [{"role": "user", "content": "Explain in three sentences why batching makes GPU inference faster."}]
    fixed = {"ignore_eos": True}
    n = 32

    def rid() -> str:
        return uuid.uuid4().hex

    # Not streamed: usage through the gateway = the engine's own; the log line carries the same numbers.
    r1 = rid()
    via = gw.chat.completions.create(model=model, messages=ask, max_tokens=n, extra_body=fixed,
                                     extra_headers={"X-Request-Id": r1})  # type: ignore[arg-type]  # fmt: skip
    own = direct.chat.completions.create(model=model, messages=ask, max_tokens=n, extra_body=fixed)  # type: ignore[arg-type]
    line = access_line(log, r1)
    u, d = via.usage, own.usage
    assert u is not None and d is not None
    rec.check(
        "usage, not streamed",
        u.prompt_tokens == d.prompt_tokens and u.completion_tokens == d.completion_tokens == n
        and line["prompt_tokens"] == u.prompt_tokens and line["completion_tokens"] == u.completion_tokens,
        f"gateway {u.prompt_tokens}+{u.completion_tokens}, engine {d.prompt_tokens}+{d.completion_tokens}, "
        f"log {line['prompt_tokens']}+{line['completion_tokens']}",
    )  # fmt: skip
    msg = via.choices[0].message
    extra = msg.model_extra or {}
    reasoning = extra.get("reasoning") or extra.get("reasoning_content") or ""
    rec.check(
        "reasoning split, not streamed",
        bool(reasoning) and line["reasoning_tokens"] + line["answer_tokens"] == line["completion_tokens"],
        f"reasoning {len(reasoning)} chars, answer {len(msg.content or '')} chars; log reasoning_tokens "
        f"{line['reasoning_tokens']}, answer_tokens {line['answer_tokens']}, empty_response {line['empty_response']}, "
        f"finish_reason {line['finish_reason']}; completion_tokens_details from the engine: "
        f"{(d.model_extra or {}).get('completion_tokens_details', d.completion_tokens_details)}",
    )
    rec.data["facts"]["reasoning_only"] = not (msg.content or "").strip()

    # Streamed: TTFT, the usage chunk, reasoning deltas.
    r2 = rid()
    sent = time.perf_counter()
    first: float | None = None
    usage = None
    reasoning_chars = answer_chars = 0
    stream = gw.chat.completions.create(
        model=model, messages=ask, max_tokens=n, stream=True, stream_options={"include_usage": True},
        extra_body=fixed, extra_headers={"X-Request-Id": r2},
    )  # type: ignore[call-overload]  # fmt: skip
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            dx = choice.delta.model_extra or {}
            text = dx.get("reasoning") or dx.get("reasoning_content") or ""
            if (text or choice.delta.content) and first is None:
                first = time.perf_counter()
            reasoning_chars += len(text)
            answer_chars += len(choice.delta.content or "")
    line = access_line(log, r2)
    rec.check(
        "usage and TTFT, streamed",
        usage is not None and usage.completion_tokens == n and first is not None and line["ttft_ms"] is not None
        and line["completion_tokens"] == n and line["stream"] is True,
        f"client TTFT {None if first is None else round(1000 * (first - sent))} ms, gateway ttft_ms "
        f"{line['ttft_ms']}, usage {None if usage is None else usage.completion_tokens}, "
        f"log {line['completion_tokens']}",
    )  # fmt: skip
    rec.check(
        "reasoning split, streamed",
        reasoning_chars > 0 and line["reasoning_tokens"] + line["answer_tokens"] == n,
        f"reasoning {reasoning_chars} chars, answer {answer_chars} chars; log reasoning_tokens "
        f"{line['reasoning_tokens']}, answer_tokens {line['answer_tokens']}, empty_response {line['empty_response']}",
    )
    rec.data["facts"]["reasoning_only"] = rec.data["facts"]["reasoning_only"] and answer_chars == 0
    rec.data["facts"]["empty_response_of_reasoning_only"] = line["empty_response"]

    # Errors: a prompt over the context (400 context_length) and an unknown model (404 model_not_found).
    too_long = [{"role": "user", "content": "hello " * (max_len + 100)}]
    cases = [("context_length", 400, model, too_long), ("model_not_found", 404, "no-such-model", ask)]
    if kind == "llamacpp":  # llama-server serves its one model whatever name a request gives
        cases = cases[:1]
        rec.data["facts"]["not_checked"] = "model_not_found: llama-server answers every model name with its one model"
    for error_type, status, name, messages in cases:
        for streamed in (False, True):
            r = rid()
            got: int | None = None
            try:
                kwargs: dict[str, Any] = {"stream": True} if streamed else {}
                result = gw.chat.completions.create(model=name, messages=messages, max_tokens=8,
                                                    extra_headers={"X-Request-Id": r}, **kwargs)  # fmt: skip
                if streamed:
                    list(result)
            except openai.APIStatusError as exc:
                got = exc.status_code
            line = access_line(log, r)
            rec.check(
                f"{error_type}, {'streamed' if streamed else 'not streamed'}",
                got == status and line["status"] == status and line["error_type"] == error_type,
                f"SDK got {got}, log status {line['status']} error_type {line['error_type']}",
            )


# ---- the sweep ------------------------------------------------------------------------------------------------------


def sweep(rec: Record, direct: str, gateway: str, key: str, args: argparse.Namespace) -> None:
    """Cells alternated direct, gateway, gateway, direct at each concurrency; the same prompts and answer length."""
    prompt_list = [p.messages for p in load_prompts.load()]
    auth = {"Authorization": f"Bearer {key}"}
    for n in args.streams:
        requests = max(args.min_requests, n * args.requests_per_stream)
        cells: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for path in ("direct", "gateway", "gateway", "direct"):
            url, headers = (direct, None) if path == "direct" else (gateway, auth)
            cell = asyncio.run(measure(url, n, requests, args.max_tokens, prompt_list, headers))
            cells[path].append(cell)
            say(
                f"   {n:>4} streams {path:<8} TTFT p50 {cell['ttft_ms_p50']:.0f} ms, ITL p50 "
                f"{cell['itl_ms_p50']:.2f} ms, {cell['aggregate_tok_s']:.0f} tok/s, {cell['req_s']:.2f} req/s "
                f"({cell['seconds']:.1f} s)"
            )
        rec.data["sweep"].append({"streams": n, "requests_per_cell": requests, **cells})


def mean_cell(cells: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("ttft_ms_p50", "ttft_ms_p99", "itl_ms_p50", "tpot_ms_p50", "stream_tok_s_median", "aggregate_tok_s",
            "req_s")  # fmt: skip
    return {k: sum(c[k] for c in cells) / len(cells) for k in keys}


# ---- the gate -------------------------------------------------------------------------------------------------------


def gate(rec: Record, gateway: str, key: str, args: argparse.Namespace, sampler: MemorySampler | None) -> None:
    """The load test's gate, as `make load` runs it, with the card's peak memory over the run."""
    report_dir = args.out / "loadtest"
    locustfile = REPO / "loadtest" / "locustfile.py"
    flags = [
        sys.executable, "-m", "locust", "-f", str(locustfile), "--host", gateway, "--headless",
        "-u", str(args.gate_users), "-r", str(args.gate_users), "-t", f"{args.gate_seconds}s",
        "--rate", str(args.gate_rate), "--stop-timeout", "120", "--report-dir", str(report_dir),
        "--html", str(report_dir / "locust.html"), "--csv", str(report_dir / "locust"), "--only-summary",
        "--max-tokens", str(args.max_tokens), "--max-num-seqs", str(args.batch), "--seed", "1",
    ]  # fmt: skip
    if args.gpu_class:
        flags += ["--gpu", args.gpu_class]
    reasoning_only_option = "--accept-reasoning-only" in locustfile.read_text()
    if reasoning_only_option:
        flags.append("--accept-reasoning-only")
    rec.data["facts"]["gate_accepts_reasoning_only"] = reasoning_only_option
    if sampler:
        sampler.reset()
    env = {**os.environ, "LOADTEST_API_KEY": key, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    engine_peaks = EngineSampler(args.engine_url)
    try:
        done = subprocess.run(flags, capture_output=True, text=True, cwd=REPO, env=env,
                              timeout=args.gate_seconds + 300)  # fmt: skip
    finally:
        peaks = engine_peaks.stop()
    (args.out / "loadtest.log").write_text(done.stdout + done.stderr)
    summary_file = report_dir / "summary.json"
    if not summary_file.exists():
        raise RuntimeError(f"the load test wrote no summary (exit {done.returncode}): {done.stderr[-1500:]}")
    summary = json.loads(summary_file.read_text())
    peak = sampler.peak if sampler else None
    target = slo.load().slos.get("gpu_memory_bytes")
    memory_row = {
        "slo": "gpu_memory_bytes (sampled by this check)",
        "target": target.text() if target else "",
        "measured_text": "not measured (no NVIDIA GPU)" if peak is None else f"{peak / GB:.2f} GB",
        "status": "" if peak is None or target is None else ("PASS" if target.met(peak) else "FAIL"),
        "note": "peak used memory of the whole card during the gate (NVML or nvidia-smi, every 0.5 s)",
    }
    rec.data["gate"] = {"exit_code": done.returncode, "rate": args.gate_rate, "seconds": args.gate_seconds,
                        "users": args.gate_users, "summary": summary, "gpu_memory_row": memory_row,
                        "engine_peaks": peaks}  # fmt: skip


# ---- the report -----------------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def report_markdown(data: dict[str, Any]) -> str:
    f = data["facts"]
    lines = [
        f"# GPU check: {f.get('engine_label', '')}",
        "",
        f"- GPU: {f.get('gpu', 'none')}; engine: {f.get('engine_version', '')}; date: {f.get('date', '')}",
        f"- Model: DeepSeek-R1-Distill-Qwen-1.5B, random weights, exact architecture ({f.get('model_format', '')})",
        f"- Engine command: `{f.get('engine_command', '')}`",
        f"- Card memory: {fmt(f.get('gpu_idle_bytes', 0) / GB if f.get('gpu_idle_bytes') is not None else None, 2)} "
        f"GB before the engine, {fmt(f.get('gpu_engine_bytes', 0) / GB if f.get('gpu_engine_bytes') else None, 2)} "
        "GB with the engine up and idle",
        f"- Answers: {f.get('max_tokens')} tokens each (`ignore_eos`), prompts: loadtest/prompts.jsonl in turn",
    ]
    if f.get("reasoning_only"):
        lines.append(
            "- Every answer was reasoning only: random weights never write `</think>`, so the whole output is "
            f"reasoning and no answer text follows (the gateway's `empty_response` for such an answer: "
            f"{f.get('empty_response_of_reasoning_only')}). This is the random weights, not an outage."
        )
    lines += ["", "## Steps", "", "| step | seconds | result |", "| --- | ---: | --- |"]
    lines += [f"| {s['step']} | {fmt(s['seconds'], 1)} | {'ok' if s['ok'] else 'FAILED: ' + s['note'][:200]} |"
              for s in data["steps"]]  # fmt: skip
    if data["checks"]:
        lines += ["", "## Correctness (openai SDK through the gateway)", "", "| check | result | detail |",
                  "| --- | --- | --- |"]  # fmt: skip
        lines += [f"| {c['check']} | {'PASS' if c['ok'] else 'FAIL'} | {c['detail']} |" for c in data["checks"]]
        if f.get("not_checked"):
            lines += ["", f"Not checked: {f['not_checked']}."]
    if data["sweep"]:
        lines += [
            "", "## KPI sweep (closed loop; each row the mean of its two cells, run direct, gateway, gateway, direct)",
            "", "| streams | path | requests | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | TPOT p50 ms | tok/s per stream "
            "| tok/s total | req/s |", "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]  # fmt: skip
        for row in data["sweep"]:
            for path in ("direct", "gateway"):
                m = mean_cell(row[path])
                lines.append(
                    f"| {row['streams']} | {path} | {2 * row['requests_per_cell']} | {fmt(m['ttft_ms_p50'])} "
                    f"| {fmt(m['ttft_ms_p99'])} | {fmt(m['itl_ms_p50'], 2)} | {fmt(m['tpot_ms_p50'], 2)} "
                    f"| {fmt(m['stream_tok_s_median'])} | {fmt(m['aggregate_tok_s'])} | {fmt(m['req_s'], 2)} |"
                )
        lines += ["", "Gateway / direct (1.00x = no cost); drift = the second direct cell / the first (tok/s total).",
                  "", "| streams | ITL p50 | TTFT p50 | TTFT p99 | tok/s total | req/s | direct drift |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for row in data["sweep"]:
            g, d = mean_cell(row["gateway"]), mean_cell(row["direct"])
            d1, d2 = row["direct"]

            def x(key: str, g: dict[str, float] = g, d: dict[str, float] = d) -> str:
                return f"{g[key] / d[key]:.2f}x" if d[key] else "–"

            drift = d2["aggregate_tok_s"] / d1["aggregate_tok_s"]
            lines.append(f"| {row['streams']} | {x('itl_ms_p50')} | {x('ttft_ms_p50')} | {x('ttft_ms_p99')} "
                         f"| {x('aggregate_tok_s')} | {x('req_s')} | {drift:.2f}x |")  # fmt: skip
    g = data["gate"]
    if g:
        s = g["summary"]
        req = s["requests"]
        lines += [
            "", f"## Load-test gate ({g['rate']} req/s open loop, {g['users']} users, {g['seconds']} s; exit "
            f"{g['exit_code']}: {'PASS' if s['passed'] else 'FAIL'})", "",
            f"Requests: {req['total']} ({req['warmup']} warm-up), measured {req['measured']}: succeeded "
            f"{req['succeeded']}, errors {req['errors']}, empty {req['empty']}, good {req['good']}. "
            "Full report: loadtest/report.html. Engine gauges' peaks during the gate (scraped every second): "
            + (", ".join(f"{k} {v:g}" for k, v in g.get("engine_peaks", {}).items()) or "none") + ".", "",
            "| SLO | target | measured | status | note |", "| --- | --- | --- | --- | --- |",
        ]  # fmt: skip
        for r in [*s["slos"], g["gpu_memory_row"]]:
            lines.append(f"| {r['slo']} | {r.get('target', '')} | {r.get('measured_text', '')} | {r.get('status', '')} "
                         f"| {str(r.get('note', '')).replace('|', '/')} |")  # fmt: skip
    lines += ["", "Engine /metrics: metrics-idle.txt and metrics-after-load.txt beside this report.", ""]
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--engine", choices=sorted(ENGINE_SERVICE), default="vllm")
    p.add_argument("--out", type=Path, default=REPO / "run" / "gpu-check")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE",
                   help="a .env value for compose's command, e.g. VLLM_MAX_NUM_SEQS=256 (repeat)")  # fmt: skip
    p.add_argument("--vllm", default="vllm", help="the vllm command (default %(default)s; e.g. 'python3 -m vllm')")
    p.add_argument("--vocab", type=Path, help="llama.cpp's models/ggml-vocab-qwen2.gguf (default: beside llama-server)")
    p.add_argument("--gguf", type=Path, help="--engine llamacpp: the GGUF to serve (scripts/make-gguf.py makes one)")
    p.add_argument("--llama-server", type=Path, help="--engine llamacpp: the llama-server binary")
    p.add_argument("--engine-args", default="", help="extra engine flags after compose's (split on spaces)")
    p.add_argument("--streams", default="1,4,16,64,256", help="sweep concurrencies (default %(default)s)")
    p.add_argument("--requests-per-stream", type=int, default=2, help="requests per sweep cell: streams x this")
    p.add_argument("--min-requests", type=int, default=8, help="at least this many requests per sweep cell")
    p.add_argument("--max-tokens", type=int, default=256, help="answer length of every request (default %(default)s)")
    p.add_argument("--gate-rate", type=float, default=4.0, help="the gate's open-loop req/s (make load's LOAD_RATE)")
    p.add_argument("--gate-seconds", type=int, default=60, help="the gate's run time")
    p.add_argument("--gate-users", type=int, default=64, help="the gate's users (make load's LOAD_USERS)")
    p.add_argument("--skip", default="", help="steps to leave out, comma-separated: correctness,sweep,gate")
    p.add_argument("--start-timeout", type=float, default=900, help="seconds the engine may take to start")
    args = p.parse_args(argv)
    try:
        args.env = dict(item.split("=", 1) for item in args.set)
        args.streams = [int(n) for n in args.streams.split(",")]
    except ValueError:
        p.error("--set takes VAR=VALUE; --streams takes comma-separated integers")
    args.skip = {s for s in args.skip.split(",") if s}
    if args.skip - {"correctness", "sweep", "gate"}:
        p.error(f"--skip: unknown steps {sorted(args.skip - {'correctness', 'sweep', 'gate'})}")
    cache = Path(os.environ.get("LLMWATCH_CACHE", Path.home() / ".cache" / "llmwatch")) / "llama.cpp" / "bin"
    args.llama_server = args.llama_server or cache / "llama-server"
    args.vocab = args.vocab or cache / "ggml-vocab-qwen2.gguf"
    if args.engine == "vllm" and not shutil.which(shlex.split(args.vllm)[0]):
        p.error(f"--vllm {args.vllm!r}: no such command (pip install vllm, or name the command that runs it)")
    if args.engine == "vllm" and not args.vocab.is_file():
        p.error(f"--vocab {args.vocab} not found (scripts/install-llama-cpp.sh puts it beside llama-server)")
    if args.engine == "llamacpp" and not (args.gguf and args.gguf.is_file()):
        p.error("--gguf: give the GGUF to serve (scripts/make-gguf.py --arch r1-distill-1.5b --type q4_k_m)")
    if args.engine == "llamacpp" and not args.llama_server.is_file():
        p.error(f"--llama-server {args.llama_server} not found")
    return args


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


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rec = Record(args.out)
    facts = rec.data["facts"]
    facts["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts["max_tokens"] = args.max_tokens
    gpu = gpu_name_and_used()
    facts["gpu"] = gpu[0] if gpu else "none (no NVIDIA GPU)"
    args.gpu_class = next((c for c in ("h100", "rtx4090", "rtx3060") if gpu and c in gpu[0].lower().replace(" ", "")),
                          "")  # fmt: skip
    facts["gpu_idle_bytes"] = gpu[1]() if gpu else None
    sampler = MemorySampler(gpu[1]) if gpu else None
    children: list[Child] = []
    engine_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
    engine_url, gateway_url = f"http://127.0.0.1:{engine_port}", f"http://127.0.0.1:{gateway_port}"
    args.engine_url = engine_url
    failed = False
    try:
        with rec.step("model folder and engine command"):
            model_dir = args.out / "model"
            if args.engine == "vllm":
                distill.write_hf_model(model_dir, args.vocab)
            cmd, args.batch, facts["model_format"] = engine_command(args, engine_port, model_dir)
            cmd += args.engine_args.split()
            facts["engine_command"] = " ".join(cmd).replace(str(args.out), "$OUT").replace(str(REPO), ".")
            facts["engine_version"] = engine_version(args)
            facts["engine_label"] = f"{args.engine}, batch {args.batch}"
            say(f"   {facts['engine_version']}: {facts['engine_command']}")
        with rec.step("engine start (to /health)"):
            env = {"VLLM_USE_FLASHINFER_SAMPLER": os.environ.get("VLLM_USE_FLASHINFER_SAMPLER", "0")}
            engine = Child(cmd, args.out / "engine.log", env=env)
            children.append(engine)
            engine.wait_http(engine_url + "/health", args.start_timeout)
            models = httpx.get(engine_url + "/v1/models", timeout=10).json()["data"]
            model = str(models[0]["id"])
            max_len = int(models[0].get("max_model_len") or args.env.get("VLLM_MAX_MODEL_LEN", 4096))
        with rec.step("gateway start, warm-up (to /readyz)"):
            key = secrets.token_urlsafe(24)
            keys = args.out / "gateway-api-keys"
            keys.write_text(f"loadtest={key}\n")
            keys.chmod(0o600)
            access_log = args.out / "access.log"
            access_log.unlink(missing_ok=True)
            gateway = Child([
                sys.executable, "-m", "llmwatch.cli", "gateway", "--upstream", engine_url, "--host", "127.0.0.1",
                "--port", str(gateway_port), "--log-file", str(access_log), "--no-log-stdout",
                "--api-keys", str(keys), "--warmup", "2", "--metrics-port", str(metrics_port),
            ], args.out / "gateway.log")  # fmt: skip
            children.append(gateway)
            # /readyz is on the management listener, as in compose (--metrics-port).
            gateway.wait_http(f"http://127.0.0.1:{metrics_port}/readyz", 600)
            time.sleep(1.0)  # let the engine's gauges settle after the warm-up before the idle capture
            if gpu:
                facts["gpu_engine_bytes"] = gpu[1]()
        with rec.step("engine /metrics, idle"):
            (args.out / "metrics-idle.txt").write_text(httpx.get(engine_url + "/metrics", timeout=10).text)
        if "correctness" not in args.skip:
            with rec.step("correctness (openai SDK)"):
                correctness(rec, gateway_url, engine_url, key, access_log, model, max_len, args.engine)
        if "sweep" not in args.skip:
            with rec.step(f"KPI sweep at {','.join(map(str, args.streams))} streams"):
                # One cell at the largest concurrency first, not measured: CUDA graphs and caches for that size.
                asyncio.run(measure(engine_url, max(args.streams), max(args.streams), 16))
                sweep(rec, engine_url, gateway_url, key, args)
        if "gate" not in args.skip:
            with rec.step(f"load-test gate at {args.gate_rate:g} req/s"):
                gate(rec, gateway_url, key, args, sampler)
        with rec.step("engine /metrics, after load"):
            (args.out / "metrics-after-load.txt").write_text(httpx.get(engine_url + "/metrics", timeout=10).text)
        failed = not all(c["ok"] for c in rec.data["checks"])
    except Exception as exc:  # a step failed: its record says why; stop everything and write what ran
        say(f"gpu_check: stopped at a failed step: {type(exc).__name__}: {exc}")
        failed = True
    finally:
        with rec.step("stop gateway and engine"):
            for child in reversed(children):
                child.stop(timeout=60)
        if sampler:
            sampler.stop()
        rec.save()
    say((args.out / "REPORT.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
